"""Data-parallel runs with PyTorch's own engine: torchrun launches the processes, torch.distributed
(gloo on CPU, nccl on CUDA) connects them, DistributedDataParallel trains the evaluation networks.

    torchrun --nproc-per-node 4 -m racl train ...      # one process per GPU (or CPU processes, gloo)

`init_distributed` joins the group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT); every function here is a no-op (or the single-process answer) when no group is
initialised. Rank 0 writes files, logs and progress bars; `quiet_other_ranks` silences the others'
stdout.

The loops (search, training, validation, evaluation) see none of this: their caller makes one
`Runtime` (`Runtime.current(log)`) and hands it to them; it answers "which share is mine", sums
counts, logs and writes on rank 0, and averages what must be averaged. In one process every one of
its methods is the single-process answer, so the loops read as single-process code.

Data sharding. `--batch-size` is per rank: one step consumes a *global* batch of batch_size x
world_size images, split by the data loader (`racl.data.iterate_batches(shard=(rank, world))`,
see racl.data.loader), so the union of the ranks' batches at step k is exactly the single-process
batch k at batch size batch_size x world_size. Evaluation shards whole batches instead (rank r takes
batches r, r + W, ...), so every batch keeps its single-process content.

Random numbers. The weights are initialised from the run's seed on every process; then each process
draws its own attack starts and drop-path masks (racl.state.seed_rank), and checkpoints hold every
process's RNG state (`Runtime.gather`), each restored by its own process.
"""
from __future__ import annotations

import datetime
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from racl.data import iterate_batches
from racl.errors import RaclError

T = TypeVar("T")
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ------------------------------------------------------------------ the process group
def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | torch.device = "cpu", *, force: bool = False,
                     timeout_s: float = 1800.0) -> torch.device:
    """Join torchrun's process group when WORLD_SIZE > 1 (or `force`); returns this rank's device.

    Backend nccl for CUDA devices (device becomes cuda:LOCAL_RANK), gloo otherwise. Idempotent.
    """
    device = torch.device(device)
    if not (force or env_world_size() > 1):
        return device
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise RaclError(f"--distributed needs torchrun's environment ({', '.join(missing)} not set); "
                        "launch with: torchrun --nproc-per-node N -m racl ...")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def destroy() -> None:
    if is_distributed():
        dist.destroy_process_group()


def quiet_other_ranks() -> None:
    """Ranks other than 0 print nothing to stdout and show no warnings (errors still reach stderr)."""
    if not is_main():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
        warnings.simplefilter("ignore")


@contextmanager
def session(flag: bool, device: str) -> Iterator[str]:
    """For CLI commands: join the group (if torchrun launched us or `flag`), quiet ranks > 0, leave it."""
    joined = init_distributed(device, force=flag)
    try:
        if is_distributed():
            quiet_other_ranks()
        yield str(joined)
    finally:
        destroy()


def add_distributed_argument(parser: Any) -> None:
    parser.add_argument("--distributed", action="store_true",
                        help="join torchrun's process group even with one process (automatic when "
                             "torchrun starts several); --batch-size is per process")


# ------------------------------------------------------------------ collectives
def all_reduce_sum(values: Iterable[float]) -> list[float]:
    """Element-wise sum over ranks (float64, exact for counts), as Python floats."""
    t = torch.tensor(list(values), dtype=torch.float64)
    if world_size() > 1:
        t = t.to(_comm_device())
        dist.all_reduce(t)
    return t.cpu().tolist()


def _comm_device() -> torch.device:
    """Where collective buffers live: the current CUDA device under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


BUCKET_BYTES = 25 * 2**20  # DistributedDataParallel's default bucket size (bucket_cap_mb = 25)


def buckets(tensors: list[torch.Tensor], cap_bytes: int | None = None) -> list[list[torch.Tensor]]:
    """The tensors in buckets for collectives: each bucket one dtype and device, at most `cap_bytes`
    (BUCKET_BYTES) unless a single tensor is larger; tensors keep their order within a bucket."""
    cap = BUCKET_BYTES if cap_bytes is None else cap_bytes
    out: list[list[torch.Tensor]] = []
    filling: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}  # the open bucket per kind
    used: dict[tuple[torch.dtype, torch.device], int] = {}
    for t in tensors:
        kind, size = (t.dtype, t.device), t.numel() * t.element_size()
        if kind not in filling or used[kind] + size > cap:
            filling[kind], used[kind] = [], 0
            out.append(filling[kind])
        filling[kind].append(t)
        used[kind] += size
    return out


def _bucketed(tensors: list[torch.Tensor], op: Callable[[torch.Tensor], None]) -> None:
    """Run one collective per bucket: flatten the bucket once, run `op` on the flat buffer, copy back
    (torch._utils' flatten/unflatten, as DistributedDataParallel's buckets; torch/nn/parallel/comm.py)."""
    for bucket in buckets(tensors):
        flat = _flatten_dense_tensors([t.detach() for t in bucket])
        comm = flat.to(_comm_device())
        if comm.dtype == torch.bool:
            comm = comm.to(torch.uint8)  # gloo and nccl have no bool collectives
        op(comm)
        flat = comm.to(device=flat.device, dtype=flat.dtype)
        torch._foreach_copy_([t.detach() for t in bucket], _unflatten_dense_tensors(flat, bucket))


def average_(tensors: Iterable[torch.Tensor]) -> None:
    """In place: every tensor becomes its mean over ranks (floating tensors only)."""
    tensors = [t for t in tensors if torch.is_floating_point(t)]
    if world_size() > 1 and tensors:
        w = world_size()
        _bucketed(tensors, lambda flat: (dist.all_reduce(flat), flat.div_(w)))


def broadcast_(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """In place: every tensor takes rank `src`'s value."""
    tensors = list(tensors)
    if world_size() > 1 and tensors:
        _bucketed(tensors, lambda flat: dist.broadcast(flat, src))


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Mean of the gradients over ranks (a missing gradient counts as zero), after backward."""
    if world_size() == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    average_([p.grad for p in params])


def average_buffers(module: nn.Module) -> None:
    """BN running statistics (and other floating buffers) averaged over ranks."""
    average_(b for b in module.buffers())


def gather_object(obj: T) -> list[T]:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def on_main(fn: Callable[[], T]) -> T:
    """Run fn on rank 0 only; its result (or its RaclError, raised on every rank) reaches every rank."""
    result: tuple[str, Any] = ("ok", None)
    if is_main():
        try:
            result = ("ok", fn())
        except RaclError as e:
            result = ("error", str(e))
    status, value = broadcast_object(result)
    if status == "error":
        raise RaclError(value)
    return value


def same_on_all_ranks(tensors: Iterable[torch.Tensor]) -> bool:
    """True if the tensors are bit-identical on every rank (compared by a float64 checksum pair)."""
    if world_size() == 1:
        return True
    flat = torch.cat([t.detach().reshape(-1).double().cpu() for t in tensors])
    weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64).remainder_(97).add_(1)
    mine = torch.stack([flat.sum(), (flat * weights).sum()]).to(_comm_device())
    gathered = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


# ------------------------------------------------------------------ models
def wrap_ddp(model: nn.Module, device: torch.device | str, sync_bn: bool = False) -> nn.Module:
    """DistributedDataParallel around `model` (SyncBatchNorm first if asked); `model` itself otherwise.

    The returned wrapper shares its parameters with `model`: attacks, checkpoints and evaluation use
    `model` (unwrapped), the training forward/backward the wrapper, whose backward averages gradients.
    """
    device = torch.device(device)
    if sync_bn and device.type != "cuda":
        raise RaclError("--sync-bn needs CUDA devices (torch's SyncBatchNorm has no CPU kernel); drop it on CPU")
    if world_size() == 1:
        return model
    if sync_bn:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:
            raise RaclError("--sync-bn cannot convert a model whose top module is a BatchNorm")
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sync_from_main(tensors: Iterable[torch.Tensor]) -> bool:
    """Check the tensors are identical on every rank; if not, copy rank 0's. True if they already were."""
    tensors = list(tensors)
    if same_on_all_ranks(tensors):
        return True
    broadcast_(tensors)
    return False


# ------------------------------------------------------------------ what the loops see
@dataclass(frozen=True)
class Runtime:
    """This process's place in a run, made once by the caller (`Runtime.current(log)`) and handed to
    the loops, so they read as single-process code. With one process (rank 0 of 1) every method is
    the single-process answer: `sum` returns its input, `batches` is iterate_batches, `wrap` returns
    the model, `write` and `log` just run.

    Training wraps its network in DistributedDataParallel (`wrap`). The search does not: it averages
    its gradients by hand (`average_gradients`), because DDP cannot wrap the supernet cleanly: (1) the
    weight step's loss is a double backward (the input-gradient-norm term, autograd.grad with
    create_graph), which DDP's gradient hooks do not support; (2) the supernet is differentiated by two
    optimisers, the weights' SGD in the weight step and the distributions' Adam in the architecture
    step (whose backward also runs through the supernet and must not all-reduce its weight
    gradients); (3) ops whose sampled weight is zero are skipped, so the set of used parameters changes
    from step to step. Averaging the gradients after backward, bucketed as DDP does (flatten once per
    bucket of <= 25 MiB, one all_reduce per bucket, one copy back), is the same mean.
    """

    rank: int = 0
    world: int = 1
    logger: Callable[[str], None] | None = None

    @classmethod
    def current(cls, log: Callable[[str], None] | None = None) -> "Runtime":
        """This process under the process group torchrun started (rank 0 of 1 without one)."""
        return cls(rank(), world_size(), log)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- output: rank 0 only
    def log(self, message: str) -> None:
        """One line to the log (rank 0 only; nowhere without a logger)."""
        if self.is_main and self.logger is not None:
            self.logger(message)

    def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a file write on rank 0 only (every rank holds the same state)."""
        if self.is_main:
            fn(*args, **kwargs)

    def on_main(self, fn: Callable[[], T]) -> T:
        """fn on rank 0; its result (or its RaclError) reaches every rank."""
        return on_main(fn) if self.world > 1 else fn()

    def barrier(self) -> None:
        if self.world > 1:
            barrier()

    # -------------------------------------------------------------- data
    def global_batch(self, batch_size: int) -> int:
        """Images per step over all processes (`batch_size` is per process)."""
        return batch_size * self.world

    def batches(self, ds: Any, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
                augment: Any = None, drop_last: bool = False, device: torch.device | str = "cpu",
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """iterate_batches for this process: its share of every global batch (racl.data.loader, which
        also refuses a sharded epoch without drop_last)."""
        return iterate_batches(ds, batch_size, shuffle=shuffle, generator=generator, augment=augment,
                               drop_last=drop_last, device=device, shard=(self.rank, self.world))

    def eval_batches(self, num_batches: int) -> range:
        """The evaluation batches this process takes: r, r + W, r + 2W, ... (all of them in one process)."""
        return range(self.rank, num_batches, self.world)

    def eval_shard(self, n: int, batch_size: int) -> torch.Tensor:
        """Indices (into n examples) of this process's whole evaluation batches, in order."""
        parts = [torch.arange(k * batch_size, min(n, (k + 1) * batch_size))
                 for k in self.eval_batches(-(-n // batch_size))]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)

    # -------------------------------------------------------------- collectives
    def sum(self, values: Iterable[float]) -> list[float]:
        """Element-wise sum over processes (float64, exact for counts), as Python floats."""
        return all_reduce_sum(values) if self.world > 1 else [float(v) for v in values]

    def gather(self, obj: T) -> list[T]:
        """Every process's `obj` in rank order, on every process (`[obj]` in one process)."""
        return gather_object(obj) if self.world > 1 else [obj]

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Mean of the gradients over processes after backward (see the class docstring for why the
        search does this by hand)."""
        if self.world > 1:
            average_gradients(params)

    def average_buffers(self, module: nn.Module) -> None:
        """BN running statistics (and other floating buffers) averaged over processes."""
        if self.world > 1:
            average_buffers(module)

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BN running statistics) to every process: DDP broadcasts them before each
        forward, but a process's own last forward updates its copy; after this, every process holds
        the model rank 0 checkpoints (validation and resuming see the same one)."""
        if self.world > 1:
            broadcast_(module.buffers())

    def sync_from_main(self, tensors: Iterable[torch.Tensor]) -> bool:
        """True if the tensors are identical on every process; else rank 0's are copied to all."""
        return sync_from_main(tensors) if self.world > 1 else True

    def wrap(self, model: nn.Module, device: torch.device | str, sync_bn: bool = False) -> nn.Module:
        """DistributedDataParallel around `model` (the training forward/backward); `model` in one process
        (sync_bn on a CPU device is refused either way)."""
        return wrap_ddp(model, device, sync_bn)
