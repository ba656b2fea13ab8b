"""The adversarial training loop and `train()`, the one entry point the CLI, compare and demo share.

Per epoch: SGD over the shuffled, augmented train split on the configured objective (losses.py),
then clean and PGD-`val_steps` accuracy on a fixed validation subset in eval mode; then
metrics.jsonl, last (and best, by robust validation accuracy) checkpoints, then the resumable state.
Resuming restores weights, optimiser, counters, RNG and data-order state, so an interrupted run ends
bit-identical (on CPU) to an uninterrupted one. The folder, its files and the resume rule (every
setting as it was except `epochs`) are racl.lifecycle's.
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from racl import amp, guards
from racl.checkpoint import build_from_spec, save_model_checkpoint
from racl.data import AugmentConfig, DataSplits, balanced_subset
from racl.distributed import Runtime
from racl.errors import RaclError
from racl.io import append_jsonl
from racl.lifecycle import RunFolder, check_resumable, progress_bar
from racl.models.layers import place
from racl.state import get_rng_state, restore_rank_rng, seed_everything, seed_rank
from racl.tally import NonFinite, Tally, is_logging_point
from racl.tblog import TensorBoardLog
from racl.training.config import TrainConfig, config_from_dict
from racl.training.losses import Objective, make_objective
from racl.training.modelspec import check_inputs, make_model_spec
from racl.training.schedule import drop_path_prob, learning_rate
from racl.training.summary import accuracy_labels
from racl.training.validate import validate

# DIR/state.safetensors (everything --resume needs, written last at each epoch's end), config.yaml
# (the resolved TrainConfig), metrics.jsonl (one record per finished epoch), last/best checkpoints
FILES = ("state.safetensors", "config.yaml", "metrics.jsonl", "last.safetensors", "last.json",
         "best.safetensors", "best.json")
ADVICE = "lower --lr or --eps, or keep --grad-clip on"

Log = Callable[[str], None]


def run_folder(path: str | Path) -> RunFolder:
    return RunFolder(path, "training run", FILES, normalise=lambda saved: config_from_dict(saved).to_dict())


def train(model_spec_or_name: Any, data: DataSplits, config: TrainConfig, out_dir: Any, *,
          resume: bool = False, overwrite: bool = False, device: str | torch.device = "cpu",
          log: Log | None = None, progress: bool | None = None, max_epochs: int | None = None,
          sync_bn: bool = False, tensorboard: bool = False) -> dict:
    """Adversarially train a network on `data` with `config`; write checkpoints and logs to `out_dir`.

    `model_spec_or_name`: a zoo name, genotype file, `Genotype`, a hand-designed name (resnet18, wrn34_10,
    mobilenet_v2), or a `racl.checkpoint.model_spec` dict (its model_args win over the config's). Returns a
    summary dict.
    `log`: where the one-line epoch summaries go (None: nowhere; the CLI passes print).
    `resume`/`overwrite`: racl.lifecycle's rule (a resumed run keeps its settings except `epochs`).
    `progress` None = a progress bar only when stderr is a terminal. `max_epochs` stops this call
    after that many epochs (the run stays resumable: time-sliced training, tests of resuming).
    Under torchrun (racl.distributed) the model trains in DistributedDataParallel with `batch_size`
    images per process (`sync_bn`: SyncBatchNorm, CUDA only); rank 0 writes and logs.
    `tensorboard`: also write each metrics.jsonl record as TensorBoard scalars (racl.tblog).
    """
    cfg = config.resolved()
    spec = make_model_spec(model_spec_or_name, cfg, data)
    check_inputs(spec, data)
    run, rt = run_folder(out_dir), Runtime.current(log)  # rank 0 logs and writes
    resume = rt.on_main(partial(run.prepare, resume=resume, overwrite=overwrite, config=cfg.to_dict()))
    seed_everything(cfg.seed)
    model = place(build_from_spec(spec), device)  # the layout that pays on the device
    seed_rank(cfg.seed, rt.rank)  # from here each process draws its own attack starts and drop-path masks
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay)
    # data order + augmentation, drawn where the images are (an in-memory train set is kept on the device,
    # TrainLoop): no host-device copy per batch
    generator = torch.Generator(device=device if hasattr(data.train, "images") else "cpu").manual_seed(cfg.seed)
    counters = {"epoch": 0, "step": 0, "best_epoch": None, "best_val_robust_acc": None}
    if resume:
        counters = _restore(run, cfg, spec, data, model, optimizer, generator, rt)
        # a run killed after logging but before saving its state re-runs that epoch
        rt.write(lambda: run.write_metrics(run.read_metrics()[:counters["epoch"]]))
    rt.write(run.write_config, cfg.to_dict())  # on resume too: `epochs` may have changed
    tb = TensorBoardLog(run.path, tensorboard and rt.is_main, start_step=counters["epoch"] + 1)
    wrapped = rt.wrap(model, device, sync_bn)  # DistributedDataParallel; `model` itself in one process
    loop = TrainLoop(model, optimizer, generator, cfg, spec, data, run, tb, device, rt, progress,
                     forward_model=None if wrapped is model else wrapped)
    end = cfg.epochs if max_epochs is None else min(cfg.epochs, counters["epoch"] + max(max_epochs, 0))
    if counters["epoch"] >= cfg.epochs:
        rt.log(f"{run.path} already holds all {cfg.epochs} epochs; nothing to do")
    try:
        for epoch in range(counters["epoch"], end):
            loop.epoch(epoch, counters)
    finally:
        tb.close()
    rt.barrier()  # rank 0's files are complete before any process returns
    return _summary(run, counters, cfg)


def _restore(run: RunFolder, cfg: TrainConfig, spec: dict, data: DataSplits, model: nn.Module,
             optimizer: torch.optim.Optimizer, generator: torch.Generator, rt: Runtime) -> dict:
    """Load the saved state after checking it belongs to the same settings, model and data."""
    state = run.load_state()
    check_resumable(run.path, "config", run.normalise(state.get("config")), cfg.to_dict())
    check_resumable(run.path, "model spec", state.get("model_spec"), spec, may_change=())
    check_resumable(run.path, "data spec", state.get("data_spec"), data.spec(), may_change=())
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    note = restore_rank_rng(state["rng"], rt.rank, rt.world, cfg.seed + int(state["counters"]["step"]))
    if note:
        rt.log(f"note: {note}")
    generator.set_state(state["data_generator"])
    return dict(state["counters"])


def _summary(run: RunFolder, counters: dict, cfg: TrainConfig) -> dict:
    records = run.read_metrics()
    best = counters["best_epoch"]
    return {"out_dir": str(run.path), "epochs": counters["epoch"], "steps": counters["step"],
            "config": cfg.to_dict(),
            "last": {"path": str(run.path / "last.safetensors"), "metrics": records[-1] if records else None},
            "best": {"path": str(run.path / "best.safetensors"), "epoch": best,
                     "metrics": records[best - 1] if best and len(records) >= best else None},
            "metrics_path": str(run.metrics)}


class TrainLoop:
    """The state one epoch needs, so the epoch functions stay short."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                 cfg: TrainConfig, spec: dict, data: DataSplits, run: RunFolder, tb: TensorBoardLog, device: Any,
                 rt: Runtime, progress: bool | None, forward_model: nn.Module | None = None):
        self.model, self.optimizer, self.generator = model, optimizer, generator  # model: unwrapped
        self.cfg, self.spec, self.data, self.run, self.tb, self.device = cfg, spec, data, run, tb, device
        self.last = run.path / "last.safetensors"
        self.rt = rt
        self.progress = progress
        self.objective: Objective = make_objective(model, cfg) if forward_model is None else \
            make_objective(model, cfg, forward_model)  # DDP: forward/backward on the wrapper, attacks on model
        a = cfg.augmentation
        self.augment = AugmentConfig(crop_padding=a.crop_padding, cutout=a.cutout) if a.augment else None
        n_val = min(cfg.validation.val_images, len(data.val))
        self.val_set = data.val.subset(balanced_subset(data.val.labels, n_val)).to(device) if n_val else None
        self.train_set = data.train.to(device)  # in memory: kept on the device, no host copy per step
        global_batch = rt.global_batch(cfg.batch_size)  # batch_size per process
        self.drop_last = len(data.train) >= global_batch  # no size-1 tail batch for BatchNorm
        if rt.world > 1 and not self.drop_last:
            raise RaclError(f"the train split has {len(data.train)} images, fewer than batch size x processes "
                            f"= {global_batch}; lower --batch-size or use fewer processes")
        self.steps_per_epoch = len(data.train) // global_batch if self.drop_last else 1

    def epoch(self, epoch: int, counters: dict) -> None:
        start = time.perf_counter()
        if hasattr(self.model, "drop_path_prob"):
            final = self.spec.get("model_args", {}).get("drop_path_prob", 0.0)  # the space's default if unset
            self.model.drop_path_prob = drop_path_prob(final, epoch, self.cfg.epochs)
        record = {"epoch": epoch + 1, "lr": learning_rate(self.cfg, epoch, 0, self.steps_per_epoch)}
        record.update(self.train_epoch(epoch, counters))
        record.update(self.validate())
        record["seconds"] = time.perf_counter() - start
        improved = self.val_set is None or counters["best_val_robust_acc"] is None \
            or record["val_robust_acc"] > counters["best_val_robust_acc"]
        counters["epoch"] = epoch + 1
        if improved:
            counters["best_epoch"], counters["best_val_robust_acc"] = epoch + 1, record["val_robust_acc"]
        self.save(record, counters, improved)
        self.rt.log(_format(record, self.cfg, improved))

    def train_epoch(self, epoch: int, counters: dict) -> dict:
        """The epoch's steps. A step does not synchronise with the device: its values are summed on the
        device and read, with the check that the loss and gradient norm are finite, at the logging
        points (every LOG_EVERY steps, the epoch's end; racl.tally)."""
        self.model.train()
        batches = self.rt.batches(self.train_set, self.cfg.batch_size, shuffle=True, generator=self.generator,
                                  augment=self.augment, drop_last=self.drop_last, device=self.device)
        tally, totals = Tally(), {}
        with progress_bar(self.steps_per_epoch, f"epoch {epoch + 1}/{self.cfg.epochs}", self.progress) as bar:
            for i, (x, y) in enumerate(batches):
                self.train_step(x, y, epoch, i, tally)
                counters["step"] += 1
                bar.update(1)
                if is_logging_point(i, self.steps_per_epoch):
                    totals = self.read(tally, epoch)
                    bar.set_postfix(loss=f"{totals['loss'] / totals['n']:.3f}", refresh=False)
        self.rt.broadcast_buffers(self.model)  # every process validates and resumes rank 0's model
        totals = self.read(tally, epoch)
        totals = {k: totals.get(k, 0.0) for k in ("loss", "clean", "adv", "n")}
        totals = dict(zip(totals, self.rt.sum(totals.values())))  # over processes
        n = max(totals["n"], 1)
        adv = totals["adv"] / n if self.cfg.objective.adv != "none" else None
        return {"train_loss": totals["loss"] / n, "train_acc": totals["clean"] / n, "train_adv_acc": adv}

    def read(self, tally: Tally, epoch: int) -> dict:
        """The epoch's sums so far (a logging point); a non-finite loss or gradient norm stops the run."""
        try:
            return tally.read()
        except NonFinite as err:
            raise guards.stopped(str(err), f"epoch {epoch + 1}, step {err.step + 1}", self.last, ADVICE) from err

    def train_step(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int, tally: Tally) -> None:
        """One SGD step on the objective (forward passes under the configured autocast, racl.amp)."""
        lr = learning_rate(self.cfg, epoch, i, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with amp.autocast(self.cfg.optim.amp, x.device):
            out = self.objective(x, y)
        tally.watch("training diverged: loss", out.loss, i)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        clip = self.cfg.optim.grad_clip
        if clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            tally.watch("training diverged: gradient norm", norm, i)
        self.optimizer.step()
        b = y.shape[0]
        tally.add("loss", out.loss, b)
        tally.add("n", b)
        tally.add("clean", (out.clean_logits.argmax(1) == y).sum())
        if out.adv_logits is not None:
            tally.add("adv", (out.adv_logits.argmax(1) == y).sum())

    def validate(self) -> dict:
        if self.val_set is None:
            return {"val_clean_acc": None, "val_robust_acc": None}
        return validate(self.model, self.val_set, self.cfg, self.device, self.rt)

    def save(self, record: dict, counters: dict, improved: bool) -> None:
        """metrics, last, best, then state: a crash between any two leaves a resumable directory."""
        guards.check_finite({"model": self.model}, f"the end of epoch {record['epoch']}", self.last, ADVICE,
                            buffers=("model",))
        rng = self.rt.gather(get_rng_state())  # every process's own stream, in rank order
        self.rt.write(self.write, record, counters, improved, rng)  # rank 0 (every process holds the same weights)

    def write(self, record: dict, counters: dict, improved: bool, rng: list[dict]) -> None:
        append_jsonl(self.run.metrics, record)
        self.tb.write(record)
        meta = dict(data=self.data.spec(), data_info=self.data.info(), config=self.cfg.to_dict(),
                    epoch=record["epoch"], metrics=record)
        save_model_checkpoint(self.last, self.model, self.spec, **meta)
        if improved:
            save_model_checkpoint(self.run.path / "best.safetensors", self.model, self.spec, **meta)
        self.run.save_state({
            "version": 1, "counters": dict(counters), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng": rng,
            "data_generator": self.generator.get_state(), "config": self.cfg.to_dict(),
            "model_spec": self.spec, "data_spec": self.data.spec(), "data_info": self.data.info(),
        })


def _format(record: dict, cfg: TrainConfig, improved: bool) -> str:
    """One summary line per epoch; the training accuracies labelled with their BN mode when it differs."""
    def pct(v: float | None) -> str:
        return "  -  " if v is None else f"{100 * v:5.1f}"

    clean, adv = accuracy_labels(cfg)
    return (f"epoch {record['epoch']:>3}/{cfg.epochs} lr {record['lr']:.4f} loss {record['train_loss']:.4f} "
            f"{clean} {pct(record['train_acc'])}% {adv} {pct(record['train_adv_acc'])}% | val clean "
            f"{pct(record['val_clean_acc'])}% robust {pct(record['val_robust_acc'])}% | "
            f"{record['seconds']:.1f}s{' *best' if improved else ''}")

