"""The QQ head B (``cv``, Mari et al. 2020, example 5): trainable one-mode layers on circuit A's
stored kets, read out by the vacuum probability ``p0 = |<0|ψ_out>|²`` (not renormalised).

Logits ``[log(1 - p0 + eps), log(p0 + eps)]`` make cross entropy the notebook's loss and argmax
its rule ``p0 > 0.5``. :func:`cv_logits` broadcasts over leading dimensions: M heads, one call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.common.config import TrainConfig
from pipeline.heads.base import Head
from pipeline.simulators.fock_layers import vacuum_row

#: Added to both probabilities before the log, as in the notebook.
EPS = 1e-7
#: Standard deviation of the initial parameters (the notebook's active_sd and passive_sd).
INIT_STD = 0.001


def as_kets(x: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Complex kets (..., B, c) from complex kets or real/imaginary halves (..., B, 2c)."""
    c = cutoff
    if x.ndim >= 2 and x.is_complex() and x.shape[-1] == c:
        return x
    if x.ndim >= 2 and x.dtype.is_floating_point and x.shape[-1] == 2 * c:
        return torch.complex(x[..., :c], x[..., c:])
    raise ValueError(
        f"expected complex kets (B, {c}) or real/imaginary parts (B, {2 * c}); "
        f"got {x.dtype} {tuple(x.shape)}"
    )


def vacuum_probability(weights: torch.Tensor, kets: torch.Tensor) -> torch.Tensor:
    """``p0 = |<0| B |ψ>|²`` (..., B) for ``weights`` (..., L, 6) and kets (..., B, c)."""
    cutoff = kets.shape[-1]
    row = vacuum_row(weights, cutoff).to(kets.dtype).unsqueeze(-2)  # (..., 1, c): <0|B|n>
    # real arithmetic, elementwise: a matmul could round a member differently per stack size
    kr, ki, rr, ri = kets.real, kets.imag, row.real, row.imag
    real = (kr * rr - ki * ri).sum(-1)
    imag = (kr * ri + ki * rr).sum(-1)
    return real.square() + imag.square()


def cv_logits(weights: torch.Tensor, kets: torch.Tensor) -> torch.Tensor:
    """Logits (..., B, 2) for ``weights`` (..., L, 6), kets (..., B, c); a member = one head."""
    if not kets.is_complex() or kets.ndim < 2:
        raise ValueError(
            f"kets: expected complex (..., B, c); got {kets.dtype} {tuple(kets.shape)}"
        )
    p0 = vacuum_probability(weights, kets)  # (..., B)
    return torch.stack([torch.log(1 - p0 + EPS), torch.log(p0 + EPS)], dim=-1)  # (..., B, 2)


class CVHead(Head):
    """Trainable one-mode layers on stored kets; logits (B, 2) from the vacuum probability.

    Parameters (n_layers, 6) start at N(0, 0.001) as in the notebook. Input: complex kets
    (B, cutoff) or real/imaginary halves (B, 2 cutoff).
    """

    def __init__(self, n_layers: int = 3, cutoff: int = 15, *, dtype: torch.dtype = torch.float64):
        super().__init__()
        for name, value, low in (("n_layers", n_layers, 1), ("cutoff", cutoff, 2)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}; got {value!r}")
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype: expected torch.float64 or torch.float32; got {dtype}")
        self.n_layers, self.cutoff = n_layers, cutoff
        self.params = nn.Parameter(torch.randn(self.shape(n_layers), dtype=dtype) * INIT_STD)

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, in_features: int, n_classes: int, circuit: dict[str, Any] | None
    ) -> CVHead:
        """The head of ``cfg``, ``in_features`` its kets' cutoff (``circuit`` is not read)."""
        return cls(n_layers=cfg.cv_layers, cutoff=in_features)

    @staticmethod
    def shape(n_layers: int) -> tuple[int, int]:
        """Shape of the parameters: one row (sq, d, r1, r2, r3, κ) per layer."""
        return (n_layers, 6)

    def extra_repr(self) -> str:
        return f"n_layers={self.n_layers}, cutoff={self.cutoff}"

    def as_kets(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(
                f"expected complex kets (B, {self.cutoff}) or real/imaginary parts "
                f"(B, {2 * self.cutoff}); got {x.dtype} {tuple(x.shape)}"
            )
        return as_kets(x, self.cutoff)

    def _weights(self) -> torch.Tensor:
        if self.params.shape != self.shape(self.n_layers):
            raise ValueError(
                f"expected params of shape {self.shape(self.n_layers)}; "
                f"got {tuple(self.params.shape)}"
            )
        return self.params  # (L, 6)

    def vacuum_probability(self, x: torch.Tensor) -> torch.Tensor:
        """``p0`` (B,) for input kets ``x``."""
        return vacuum_probability(self._weights(), self.as_kets(x))

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        weights = params["params"]  # (M, L, 6)
        x = x.expand(weights.shape[0], *x.shape) if x.ndim == 2 else x
        return cv_logits(weights, as_kets(x, self.cutoff))  # (M, B, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[log(1 - p0 + eps), log(p0 + eps)]`` (B, 2)."""
        self.as_kets(x)  # refuses kets of another shape
        self._weights()  # and parameters of another shape
        return super().forward(x)
