"""Benchmark cases, each timed in its own process so peak memory is per case.

Switches shared by the cases: `bf16` (autocast to bfloat16), `channels_last` (None: the layout real
runs use on that device, racl.models.layers.place: for the fast path channels-last on the CPU and on
CUDA under bf16, else NCHW; the reference NCHW; True / False: force that memory format for weights and
activations) and `compile` (False, or a torch.compile backend name such as
"inductor": `nn.Module.compile` in place, so every call of the network goes through the compiler).

supernet: one weight step + one distribution step of the RACL search (the loop's own functions);
          with a `strategy` and gamma None, one search step of that strategy at its defaults (bench search);
attack:   PGD-20 or APGD-CE on a DARTS-space evaluation network, racl vs torchattacks, identical settings;
train:    one PGD-7 adversarial training step (the trainer's own objective) of the C=36, 20-cell RACL net
          (attack_mode: the trainer's default eval, or train).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from racl.attacks import PGD, AttackSpec
from racl.attacks.autoattack import AutoAttack
from racl.bench.timing import cuda_peak_mib, peak_rss_mib, reset_cuda_peak, time_median
from racl.models import build_model
from racl.models.layers import place, set_memory_format
from racl.search.config import config_from_dict
from racl.search.strategies import build_strategy, strategy_class
from racl.search.weight_step import weight_step
from racl.search_space.darts import DARTS
from racl.search_space.darts.supernet import Supernet
from racl.training.config import ObjectiveConfig, TrainConfig
from racl.training.losses import make_objective

SUPERNET_SIZES = {"default": {"channels": 16, "layers": 8}, "quick": {"channels": 8, "layers": 5},
                  "tiny": {"channels": 8, "layers": 3}}  # tiny: plumbing tests only


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def _compile(model: torch.nn.Module, compile: bool | str) -> None:
    if compile:
        model.compile(backend="inductor" if compile is True else str(compile))


def supernet_step(ops: str, size: str, batch: int, device: torch.device, bf16: bool = False,
                  channels_last: bool | None = None, compile: bool | str = False, arch: bool = True,
                  image_size: int = 32, gamma: float | None = 0.0, strategy: str = "racl",
                  robust: dict | None = None) -> Callable[[], None]:
    """One weight step, plus (`arch`) one distribution step of `strategy`: a search step (arch False: a
    warm-up step). gamma: the weight step's input-gradient-norm term; None: the strategy's default (the
    search's robust.gamma resolved: 0.1 for racl, 0 for darts), as `racl bench search` times it; 0 in
    `racl bench supernet` (as in every published figure of that benchmark). robust: other keys of the
    search's robust section (e.g. gradnorm_subset)."""
    torch.manual_seed(0)
    cfg = config_from_dict({"strategy": strategy, "supernet": SUPERNET_SIZES[size], "batch_size": batch,
                            "robust": {**(robust or {}), "gamma": gamma}})
    options = strategy_class(strategy).supernet_options(cfg)  # e.g. PC-DARTS's partial channels
    net = place(Supernet(num_classes=10, **SUPERNET_SIZES[size], ops=ops, **options), device, bf16)
    if channels_last is not None:
        set_memory_format(net, channels_last)
    _compile(net, compile)
    search = build_strategy(cfg, DARTS, net, (3, image_size, image_size)).to(device)
    search.start_arch_phase()
    w_opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, 3, image_size, image_size)
    x, y = torch.rand(shape, device=device), torch.randint(0, 10, (batch,), device=device)
    xv, yv = torch.rand(shape, device=device), torch.randint(0, 10, (batch,), device=device)
    step = [0]

    def run() -> None:
        with _autocast(device, bf16):
            weight_step(net, w_opt, search.sample_weights(gen), x, y, cfg.robust, cfg.attack, cfg.optim.grad_clip,
                        cfg.gamma)
            if arch:
                search.arch_step(xv, yv, gen, step[0])
        step[0] += 1

    return run


def _eval_net(ops: str, device: torch.device, channels: int, layers: int, channels_last: bool | None = None,
              compile: bool | str = False, bf16: bool = False):
    torch.manual_seed(0)
    model = place(build_model("RACL", num_classes=10, channels=channels, layers=layers, ops=ops), device, bf16).eval()
    if channels_last is not None:
        set_memory_format(model, channels_last)
    _compile(model, compile)
    return model


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """Each gradient of a convolution (input, weight) costs what its forward costs: 2 x output elements
    x weight elements per output channel. (torch 2.14's own formula ignores `groups` in the weight
    gradient, counting a depthwise conv C times over, and counts strided input gradients stride^2 times
    over.)"""
    if transposed:
        raise NotImplementedError("transposed convolutions are not counted")
    forward = 2 * math.prod(grad_out_shape) * math.prod(w_shape[1:])
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter():
    """FlopCounterMode (convolutions and matrix products) with exact convolution gradients."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False,
                           custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})


def _model_gflop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, param_grads: bool
                 ) -> tuple[float, float]:
    """GFLOP (convolutions and matrix products, FlopCounterMode) of one forward and one backward of
    the cross-entropy of `model`: input gradient, plus parameter gradients when `param_grads`."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(param_grads)
    try:
        x = x.clone().requires_grad_(True)
        with flop_counter() as forward:
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        with flop_counter() as backward:
            loss.backward()
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
            p.grad = None
    return forward.get_total_flops() / 1e9, backward.get_total_flops() / 1e9


ATTACKS = {"pgd20": "PGD-20 (eps 8/255, step 2/255, random start)",
           "apgd-ce": "AutoAttack's APGD-CE (eps 8/255, 20 iterations, 1 restart)"}


def attack(impl: str, batch: int, device: torch.device, which: str = "pgd20", channels: int = 16,
           layers: int = 8, ops: str = "fast", bf16: bool = False, channels_last: bool | None = None,
           compile: bool | str = False) -> Callable[[], None]:
    """The attack `which` (ATTACKS) by racl (PGD; AutoAttack through pyautoattack) or torchattacks, same settings.
    For APGD the labels are the network's own predictions: both implementations attack only points
    classified correctly, so every point is attacked."""
    model = _eval_net(ops, device, channels, layers, channels_last, compile, bf16)
    x = torch.rand(batch, 3, 32, 32, device=device)
    if which == "pgd20":
        y = torch.randint(0, 10, (batch,), device=device)
        if impl == "racl":
            run_attack = PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
        else:
            import torchattacks

            run_attack = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    elif which == "apgd-ce":
        with torch.no_grad():
            y = model(x).argmax(1)
        if impl == "racl":
            run_attack = AutoAttack(model, eps=8 / 255, version="custom", attacks_to_run=("apgd-ce",), n_iter=20,
                                    n_restarts=1, batch_size=batch)
        else:
            import torchattacks

            run_attack = torchattacks.APGD(model, eps=8 / 255, steps=20, n_restarts=1, loss="ce", seed=0)
    else:
        raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {which!r}")

    def run() -> None:
        with _autocast(device, bf16):
            run_attack(x, y)

    run.gflop = lambda: 20 * sum(_model_gflop(model, x, y, param_grads=False))  # 20 forward + input-grad
    run.model, run.attack, run.inputs = model, run_attack, (x, y)
    return run


def train_step(ops: str, batch: int, device: torch.device, bf16: bool = False, channels_last: bool | None = None,
               compile: bool | str = False, channels: int = 36, layers: int = 20,
               attack_mode: str | None = None) -> Callable[[], None]:
    """The trainer's PGD-7 step; `attack_mode` None = the trainer's default (eval: the fast path attacks
    a BN-folded copy, the reference the model as it is)."""
    torch.manual_seed(0)
    model = _eval_net(ops, device, channels, layers, channels_last, compile, bf16).train()
    cfg = TrainConfig(objective=ObjectiveConfig(attack_mode=attack_mode), attack=AttackSpec(steps=7)).resolved()
    objective = make_objective(model, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)

    def run() -> None:
        with _autocast(device, bf16):
            out = objective(x, y)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    def gflop() -> float:  # 7 attack steps (input gradient only) + the weight step
        forward, input_grad = _model_gflop(model, x, y, param_grads=False)
        return 7 * (forward + input_grad) + sum(_model_gflop(model, x, y, param_grads=True))

    run.gflop = gflop
    run.model = model
    return run


def measure(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int = 1) -> dict:
    reset_cuda_peak(device)
    result = time_median(fn, device, repeats=repeats, warmup=warmup)
    result["peak_rss_mib"] = peak_rss_mib()
    result["cuda_peak_mib"] = cuda_peak_mib(device)
    return result
