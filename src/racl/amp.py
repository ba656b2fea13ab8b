"""Mixed precision (`--amp`): bf16 autocast on the networks' forward passes, nothing else.

`none` (default): float32 everywhere. `bf16`: under torch.autocast(bfloat16) (the same code path on
CPU and CUDA) run the forward passes of the search's weight step (attack and loss) and architecture
step (the supernet only), of the training step (attack, loss, clean accuracy) and of `racl evaluate`'s
accuracies and attacks (compare and ablate: their evaluations too). The logits are cast to float32
before every cross-entropy; the Lipschitz bound's refresh (power iterations), the log-normal maths of
the distributions and the constraint (float32 / float64 as without amp), the end-of-epoch validation
and measurements, and evaluate's model checks run outside autocast. fp16 is refused: its 5-bit
exponent underflows the gradient-norm term's second derivatives and the attacks' input gradients
without a GradScaler, and a GradScaler does not cover gradients taken with torch.autograd.grad.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from racl.errors import RaclError

AMP_CHOICES = ("none", "bf16")
AMP_HELP = "mixed precision: none (default) or bf16 (autocast on the forward passes; fp16 is refused)"
FP16_REFUSED = ("--amp fp16 is not supported: fp16's narrow exponent underflows the input gradients of the "
                "attacks and of the gradient-norm term (torch.autograd.grad, which no GradScaler scales); "
                "use --amp bf16 (same exponent range as float32) or none")


def check_amp(value: str) -> str:
    """The amp setting, or a RaclError (fp16: why not)."""
    if value in ("fp16", "float16", "half"):
        raise RaclError(FP16_REFUSED)
    if value not in AMP_CHOICES:
        raise RaclError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {value!r}")
    return value


def autocast(amp: str, device: torch.device | str) -> ContextManager:
    """bf16 autocast on `device`'s type when amp == "bf16", else nothing."""
    if check_amp(amp) == "none":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def full_precision(device: torch.device | str) -> ContextManager:
    """Autocast off (inside an autocast region): for maths that must stay float32/float64."""
    return torch.autocast(torch.device(device).type, enabled=False)
