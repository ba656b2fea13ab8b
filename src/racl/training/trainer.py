"""The adversarial training loop and `train()`, the one entry point the CLI, compare and demo share.

Per epoch: SGD over the shuffled, augmented train split on the configured objective (losses.py),
then clean and PGD-`val_steps` accuracy on a fixed validation subset in eval mode; then
metrics.jsonl, last (and best, by robust validation accuracy) checkpoints, then the resumable state.
Resuming restores weights, optimiser, counters, RNG and data-order state, so an interrupted run ends
bit-identical (on CPU) to an uninterrupted one.
"""
from __future__ import annotations

import math
import sys
import time
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from racl import distributed, guards
from racl.checkpoint import build_from_spec, save_model_checkpoint
from racl.data import AugmentConfig, DataSplits
from racl.errors import RaclError
from racl.state import get_rng_state, seed_everything, set_rng_state
from racl.tblog import TensorBoardLog
from racl.training.config import TrainConfig
from racl.training.losses import Objective, make_objective
from racl.training.modelspec import check_inputs, make_model_spec
from racl.training.rundir import RunDir
from racl.training.schedule import drop_path_prob, learning_rate
from racl.training.validate import validate

Log = Callable[[str], None]


def train(model_spec_or_name: Any, data: DataSplits, config: TrainConfig, out_dir: Any, *,
          resume: bool = False, overwrite: bool = False, device: str | torch.device = "cpu",
          log: Log | None = print, progress: bool | None = None, max_epochs: int | None = None,
          sync_bn: bool = False, tensorboard: bool = False) -> dict:
    """Adversarially train a network on `data` with `config`; write checkpoints and logs to `out_dir`.

    `model_spec_or_name`: a zoo name, genotype file, `Genotype`, "resnet18"/"wrn34_10", or a
    `racl.checkpoint.model_spec` dict (its model_args win over the config's). Returns a summary dict.
    `progress` None = a progress bar only when stderr is a terminal. `max_epochs` stops this call
    after that many epochs (the run stays resumable: time-sliced training, tests of resuming).
    Under torchrun (racl.distributed) the model trains in DistributedDataParallel with `batch_size`
    images per process (`sync_bn`: SyncBatchNorm, CUDA only); rank 0 writes and logs.
    `tensorboard`: also write each metrics.jsonl record as TensorBoard scalars (racl.tblog).
    """
    cfg = config.resolved()
    spec = make_model_spec(model_spec_or_name, cfg, data)
    check_inputs(spec, data)
    run = RunDir(out_dir)
    log = log if distributed.is_main() else None
    distributed.on_main(partial(run.prepare, resume=resume, overwrite=overwrite))
    seed_everything(cfg.seed)
    model = build_from_spec(spec).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)  # data order + augmentation
    counters = {"epoch": 0, "step": 0, "best_epoch": None, "best_val_robust_acc": None}
    if resume:
        state = run.load_state(config=cfg.to_dict(), model_spec=spec, data_spec=data.spec())
        counters = _restore(state, model, optimizer, generator)
        if distributed.is_main():
            run.truncate_metrics(counters["epoch"])
    elif distributed.is_main():
        run.write_config(cfg.to_dict())
    run.tensorboard = TensorBoardLog(run.path, tensorboard and distributed.is_main(),
                                     start_step=counters["epoch"] + 1)
    wrapped = distributed.wrap_ddp(model, device, sync_bn)  # `model` itself in one process
    loop = _Loop(model, optimizer, generator, cfg, spec, data, run, device, log, progress,
                 forward_model=None if wrapped is model else wrapped)
    end = cfg.epochs if max_epochs is None else min(cfg.epochs, counters["epoch"] + max(max_epochs, 0))
    if counters["epoch"] >= cfg.epochs and log:
        log(f"{run.path} already holds all {cfg.epochs} epochs; nothing to do")
    try:
        for epoch in range(counters["epoch"], end):
            loop.epoch(epoch, counters)
    finally:
        run.tensorboard.close()
    distributed.barrier()  # rank 0's files are complete before any rank returns
    return _summary(run, counters, cfg)


def _restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
             generator: torch.Generator) -> dict:
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    generator.set_state(state["data_generator"])
    return dict(state["counters"])


def _summary(run: RunDir, counters: dict, cfg: TrainConfig) -> dict:
    records = run.read_metrics()
    best = counters["best_epoch"]
    return {"out_dir": str(run.path), "epochs": counters["epoch"], "steps": counters["step"],
            "config": cfg.to_dict(), "last": {"path": str(run.last), "metrics": records[-1] if records else None},
            "best": {"path": str(run.best), "epoch": best,
                     "metrics": records[best - 1] if best and len(records) >= best else None},
            "metrics_path": str(run.metrics)}


class _Loop:
    """The state one epoch needs, so the epoch functions stay short."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
                 cfg: TrainConfig, spec: dict, data: DataSplits, run: RunDir, device: Any,
                 log: Log | None, progress: bool | None, forward_model: nn.Module | None = None):
        self.model, self.optimizer, self.generator = model, optimizer, generator  # model: unwrapped
        self.cfg, self.spec, self.data, self.run, self.device = cfg, spec, data, run, device
        self.log = log or (lambda _msg: None)
        self.progress = (sys.stderr.isatty() if progress is None else progress) and distributed.is_main()
        self.objective: Objective = make_objective(model, cfg) if forward_model is None else \
            make_objective(model, cfg, forward_model)  # DDP: forward/backward on the wrapper, attacks on model
        self.augment = AugmentConfig(crop_padding=cfg.crop_padding, flip=cfg.flip, cutout=cfg.cutout) \
            if cfg.augment else None
        n_val = min(cfg.val_images, len(data.val))
        self.val_set = data.val.subset(torch.arange(n_val)) if n_val else None
        global_batch = distributed.global_batch(cfg.batch_size)  # batch_size per process under torchrun
        self.drop_last = len(data.train) >= global_batch  # no size-1 tail batch for BatchNorm
        if distributed.world_size() > 1 and not self.drop_last:
            raise RaclError(f"the train split has {len(data.train)} images, fewer than batch size x processes "
                            f"= {global_batch}; lower --batch-size or use fewer processes")
        self.steps_per_epoch = len(data.train) // global_batch if self.drop_last else 1

    def epoch(self, epoch: int, counters: dict) -> None:
        start = time.perf_counter()
        if hasattr(self.model, "drop_path_prob"):
            self.model.drop_path_prob = drop_path_prob(self.cfg, epoch)
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
        self.log(_format(record, self.cfg.epochs, improved))

    def train_epoch(self, epoch: int, counters: dict) -> dict:
        from tqdm import tqdm

        self.model.train()
        batches = distributed.iterate_shard(self.data.train, self.cfg.batch_size, shuffle=True,
                                            generator=self.generator, augment=self.augment,
                                            drop_last=self.drop_last, device=self.device)
        totals = {"loss": 0.0, "clean": 0, "adv": 0, "n": 0}
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        with bar:
            for i, (x, y) in enumerate(batches):
                self.train_step(x, y, epoch, i, totals)
                counters["step"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{totals['loss'] / totals['n']:.3f}", refresh=False)
        totals = dict(zip(totals, distributed.all_reduce_sum(totals.values())))  # over ranks (torchrun)
        n = max(totals["n"], 1)
        adv = totals["adv"] / n if self.cfg.adv != "none" else None
        return {"train_loss": totals["loss"] / n, "train_acc": totals["clean"] / n, "train_adv_acc": adv}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, epoch: int, i: int, totals: dict) -> None:
        """One SGD step on the objective; a non-finite loss or gradient stops the run."""
        lr = learning_rate(self.cfg, epoch, i, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        out = self.objective(x, y)
        loss = out.loss.item()
        if not math.isfinite(loss):
            self._diverged("loss", loss, epoch, i)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.cfg.grad_clip > 0:
            norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip))
            if not math.isfinite(norm):
                self._diverged("gradient norm", norm, epoch, i)
        self.optimizer.step()
        b = y.shape[0]
        totals["loss"] += loss * b
        totals["n"] += b
        totals["clean"] += int((out.clean_logits.argmax(1) == y).sum())
        if out.adv_logits is not None:
            totals["adv"] += int((out.adv_logits.argmax(1) == y).sum())

    def _diverged(self, what: str, value: float, epoch: int, i: int) -> None:
        last = f"last good checkpoint: {self.run.last}" if self.run.last.exists() else "no checkpoint yet"
        raise RaclError(f"training diverged: {what} is {value} at epoch {epoch + 1}, step {i + 1} "
                        f"({last}); lower --lr or --eps, or keep --grad-clip on")

    def validate(self) -> dict:
        if self.val_set is None:
            return {"val_clean_acc": None, "val_robust_acc": None}
        return validate(self.model, self.val_set, self.cfg, self.device)

    def save(self, record: dict, counters: dict, improved: bool) -> None:
        """metrics, last, best, then state: a crash between any two leaves a resumable directory."""
        guards.check_finite({"model": self.model}, f"the end of epoch {record['epoch']}", self.run.last,
                            "lower --lr or --eps, or keep --grad-clip on", buffers=("model",))
        if not distributed.is_main():  # torchrun: rank 0 writes (every rank holds the same weights)
            return
        self.run.append_metrics(record)
        meta = dict(data=self.data.spec(), config=self.cfg.to_dict(), epoch=record["epoch"], metrics=record)
        save_model_checkpoint(self.run.last, self.model, self.spec, **meta)
        if improved:
            save_model_checkpoint(self.run.best, self.model, self.spec, **meta)
        self.run.save_state({
            "version": 1, "counters": dict(counters), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng": get_rng_state(),
            "data_generator": self.generator.get_state(), "config": self.cfg.to_dict(),
            "model_spec": self.spec, "data_spec": self.data.spec(),
        })


def _format(record: dict, epochs: int, improved: bool) -> str:
    """One summary line per epoch."""
    def pct(v: float | None) -> str:
        return "  -  " if v is None else f"{100 * v:5.1f}"

    return (f"epoch {record['epoch']:>3}/{epochs} lr {record['lr']:.4f} loss {record['train_loss']:.4f} "
            f"train {pct(record['train_acc'])}% adv {pct(record['train_adv_acc'])}% | val clean "
            f"{pct(record['val_clean_acc'])}% robust {pct(record['val_robust_acc'])}% | "
            f"{record['seconds']:.1f}s{' *best' if improved else ''}")

