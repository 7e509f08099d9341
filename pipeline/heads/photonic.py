"""The QQ head B (``cv``): trainable one-mode photonic layers read out by the vacuum probability.

Mari et al. (2020), example 5 (``q2q_transfer_learning.ipynb``): circuit B is the frozen
circuit A (stage one: :func:`pipeline.sources.photonic_data.qq_dataset` stores A's output kets)
followed by ``n_layers`` trainable layers, each R(r1) -> S(clip(sq), 0) -> R(r2) ->
D(clip(d), 0) -> R(r3) -> V(clip(κ)) on one mode in truncated Fock space (clip to ±1,
:func:`pipeline.simulators.fock_layers.one_mode_layers`). An on/off detector estimates the vacuum
probability ``p0 = |<0|ψ_out>|²``: class 1 (non-Gaussian) <-> large ``p0``. The state is never
renormalised: amplitudes leaving the truncated space are lost, as in the notebook.

The logits ``[log(1 - p0 + 1e-7), log(p0 + 1e-7)]`` make the usual cross entropy equal the
notebook's loss ``-y log(p0 + eps) - (1 - y) log(1 - p0 + eps)``, and their argmax its
decision rule ``p0 > 0.5``.

The math is one function, :func:`cv_logits`, that broadcasts over leading dimensions: M
heads of one shape are one call with weights (M, L, 6), as a stacked ensemble trains them.
Only ``<0|B`` is needed, so the layers are never multiplied into a matrix: the row vector
``<0|`` is carried backwards through the gates (:func:`pipeline.simulators.fock_layers.vacuum_row`).

Example:
    >>> _ = torch.manual_seed(0)
    >>> head = CVHead(n_layers=3, cutoff=15)
    >>> kets = torch.zeros(4, 15, dtype=torch.complex128)
    >>> kets[:, 0] = 1
    >>> head(kets).shape, head(kets).dtype
    (torch.Size([4, 2]), torch.float64)
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.simulators.fock_layers import vacuum_row

#: Added to both probabilities before the log, as in the notebook.
EPS = 1e-7
#: Standard deviation of the initial parameters (the notebook's active_sd and passive_sd).
INIT_STD = 0.001


def as_kets(x: torch.Tensor, cutoff: int) -> torch.Tensor:
    """Kets (..., B, c) complex from complex kets or from real/imaginary pairs (..., B, 2c).

    A feature store's complex kets reach a training loop as real pairs, the real parts in
    the first ``cutoff`` columns and the imaginary parts in the last
    (:func:`pipeline.heads.inputs.as_tensor`).

    Raises:
        ValueError: neither layout, naming the expected and the given shape and dtype.

    Example:
        >>> as_kets(torch.tensor([[0.6, 0.0, 0.0, 0.8]]), 2)
        tensor([[0.6000+0.0000j, 0.0000+0.8000j]])
    """
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
    """``p0 = |<0| B |ψ>|²`` (..., B) for layers ``weights`` (..., L, 6) and kets (..., B, c).

    Not renormalised. The circuit is simulated in complex128 whatever the dtypes; the
    overlap with the kets is taken in the kets' dtype.
    """
    cutoff = kets.shape[-1]
    row = vacuum_row(weights, cutoff).to(kets.dtype).unsqueeze(-2)  # (..., 1, c): <0|B|n>
    # sum_n B[0, n] ψ[n] (..., B) in real arithmetic, elementwise then per row: a matrix
    # product or a vectorised complex product could round one member differently depending on
    # how many members are stacked
    kr, ki, rr, ri = kets.real, kets.imag, row.real, row.imag
    real = (kr * rr - ki * ri).sum(-1)
    imag = (kr * ri + ki * rr).sum(-1)
    return real.square() + imag.square()


def cv_logits(weights: torch.Tensor, kets: torch.Tensor) -> torch.Tensor:
    """Logits ``[log(1 - p0 + 1e-7), log(p0 + 1e-7)]`` (..., B, 2) of the ``cv`` head.

    Broadcasts over leading dimensions: weights (M, L, 6) with kets (B, c) or (M, B, c) give
    (M, B, 2), member ``i`` equal to a single head with weights ``weights[i]``.

    Args:
        weights: real (..., L, 6), columns sq, d, r1, r2, r3, κ per layer; differentiable.
        kets: complex (..., B, c), the stored output kets of circuit A (``c`` = cutoff).

    Returns:
        Real (..., B, 2) in the kets' real dtype (float64 for complex128).

    Example:
        >>> kets = torch.zeros(5, 15, dtype=torch.complex128)
        >>> kets[:, 0] = 1
        >>> cv_logits(torch.zeros(4, 3, 6, dtype=torch.float64), kets).shape
        torch.Size([4, 5, 2])
    """
    if not kets.is_complex() or kets.ndim < 2:
        raise ValueError(
            f"kets: expected complex (..., B, c); got {kets.dtype} {tuple(kets.shape)}"
        )
    p0 = vacuum_probability(weights, kets)  # (..., B)
    return torch.stack([torch.log(1 - p0 + EPS), torch.log(p0 + EPS)], dim=-1)  # (..., B, 2)


class CVHead(nn.Module):
    """Trainable one-mode layers on stored kets; logits from the vacuum probability.

    Args:
        n_layers: number of layers (the notebook's ``q_depth``), >= 1.
        cutoff: Fock cutoff of the stored kets (the notebook's 15), >= 2.
        dtype: of the parameters (float64: the simulation runs in complex128).

    Parameters ``params`` (n_layers, 6), columns sq, d, r1, r2, r3, κ, drawn from
    N(0, 0.001) with the current torch RNG.

    Input: kets (B, cutoff) complex (complex128 or complex64), or real (B, 2 cutoff) with
    the real parts in the first ``cutoff`` columns and the imaginary parts in the last (how
    a training loop holds a store's complex features). The circuit is simulated in
    complex128; the overlap with the input in the input's precision.

    Returns: logits (B, 2) in the input's real dtype (float64 for complex128).

    Example:
        >>> CVHead.shape(3)
        (3, 6)
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

    @staticmethod
    def shape(n_layers: int) -> tuple[int, int]:
        """Shape of the parameters: one row (sq, d, r1, r2, r3, κ) per layer.

        Example:
            >>> CVHead.shape(2)
            (2, 6)
        """
        return (n_layers, 6)

    def extra_repr(self) -> str:
        return f"n_layers={self.n_layers}, cutoff={self.cutoff}"

    def as_kets(self, x: torch.Tensor) -> torch.Tensor:
        """The input as complex kets (B, cutoff); see the class docstring."""
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
        """``p0 = |<0| B |ψ>|²`` (B,) for input kets ``x`` (not renormalised)."""
        return vacuum_probability(self._weights(), self.as_kets(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[log(1 - p0 + 1e-7), log(p0 + 1e-7)]``.

        Args:
            x: kets (B, cutoff) complex, or (B, 2 cutoff) real/imaginary parts.

        Returns:
            (B, 2) in the input's real dtype; class 1 (non-Gaussian) <-> ``p0 > 0.5``.
        """
        return cv_logits(self._weights(), self.as_kets(x))
