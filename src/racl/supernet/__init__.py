"""What every search space's supernet shares: the mixed op, the node formula, fixed weights, BN statistics."""
from racl.search_space.base import ArchWeights, CellWeights
from racl.supernet.cell import node_states
from racl.supernet.fixed import FixedArch
from racl.supernet.mixed_op import MixedOp, active_ops

__all__ = ["ArchWeights", "CellWeights", "FixedArch", "MixedOp", "active_ops", "node_states"]
