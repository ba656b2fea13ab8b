"""The DARTS supernet whose node formula takes log-normal architecture weights from outside."""
from racl.supernet.cell import EDGES, SearchCell, edge_index, make_edges
from racl.supernet.mixed_op import MixedOp, make_search_op
from racl.supernet.network import ArchWeights, FixedArch, Supernet

__all__ = ["ArchWeights", "EDGES", "FixedArch", "MixedOp", "SearchCell", "Supernet", "edge_index", "make_edges",
           "make_search_op"]
