"""`run_search`: the search loop shared by all strategies (method.md section 5).

The train split is cut in two fixed halves (seeded): the weights learn on one, the architecture
(distributions, DARTS alphas) on the other. Epochs before `warmup_epochs` take weight steps only;
then every step is (1) a weight step on a weight-half batch with sampled architecture weights, then
(2) an architecture step on a distribution-half batch. Every random draw comes from the seeded
global RNG (init; then attack starts, from each process's own stream, racl.state.seed_rank) or from
three torch.Generators shared by all processes (weight-half order and augmentation, distribution-half
order and augmentation, architecture samples); all are in the checkpoint written after every epoch
(the global RNG state of every process), so `resume=True` continues exactly where the run stopped.

metrics.jsonl, one object per epoch: epoch, phase (warmup|search), steps, lr (at the epoch's first
step), train_loss (total weight loss), train_ce, train_acc (on the inputs trained on, adversarial if
`adv`), grad_norm (mean ||grad_x CE||_2, null when gamma = 0), arch_loss / arch_acc (distribution-
half CE and accuracy of the architecture steps, null in warm-up), penalty (racl), mu_F, sigma_F,
prob_within_bound, constraint_g, dual_nu (after this epoch's dual update), rho, ln_lbar (racl: of the
distribution; darts/random: mu_F = ln L_F of the point weights, sigma_F = 0, the rest null),
ln_l_ref, ln_l_min, ln_l_genotype, constraint_regime, ln_lambda_by_op, decision_margins and
decision_margin (racl; see docs/method.md section 8), val_acc (held-out val split, the strategy's
point weights: racl E[w], darts softmax, random best candidate), genotype_val_acc (the current
genotype as 0/1 weights on the shared supernet), both with each batch's own BN statistics,
candidate_acc (random), genotype, parameter_free_normal, seconds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from racl import guards
from racl.data import ArrayDataset, AugmentConfig, DataSplits, balanced_subset, iterate_batches
from racl.distributed import Runtime
from racl.errors import RaclError
from racl.lifecycle import cosine_lr, progress_bar
from racl.models.layers import place
from racl.search import outputs
from racl.search.config import SearchConfig, config_from_dict, config_to_dict, save_search_config
from racl.search.strategies import SearchStrategy, build_strategy, strategy_class
from racl.search.weight_step import weight_step
from racl.search_space.base import ArchWeights
from racl.search_space.registry import get_space
from racl.state import get_rng_state, load_state, restore_rank_rng, save_state, seed_everything, seed_rank
from racl.tally import NonFinite, Tally, is_logging_point
from racl.supernet.batchnorm import batch_statistics, recalibrate
from racl.tblog import TensorBoardLog

WEIGHT_FRACTION = 0.5  # [paper] share of the train split for the weights; the rest: the distributions

NAN_ADVICE = "lower optim.w_lr / optim.arch_lr (--set) and start again with --overwrite"
GENERATORS = ("weight_data", "arch_data", "sample")  # seeded with seed * 16 + 1, + 2, + 3


@dataclass
class SearchResult:
    genotype: Any  # the space's genotype (racl.search_space.Genotype for DARTS)
    metrics: list[dict[str, Any]]
    out_dir: Path


@dataclass
class SearchRun:
    """Everything the epochs touch (all of it goes into the checkpoint)."""

    config: SearchConfig
    data: DataSplits
    supernet: torch.nn.Module  # the strategy's (strategy.supernet), for short access
    strategy: SearchStrategy
    w_opt: torch.optim.Optimizer
    generators: dict[str, torch.Generator]
    weight_half: ArrayDataset
    arch_half: ArrayDataset
    device: torch.device
    out: Path
    rt: Runtime  # this process's share of a data-parallel run (racl.distributed)
    epoch: int = 0
    global_step: int = 0
    records: list[dict[str, Any]] | None = None


def split_halves(train: ArrayDataset, config: SearchConfig,
                 rt: Runtime = Runtime()) -> tuple[ArrayDataset, ArrayDataset]:
    """A seeded permutation of the train split, cut at WEIGHT_FRACTION."""
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))
    cut = round(WEIGHT_FRACTION * len(perm))
    halves = train.subset(perm[:cut]), train.subset(perm[cut:])
    if min(len(h) for h in halves) < rt.global_batch(config.batch_size):
        raise RaclError(f"each half of the train split needs >= batch_size x processes = "
                        f"{rt.global_batch(config.batch_size)} images, got "
                        f"{len(halves[0])} and {len(halves[1])}; use more data or --set batch_size=...")
    return halves


@torch.no_grad()
def accuracy(supernet: torch.nn.Module, weights: ArchWeights, ds: ArrayDataset, limit: int, batch_size: int,
             device: torch.device, rt: Runtime = Runtime()) -> float | None:
    """Top-1 accuracy of f(.; weights) on the first `limit` images of ds, BN with the statistics of
    each batch (the architecture's own; the running ones belong to the training mixture), every BN
    buffer unchanged afterwards (supernet.batchnorm.batch_statistics)."""
    n = min(limit, len(ds))
    if n == 0:
        return None
    correct = 0
    with batch_statistics(supernet):
        for x, y in iterate_batches(ds.subset(rt.eval_shard(n, batch_size)), batch_size, shuffle=False,
                                    generator=None, device=device):
            correct += int((supernet(x, weights).argmax(1) == y).sum())
    return int(rt.sum([correct])[0]) / n


def recalibrate_bn(run: "SearchRun") -> None:
    """bound.bn = eval: recompute the supernet's running BN statistics at the strategy's point weights
    on the first `recalibrate_batches` weight-half batches (fixed, unaugmented; the same on every
    rank), so the eval-mode factors in the bound are real statistics, not placeholders."""
    b = run.config.bound
    if b.bn != "eval" or b.recalibrate_batches == 0 or run.strategy.bound is None:
        return
    n = min(len(run.weight_half), b.recalibrate_batches * run.config.batch_size)
    batches = (x for x, _ in iterate_batches(run.weight_half.subset(torch.arange(n)), run.config.batch_size,
                                             shuffle=False, generator=None, device=run.device))
    recalibrate(run.supernet, run.strategy.eval_weights(), batches)


def build_run(config: SearchConfig, data: DataSplits, out: Path, device: torch.device,
              rt: Runtime = Runtime()) -> SearchRun:
    seed_everything(config.seed)  # supernet init (the same on every process)
    space = get_space(config.space)
    options = strategy_class(config.strategy).supernet_options(config)  # e.g. PC-DARTS's partial channels
    supernet = place(space.supernet(num_classes=data.num_classes, in_channels=data.channels, mean=data.mean,
                                    std=data.std, **config.supernet_size(), **options), device)
    weight_half, arch_half = (h.to(device) for h in split_halves(data.train, config, rt))
    evaluator = partial(accuracy, supernet, ds=arch_half, limit=config.random.candidate_images,
                        batch_size=config.eval_batch_size, device=device, rt=rt)
    shape = (data.channels, data.image_size, data.image_size)
    strategy = build_strategy(config, space, supernet, shape, evaluator, rt)
    o = config.optim
    w_opt = torch.optim.SGD(supernet.parameters(), lr=o.w_lr, momentum=o.w_momentum, weight_decay=o.w_wd)
    host = strategy.samples_on_host  # random search picks its paths on the host; the rest draw on the device
    gens = {name: torch.Generator(device="cpu" if name == "sample" and host else device).manual_seed(
        config.seed * 16 + k) for k, name in enumerate(GENERATORS, start=1)}
    seed_rank(config.seed, rt.rank)  # from here each process draws its own attack starts (racl.state)
    return SearchRun(config, data, supernet, strategy, w_opt, gens, weight_half, arch_half, device, out, rt,
                     records=[])


def _state(run: SearchRun, rng: list[dict[str, Any]]) -> dict[str, Any]:
    """The checkpoint; `rng`: every process's global RNG state, in rank order."""
    return {"format": outputs.STATE_FORMAT, "epoch": run.epoch, "global_step": run.global_step,
            "config": config_to_dict(run.config), "data_spec": run.data.spec(),
            "strategy": run.strategy.state_dict(), "w_opt": run.w_opt.state_dict(),
            "arch_opt": None if run.strategy.optimizer is None else run.strategy.optimizer.state_dict(),
            "rng": rng, "generators": {k: g.get_state() for k, g in run.generators.items()},
            "metrics": run.records}


def restore_run(run: SearchRun, state: dict[str, Any]) -> int:
    """Load a checkpoint into the freshly built run; returns the epochs setting it was written with."""
    if state.get("format") == outputs.STATE_FORMAT:  # the saved config as this version writes it
        state = {**state, "config": config_to_dict(config_from_dict(state["config"]))}
    outputs.check_resumable(state, config_to_dict(run.config), run.data.spec())
    run.strategy.load_state_dict(state["strategy"])  # supernet, architecture parameters, bound buffers
    if run.strategy.optimizer is not None:
        run.strategy.optimizer.load_state_dict(state["arch_opt"])
    run.w_opt.load_state_dict(state["w_opt"])
    note = restore_rank_rng(state["rng"], run.rt.rank, run.rt.world, run.config.seed + int(state["global_step"]))
    if note:
        run.rt.log(f"note: {note}")
    for name, g in run.generators.items():
        g.set_state(state["generators"][name])
    run.epoch, run.global_step, run.records = int(state["epoch"]), int(state["global_step"]), list(state["metrics"])
    return int(state["config"]["epochs"])


def learning_rate(config: SearchConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Cosine from w_lr to w_lr_min over all epochs, updated every step (DARTS, per step)."""
    o = config.optim
    return cosine_lr(o.w_lr, o.w_lr_min, epoch, step, steps_per_epoch, config.epochs)


def _batches(run: SearchRun, ds: ArrayDataset, name: str):
    c = run.config
    augment = AugmentConfig(crop_padding=c.crop_padding) if c.augment else None
    return run.rt.batches(ds, c.batch_size, shuffle=True, generator=run.generators[name], augment=augment,
                          drop_last=True, device=run.device)


def _train_epoch(run: SearchRun, arch_phase: bool) -> dict[str, float]:
    """The epoch's steps; returns sums of the logged values (and 'n', 'n_arch', 'lr', 'steps'). A step
    does not synchronise with the device: its values are summed on the device (racl.tally) and read,
    with the check that the losses are finite, at the logging points (every LOG_EVERY steps, the end)."""
    c, e = run.config, run.epoch
    n_w, n_a = len(run.weight_half), len(run.arch_half)
    steps = (min(n_w, n_a) if arch_phase else n_w) // run.rt.global_batch(c.batch_size)
    w_batches = _batches(run, run.weight_half, "weight_data")
    arch_steps = arch_phase and run.strategy.has_arch_step
    a_batches = _batches(run, run.arch_half, "arch_data") if arch_steps else iter(lambda: None, 0)
    tally, sums = Tally(), {}
    run.supernet.train()
    bar = progress_bar(steps, f"epoch {e + 1}/{c.epochs}")
    for step, batch, arch_batch in zip(range(steps), w_batches, a_batches):
        search_step(run, tally, step, steps, batch, arch_batch)
        bar.update(1)
        if is_logging_point(step, steps):
            sums = _read(run, tally)
            bar.set_postfix(loss=f"{sums['loss'] / max(sums['n'], 1):.3f}", refresh=False)
    bar.close()
    sums = {"n": 0.0, "n_arch": 0.0, **sums, "lr": learning_rate(c, e, 0, steps)}
    keys = [k for k in sorted(sums) if k not in ("lr", "steps")]  # summed over processes; lr, steps: the same
    return {**sums, **dict(zip(keys, run.rt.sum(sums[k] for k in keys)))}


def search_step(run: SearchRun, tally: Tally, step: int, steps: int, batch: tuple[torch.Tensor, torch.Tensor],
                arch_batch: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    """Step `step` of `steps` of the epoch: a weight step on `batch`, then an architecture step on
    `arch_batch` (None: none); the logged values go to `tally`."""
    c, (x, y) = run.config, batch
    for group in run.w_opt.param_groups:
        group["lr"] = learning_rate(c, run.epoch, step, steps)
    res = weight_step(run.supernet, run.w_opt, run.strategy.sample_weights(run.generators["sample"]),
                      x, y, c.robust, c.attack, c.optim.grad_clip, c.gamma, run.rt, c.optim.amp)
    arch = run.strategy.arch_step(*arch_batch, run.generators["sample"], run.global_step) if arch_batch else {}
    run.rt.average_buffers(run.supernet)  # BN running statistics: the mean over processes
    _accumulate(tally, step, res, arch, len(y), len(arch_batch[1]) if arch_batch else 0)
    run.global_step += 1


def _read(run: SearchRun, tally: Tally) -> dict[str, float]:
    """The epoch's sums so far (a logging point); a non-finite loss stops the run, naming its step."""
    try:
        return tally.read()
    except NonFinite as err:
        raise guards.stopped(str(err), f"epoch {run.epoch + 1}, step {err.step + 1}", run.out / outputs.CHECKPOINT,
                             NAN_ADVICE) from err


def _accumulate(tally: Tally, step: int, res, arch: dict[str, torch.Tensor], n: int, n_arch: int) -> None:
    tally.add("n", n)
    tally.add("n_arch", n_arch)
    tally.add("steps", 1)
    tally.watch("weight loss", res.loss, step)
    for key, value in (("loss", res.loss), ("ce", res.ce), ("grad_norm", res.grad_norm)):
        if value is not None:
            tally.add(key, value, n)
    tally.add("correct", res.correct)
    if arch:
        tally.watch("architecture loss", arch["arch_loss"] + arch.get("penalty", 0.0), step)
    for key, value in arch.items():
        tally.add(key, value, 1.0 if key == "arch_correct" else n_arch)


def _mean(sums: dict[str, float], key: str, count: str) -> float | None:
    if sums.get(count, 0) == 0 or key not in sums or not math.isfinite(sums[key]):
        return None
    return sums[key] / sums[count]


def _epoch(run: SearchRun) -> dict[str, Any]:
    """One epoch, its end-of-epoch work, and its metrics record."""
    c, start = run.config, time.perf_counter()
    arch_phase = run.epoch >= c.warmup_epochs
    if arch_phase:
        recalibrate_bn(run)
        run.strategy.start_arch_phase()
    sums = _train_epoch(run, arch_phase)
    _check_finite(run, "supernet")  # before the end-of-epoch bound and accuracy see the weights
    recalibrate_bn(run)
    bound = run.strategy.epoch_end(run.epoch, arch_phase, run.generators["sample"])
    genotype = run.strategy.genotype()
    val_set = run.data.val.subset(balanced_subset(run.data.val.labels, c.eval_images))
    val = partial(accuracy, run.supernet, ds=val_set, limit=c.eval_images, batch_size=c.eval_batch_size,
                  device=run.device, rt=run.rt)
    free, total = run.strategy.space.parameter_free(genotype)
    record = {
        "epoch": run.epoch + 1, "phase": "search" if arch_phase else "warmup", "steps": int(sums.get("steps", 0)),
        "lr": sums["lr"], "train_loss": _mean(sums, "loss", "n"), "train_ce": _mean(sums, "ce", "n"),
        "train_acc": _mean(sums, "correct", "n"), "grad_norm": _mean(sums, "grad_norm", "n"),
        "arch_loss": _mean(sums, "arch_loss", "n_arch"), "arch_acc": _mean(sums, "arch_correct", "n_arch"),
        "penalty": _mean(sums, "penalty", "n_arch"), **bound,
        "val_acc": val(run.strategy.eval_weights()),
        "genotype_val_acc": val(run.strategy.genotype_weights(genotype)),
        "genotype": genotype.to_dict(),
        "parameter_free_normal": free, "ops_normal": total,
    }
    margins = record.get("decision_margins")
    if margins:
        values = [v for cell in margins.values() for part in cell.values() for v in part if v is not None]
        record["decision_margin"] = min(values) if values else None
    record["seconds"] = round(time.perf_counter() - start, 3)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def warnings_for(record: dict[str, Any], last: bool) -> list[str]:
    """One-line warnings about an epoch's record: an unreachable constraint; at the end, a normal
    cell that is (nearly) all parameter-free and choices that are not decided (margin < 1 std)."""
    out = []
    if record.get("constraint_regime") == "unreachable":
        out.append(f"epoch {record['epoch']}: the constraint is unreachable: even the lowest bound normalised "
                   f"weights can give (ln {record['ln_l_min']:.2f}) exceeds L_bar (ln {record['ln_lbar']:.2f}); "
                   "lower constraint.lbar (k) or use lbar_mode=reference")
    free, total = record.get("parameter_free_normal", 0), record.get("ops_normal", 8)
    if last and total and free >= total - 1:
        out.append(f"the cell has {free} of {total} parameter-free ops (pools, skips, none): a collapse")
    if last and record.get("decision_margin") is not None and record["decision_margin"] < 1.0:
        out.append(f"some choices of the genotype are not decided: smallest margin {record['decision_margin']:.2f} "
                   "std (see decision_margins in metrics.jsonl); a longer search would settle them")
    return out


def _check_finite(run: SearchRun, *parts: str) -> None:
    """Stop (RaclError) if the supernet's weights or statistics, or the strategy's parameters, are not finite."""
    modules = {"supernet": run.supernet, "strategy": run.strategy}
    guards.check_finite({k: modules[k] for k in parts}, f"the end of epoch {run.epoch + 1}",
                        run.out / outputs.CHECKPOINT, NAN_ADVICE, buffers=("supernet",))


def _summary(r: dict[str, Any], epochs: int) -> str:
    def f(key: str, fmt: str = ".3f") -> str:
        return "-" if r.get(key) is None else format(r[key], fmt)

    return (f"epoch {r['epoch']}/{epochs} [{r['phase']}] loss {f('train_loss')} train_acc {f('train_acc')} "
            f"arch_acc {f('arch_acc')} val_acc {f('val_acc')} mu_F {f('mu_F', '.2f')} sigma_F {f('sigma_F')} "
            f"P(L<=Lbar) {f('prob_within_bound')} nu {f('dual_nu', '.3g')} "
            f"{r.get('constraint_regime') or ''} {r['seconds']:.1f}s")


def run_search(config: SearchConfig, data: DataSplits, out_dir: str | Path, *, resume: bool = False,
               overwrite: bool = False, device: str | torch.device = "cpu", stop_after: int | None = None,
               draw: bool = True, log: Callable[[str], None] | None = None,
               tensorboard: bool = False) -> SearchResult:
    """Search, writing config.yaml, metrics.jsonl, checkpoint.safetensors, genotype.json and cell pictures.

    `resume`: continue the run in `out_dir` from its last checkpoint (same config except `epochs`, same
    data). `overwrite`: replace a run there. `stop_after`: stop once this many epochs are done (counting
    those before a resume), leaving a resumable run; for tests and time-boxed runs. `draw`: write the
    cell pictures when the run is complete. `log`: where the one-line epoch summaries go (None: nowhere).
    `tensorboard`: also write each metrics record as TensorBoard scalars next to metrics.jsonl (racl.tblog).
    """
    out, device, rt = Path(out_dir), torch.device(device), Runtime.current(log)  # rank 0 logs and writes
    has_checkpoint = rt.on_main(partial(outputs.prepare_out_dir, out, resume=resume, overwrite=overwrite))
    run = build_run(config, data, out, device, rt)
    if has_checkpoint:
        saved_epochs = restore_run(run, load_state(out / outputs.CHECKPOINT))
        rt.log(f"note: resuming {out} after epoch {run.epoch}" + (
            f" (epochs {saved_epochs} -> {config.epochs}: the cosine schedule follows the new length)"
            if saved_epochs != config.epochs else ""))
    if config.warmup_epochs >= config.epochs and run.strategy.has_arch_step:
        rt.log("note: warmup_epochs >= epochs: no architecture steps, the genotype is read off the initial state")
    rt.write(save_search_config, out / outputs.CONFIG, config)
    rt.write(outputs.write_metrics, out, run.records)
    tb = TensorBoardLog(out, tensorboard and rt.is_main, start_step=run.epoch + 1)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    while run.epoch < last:
        record = _epoch(run)
        _check_finite(run, "supernet", "strategy")
        if not rt.sync_from_main(_synced_state(run)):
            rt.log(f"note: epoch {run.epoch + 1}: ranks had drifted apart; rank 0's state was copied to all")
        run.records.append(record)
        run.epoch += 1
        rt.write(_save_epoch, run, record, tb, rt.gather(get_rng_state()))
        rt.log(_summary(record, config.epochs))
        for line in warnings_for(record, last=run.epoch == config.epochs):
            rt.log(f"warning: {line}")
    tb.close()
    genotype = run.strategy.genotype()
    rt.write(genotype.save, out / outputs.GENOTYPE)
    if draw and run.epoch >= config.epochs:
        rt.write(outputs.draw_cells, genotype, out)
    rt.barrier()  # the files are complete before any process returns
    return SearchResult(genotype, run.records, out)


def _save_epoch(run: SearchRun, record: dict[str, Any], tb: TensorBoardLog, rng: list[dict[str, Any]]) -> None:
    """The checkpoint, metrics.jsonl, TensorBoard scalars and genotype.json after an epoch."""
    save_state(run.out / outputs.CHECKPOINT, _state(run, rng))
    outputs.write_metrics(run.out, run.records)
    tb.write(record)
    run.strategy.space.genotype_from_dict(record["genotype"]).save(run.out / outputs.GENOTYPE)


def _synced_state(run: SearchRun) -> list[torch.Tensor]:
    """What must be identical on every rank (torchrun): supernet weights and buffers, the strategy's
    parameters and buffers (distributions, duals), the bound's power-iteration vectors and constants."""
    return run.strategy.synced_tensors()
