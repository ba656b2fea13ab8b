"""Data-parallel runs with PyTorch's own engine: torchrun launches the processes, torch.distributed
(gloo on CPU, nccl on CUDA) connects them, DistributedDataParallel trains the evaluation networks.

    torchrun --nproc-per-node 4 -m racl train ...      # one process per GPU (or CPU processes, gloo)

`init_distributed` joins the group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT); every function here is a no-op (or the single-process answer) when no group is
initialised, so library code calls them unconditionally and single-process runs are unchanged.
Rank 0 writes files, logs and progress bars; `quiet_other_ranks` silences the others' stdout.

Data sharding. `--batch-size` is per rank: one step consumes a *global* batch of batch_size x
world_size images. The epoch order is the run's own seeded permutation (identical on every rank,
resumable); inside each global batch, `torch.utils.data.DistributedSampler(shuffle=False)` gives
rank r the positions r, r + W, r + 2W, ... Augmentation parameters are drawn for the whole global
batch and sliced the same way, so the union of the ranks' batches at step k is exactly the
single-process batch k with batch size batch_size x world_size. Evaluation shards whole batches
instead (rank r takes batches r, r + W, ...), so every batch keeps its single-process content.
"""
from __future__ import annotations

import datetime
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from racl.data import epoch_order, iterate_batches
from racl.data.augment import AugmentParams, apply_params, draw_params
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


def _flat_op(tensors: list[torch.Tensor], op: Callable[[torch.Tensor], None]) -> None:
    """Run one collective on the tensors flattened into one buffer (per dtype), then copy back."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group]).to(_comm_device())
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)  # gloo and nccl have no bool collectives
        op(flat)
        flat = flat.to(group[0].device)
        offset = 0
        for t in group:
            t.data.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_(tensors: Iterable[torch.Tensor]) -> None:
    """In place: every tensor becomes its mean over ranks (floating tensors only)."""
    tensors = [t for t in tensors if torch.is_floating_point(t)]
    if world_size() > 1 and tensors:
        w = world_size()
        _flat_op(tensors, lambda flat: (dist.all_reduce(flat), flat.div_(w)))


def broadcast_(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """In place: every tensor takes rank `src`'s value."""
    tensors = list(tensors)
    if world_size() > 1 and tensors:
        _flat_op(tensors, lambda flat: dist.broadcast(flat, src))


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


# ------------------------------------------------------------------ data shards
def batch_shard(num_batches: int) -> range:
    """The global batch indices this rank evaluates: r, r + W, r + 2W, ..."""
    return range(rank(), num_batches, world_size())


def global_batch(batch_size: int) -> int:
    """Images per step over all ranks (`batch_size` is per rank)."""
    return batch_size * world_size()


def iterate_shard(ds: Any, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
                  augment: Any = None, drop_last: bool = False, device: torch.device | str = "cpu",
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`racl.data.iterate_batches` for this rank: batch_size per rank (see the module docstring).

    Like iterate_batches, the epoch's permutation is drawn when this is called.
    """
    if world_size() == 1:
        return iterate_batches(ds, batch_size, shuffle=shuffle, generator=generator, augment=augment,
                               drop_last=drop_last, device=device)
    if not drop_last:
        raise ValueError("sharded training batches need drop_last=True (equal batches on every rank)")
    order = epoch_order(len(ds), shuffle=shuffle, generator=generator)
    if hasattr(ds, "batches"):  # streaming (racl.data.streaming): a DistributedSampler over the same order
        return ds.batches(order, batch_size, generator, augment, True, device, shard=True)
    return _shard_batches(ds, order, batch_size, generator, augment, device)


def _shard_batches(ds: Any, order: torch.Tensor, batch_size: int, generator: torch.Generator | None,
                   augment: Any, device: torch.device | str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    gb, (_, _, h, w) = global_batch(batch_size), ds.images.shape
    mine = torch.tensor(list(DistributedSampler(range(gb), world_size(), rank(), shuffle=False)))  # (b,)
    for k in range(len(order) // gb):
        idx = order[k * gb:(k + 1) * gb]  # (gb,) the single-process batch k at batch size gb
        params = draw_params(gb, h, w, generator, augment) if augment is not None else None
        idx = idx[mine].to(ds.images.device)
        x = ds.images[idx].to(device, non_blocking=True)  # (b, C, H, W) uint8
        y = ds.labels[idx].to(device, non_blocking=True)
        if params is not None:
            p = AugmentParams(*(v[mine.to(v.device)] for v in (params.shifts, params.flips, params.centres)))
            x = apply_params(x, p, augment)
        yield x.float().div_(255), y


def shard_by_batches(n: int, batch_size: int) -> torch.Tensor:
    """Indices (into n examples) of this rank's whole batches, in order (evaluation sharding)."""
    nb = -(-n // batch_size)
    parts = [torch.arange(k * batch_size, min(n, (k + 1) * batch_size)) for k in batch_shard(nb)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)


def batch_seed(seed: int, k: int) -> int:
    """The RNG seed of evaluation batch k: `seed` itself for the first batch."""
    return seed + 1_000_003 * k


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
