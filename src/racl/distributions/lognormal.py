"""Log-normal algebra with Gaussian loadings (Fenton-Wilkinson moment matching with correlations).

Every log-quantity X is carried as (m, b, r2):  X ~ m + b^T z + (independent residual, variance r2),
where z ~ N(0, I) is the noise vector of the whole architecture distribution (both cell types). Then
  - a product of log-normals is a sum of logs: add m, add b, add r2 (residuals are treated as
    mutually independent: the one approximation besides the log-normal form itself);
  - a sum S = sum_k exp(X_k) is matched to one log-normal (Fenton-Wilkinson, method spec section 3)
    with the log-covariances c_kl = b_k . b_l (+ r2_k on the diagonal):
      E[S] = sum_k exp(m_k + v_k/2),  E[S^2] = sum_{k,l} exp(m_k + m_l + (v_k + v_l)/2 + c_kl),
      s_S^2 = ln(E[S^2] / E[S]^2),  m_S = ln E[S] - s_S^2/2,   v_k = |b_k|^2 + r2_k,
    and its loadings come from Stein's lemma, Cov(S, z) = sum_k E[exp X_k] b_k = E[S] b_S:
      b_S = sum_k w_k b_k,  w_k = exp(m_k + v_k/2) / E[S],  r2_S = max(0, s_S^2 - |b_S|^2).
All sums are done in log space (logsumexp), so deep networks never overflow.

FW matches E[S] and E[S^2], which heavy log-normal tails dominate: through 8 cells it is accurate for
per-weight log-stds up to ~0.3 and breaks down from ~0.6 (mu_F far too LOW, measured). `delta_logsumexp`
is the alternative measured against it: a second-order expansion of ln S in the logs themselves,
  E[ln S] ~ lse(m) + (sum_k w_k C_kk - w^T C w) / 2,  b_S = sum_k w_k b_k,  r2_S = sum_k w_k^2 r2_k,
with w = softmax(m) and C the log-covariance (the Hessian of logsumexp is diag(w) - w w^T).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch


class LogGaussian(NamedTuple):
    """A batch of log-quantities X[...] = m + b . z + residual; m, r2: (...,), b: (..., Z)."""

    m: torch.Tensor
    b: torch.Tensor
    r2: torch.Tensor

    @property
    def var(self) -> torch.Tensor:
        """Total variance of X: |b|^2 + r2. (...,)"""
        return self.b.pow(2).sum(-1) + self.r2

    def add(self, other: "LogGaussian") -> "LogGaussian":
        """X + Y (the log of a product of log-normals), broadcasting."""
        return LogGaussian(self.m + other.m, self.b + other.b, self.r2 + other.r2)

    def shift(self, c: torch.Tensor) -> "LogGaussian":
        """X + c for a constant c (the log of a product with a constant)."""
        return LogGaussian(self.m + c, self.b, self.r2)

    def scale(self, a: float) -> "LogGaussian":
        """a * X (the log of a power)."""
        return LogGaussian(a * self.m, a * self.b, a * a * self.r2)

    def to(self, dtype: torch.dtype) -> "LogGaussian":
        return LogGaussian(self.m.to(dtype), self.b.to(dtype), self.r2.to(dtype))

    def independent(self) -> "LogGaussian":
        """Forget the loadings: the whole variance becomes an independent residual."""
        return LogGaussian(self.m, torch.zeros_like(self.b), self.var)


def fw_logsumexp(x: LogGaussian) -> LogGaussian:
    """ln sum_k exp(X_k) over the last batch dimension, as one LogGaussian (Fenton-Wilkinson).

    Terms with m = -inf (zero weights, the `none` op) are dropped. m: (..., K) -> (...,).
    """
    m, b, r2 = x
    finite = torch.isfinite(m)
    m = torch.where(finite, m, torch.full_like(m, -1e30))  # exp(-1e30 - max) == 0, finite gradients
    v = b.pow(2).sum(-1) + r2                                # (..., K)
    a = m + 0.5 * v                                          # ln E[exp X_k]
    log_es = torch.logsumexp(a, -1)                          # ln E[S]
    c = b @ b.transpose(-1, -2) + torch.diag_embed(r2)       # (..., K, K) log-covariances
    log_es2 = torch.logsumexp((a.unsqueeze(-1) + a.unsqueeze(-2) + c).flatten(-2), -1)
    s2 = (log_es2 - 2 * log_es).clamp_min(0.0)               # s_S^2 (>= 0 up to rounding)
    w = torch.softmax(a, -1)                                 # Stein weights E[exp X_k] / E[S]
    b_s = (w.unsqueeze(-1) * b).sum(-2)
    r2_s = (s2 - b_s.pow(2).sum(-1)).clamp_min(0.0)
    return LogGaussian(log_es - 0.5 * s2, b_s, r2_s)


def delta_logsumexp(x: LogGaussian) -> LogGaussian:
    """ln sum_k exp(X_k) by the second-order delta method in log space (see the module docstring)."""
    m, b, r2 = x
    m = torch.where(torch.isfinite(m), m, torch.full_like(m, -1e30))
    w = torch.softmax(m, -1)                                 # gradient of logsumexp at m
    c = b @ b.transpose(-1, -2) + torch.diag_embed(r2)       # (..., K, K)
    wcw = (w.unsqueeze(-1) * c * w.unsqueeze(-2)).sum((-1, -2))
    trace = (w * c.diagonal(dim1=-2, dim2=-1)).sum(-1)      # tr(diag(w) C)
    b_s = (w.unsqueeze(-1) * b).sum(-2)
    return LogGaussian(torch.logsumexp(m, -1) + 0.5 * (trace - wcw), b_s, (w * w * r2).sum(-1))


LSE_APPROXIMATIONS = {"fw": fw_logsumexp, "delta": delta_logsumexp}


def log_normalize(x: LogGaussian, groups: Sequence[range] | None = None, lse: str = "fw") -> LogGaussian:
    """ln(w_k / sum_l w_l) by the delta method: m_k - m_S, b_k - b_S, r2_k + r2_S (S by `lse`).

    Without `groups`, the sum runs over the last dimension; with `groups` (contiguous index ranges of
    the last dimension, e.g. the edges entering each node), over the terms of each group. The residual
    of the sum is treated as independent.
    """
    if groups is None:
        s = LSE_APPROXIMATIONS[lse](x)
        return LogGaussian(x.m - s.m.unsqueeze(-1), x.b - s.b.unsqueeze(-2), x.r2 + s.r2.unsqueeze(-1))
    parts = [log_normalize(LogGaussian(x.m[..., g.start:g.stop], x.b[..., g.start:g.stop, :],
                                       x.r2[..., g.start:g.stop]), lse=lse) for g in groups]
    return LogGaussian(*(torch.cat(p, dim) for p, dim in zip(zip(*parts), (-1, -2, -1))))
