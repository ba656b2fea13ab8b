"""The confidence constraint Pr(L_F <= L_bar) >= eta, solved by an augmented Lagrangian (method.md s4).

With L_F ~ LN(mu_F, sigma_F^2), the constraint is exactly g <= 0 with
    g = mu_F + Phi^-1(eta) * sigma_F - ln L_bar.
The architecture loss adds  nu * g + (rho / 2) * max(0, g)^2  and, once per epoch (g at the epoch's
end), the multiplier ascends:  nu <- max(0, nu + rho * g). Everything that changes lives in buffers, so `state_dict()` resumes it.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import nn

from racl.errors import RaclError


class ConfidenceConstraint(nn.Module):
    """Buffers: nu (multiplier), rho (penalty weight), log_lbar (ln L_bar), lbar_set (0/1)."""

    def __init__(self, eta: float = 0.9, rho: float = 1.0, nu0: float = 0.0):
        super().__init__()
        if not 0 < eta < 1:
            raise RaclError(f"eta must be in (0, 1), got {eta}")
        self.eta = float(eta)
        self.z = NormalDist().inv_cdf(self.eta)  # Phi^-1(eta); 1.2816 for eta = 0.9
        self.register_buffer("nu", torch.tensor(float(nu0), dtype=torch.float64))
        self.register_buffer("rho", torch.tensor(float(rho), dtype=torch.float64))
        self.register_buffer("log_lbar", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("lbar_set", torch.tensor(False))
        self._set = False  # lbar_set on the host (read every step: no device sync); see _load_from_state_dict

    # ------------------------------------------------------------ threshold
    def set_log_lbar(self, log_lbar: float | torch.Tensor) -> None:
        """Fix ln L_bar (absolute mode: ln of the configured L_bar). A tensor is copied on the device
        without a check (a non-finite one makes the loss non-finite, which the loop reports)."""
        if isinstance(log_lbar, torch.Tensor):
            self.log_lbar.copy_(log_lbar)
        elif not math.isfinite(log_lbar):
            raise RaclError(f"ln L_bar must be finite, got {log_lbar}")
        else:
            self.log_lbar.fill_(float(log_lbar))
        self.lbar_set.fill_(True)
        self._set = True

    def set_relative(self, mu_f: float, sigma_f: float, factor: float) -> float:
        """ln L_bar = ln L_0 - ln k, ln L_0 = mu_F + Phi^-1(eta) sigma_F (the eta-quantile of the bound now).

        With factor k = 1 the constraint starts exactly on its boundary (g = 0); k > 1 asks for a
        bound k times tighter, so g starts at ln k. Returns ln L_bar.
        """
        if factor <= 0:
            raise RaclError(f"the relative L_bar factor must be > 0, got {factor}")
        self.set_log_lbar(float(mu_f) + self.z * float(sigma_f) - math.log(factor))
        return float(self.log_lbar)

    @property
    def is_set(self) -> bool:
        return self._set

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._set = bool(self.lbar_set)

    # ------------------------------------------------------------ terms
    def g(self, mu_f: torch.Tensor, sigma_f: torch.Tensor) -> torch.Tensor:
        """g = mu_F + Phi^-1(eta) sigma_F - ln L_bar (<= 0 means the constraint holds)."""
        if not self.is_set:
            raise RaclError("the constraint's L_bar is not set yet (it is set when architecture updates start)")
        return mu_f + self.z * sigma_f - self.log_lbar.to(mu_f.dtype)

    def penalty(self, mu_f: torch.Tensor, sigma_f: torch.Tensor) -> torch.Tensor:
        """nu * g + (rho / 2) * max(0, g)^2: differentiable w.r.t. mu_F and sigma_F."""
        g = self.g(mu_f, sigma_f)
        return self.nu.to(g.dtype) * g + 0.5 * self.rho.to(g.dtype) * torch.relu(g).pow(2)

    @torch.no_grad()
    def dual_update(self, g: torch.Tensor | float) -> None:
        """nu <- max(0, nu + rho * g)."""
        g = float(g)
        if not math.isfinite(g):
            raise RaclError(f"constraint value g = {g} is not finite; the Lipschitz bound overflowed")
        self.nu.copy_((self.nu + self.rho * g).clamp_min(0.0))

    def prob_within_bound(self, mu_f: torch.Tensor, sigma_f: torch.Tensor) -> torch.Tensor:
        """Pr(L_F <= L_bar) = Phi((ln L_bar - mu_F) / sigma_F) (a step function when sigma_F = 0)."""
        diff = (self.log_lbar.to(mu_f.dtype) - mu_f)
        if not bool(sigma_f > 0):
            return (diff >= 0).to(mu_f.dtype)
        return torch.special.ndtr(diff / sigma_f)

    def extra_repr(self) -> str:
        return f"eta={self.eta}, nu={float(self.nu):.4g}, rho={float(self.rho):.4g}, log_lbar={float(self.log_lbar):.4g}"
