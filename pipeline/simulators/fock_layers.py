"""The QQ notebook's trainable one-mode layers: :func:`one_mode_layers` multiplies the gates
(the reference); :func:`vacuum_row` computes its row 0 from cached exact tables (``cv`` head).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from pipeline.simulators.fock import (
    CLIP,
    HBAR,
    check_cutoff,
    cubic_phase,
    displacement,
    rotation,
    squeezing,
)


def one_mode_layers(params: torch.Tensor, cutoff: int, *, squeeze: bool = True) -> torch.Tensor:
    """The QQ notebook's one-mode layers multiplied into one gate (..., c, c).

    Per layer (row of ``params`` (..., L, 6): sq, d, r1, r2, r3, κ): R(r1), S(clip(sq), 0), R(r2),
    D(clip(d), 0), R(r3), V(clip(κ)); no squeezing when ``squeeze`` is False (circuit A as it ran).
    """
    _check_layers(params)
    dtype = torch.complex64 if params.dtype == torch.float32 else torch.complex128
    sq, d, r1, r2, r3, kappa = params.unbind(-1)  # each (..., L)
    gates = [rotation(r1, cutoff, dtype=dtype)]  # each (..., L, c, c), in order
    if squeeze:
        gates.append(squeezing(sq.clamp(-CLIP, CLIP), 0.0, cutoff, dtype=dtype))
    gates.append(rotation(r2, cutoff, dtype=dtype))
    gates.append(displacement(d.clamp(-CLIP, CLIP), 0.0, cutoff, dtype=dtype))
    gates.append(rotation(r3, cutoff, dtype=dtype))
    gates.append(cubic_phase(kappa.clamp(-CLIP, CLIP), cutoff, dtype=dtype))
    matrix = torch.eye(cutoff, dtype=dtype, device=params.device)
    for layer in range(params.shape[-2]):
        for gate in gates:
            matrix = gate[..., layer, :, :] @ matrix  # (..., c, c)
    return matrix


def _check_layers(params: torch.Tensor) -> None:
    if params.ndim < 2 or params.shape[-1] != 6:
        raise ValueError(f"params: expected shape (..., L, 6); got {tuple(params.shape)}")


def _powers(x: torch.Tensor, n: int) -> torch.Tensor:
    """x^0, ..., x^(n-1): (..., n); one op, differentiable at x = 0."""
    return x[..., None] ** torch.arange(n, dtype=x.dtype, device=x.device)


@functools.lru_cache(maxsize=16)
def _displacement_table(cutoff: int, device: torch.device | None = None) -> torch.Tensor:
    """``P`` (2c-1, c²) with ``D(r, 0)[m, n] = e^{-r²/2} sum_j P[j, (m, n)] r^j``."""
    fact = [math.factorial(i) for i in range(cutoff)]
    table = np.zeros((2 * cutoff - 1, cutoff, cutoff))
    for m in range(cutoff):
        for n in range(cutoff):
            root = math.sqrt(fact[m]) * math.sqrt(fact[n])
            for k in range(min(m, n) + 1):
                sign = -1.0 if (n - k) % 2 else 1.0
                table[m + n - 2 * k, m, n] += sign * root / (fact[k] * fact[m - k] * fact[n - k])
    return torch.from_numpy(table.reshape(2 * cutoff - 1, cutoff * cutoff)).to(device)


@functools.lru_cache(maxsize=16)
def _squeezing_table(
    cutoff: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exponents ``a``, ``b`` (K,), coefficients ``Q`` (K, c²) of ``S(r, 0)`` in sech r, tanh r."""
    c = cutoff
    q = np.zeros((c, c, c, c))  # [m, n, a, b]: coefficient of sech^a tanh^b in S[m, n]
    q[0, 0, 0, 0] = 1.0
    for m in range(2, c, 2):  # first column: S[m, 0] = -sqrt((m-1)/m) tanh S[m-2, 0]
        q[m, 0, :, 1:] = -math.sqrt((m - 1) / m) * q[m - 2, 0, :, :-1]
    for n in range(1, c):
        for m in range(c):
            if m >= 1:  # + sqrt(m/n) sech S[m-1, n-1]
                q[m, n, 1:, :] += math.sqrt(m / n) * q[m - 1, n - 1, :-1, :]
            if n >= 2:  # + sqrt((n-1)/n) tanh S[m, n-2]
                q[m, n, :, 1:] += math.sqrt((n - 1) / n) * q[m, n - 2, :, :-1]
    a, b = np.nonzero(np.add.outer(np.arange(c), np.arange(c)) < c)  # the monomials kept
    table = q[:, :, a, b].reshape(c * c, len(a)).T  # (K, c²)
    arrays = (a * 1.0, b * 1.0, table.copy())
    return tuple(torch.from_numpy(array).to(device) for array in arrays)


@functools.lru_cache(maxsize=16)
def _cubic_eigh(
    cutoff: int, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues / (3ħ) and eigenvectors ``U``, ``U^T`` of the truncated ``x³``."""
    a = torch.diag(torch.arange(1, cutoff, dtype=torch.float64).sqrt(), 1)
    x = math.sqrt(HBAR / 2) * (a + a.T)  # (c, c)
    eigenvalues, vectors = torch.linalg.eigh(x @ x @ x)
    u = vectors.to(device=device, dtype=torch.complex128)
    return (eigenvalues / (3 * HBAR)).to(device), u, u.T.contiguous()


def displacement_real(r: torch.Tensor, cutoff: int) -> torch.Tensor:
    """``D(r, 0)`` for real ``r``: float64 (..., c, c), from a cached polynomial table."""
    check_cutoff(cutoff)
    r = torch.as_tensor(r, dtype=torch.float64)
    table = _displacement_table(cutoff, r.device)  # (2c-1, c²)
    poly = _powers(r, 2 * cutoff - 1) @ table  # (..., c²)
    scale = torch.exp(-0.5 * r * r)[..., None]  # (..., 1)
    return (scale * poly).reshape(*r.shape, cutoff, cutoff)


def squeezing_real(r: torch.Tensor, cutoff: int) -> torch.Tensor:
    """``S(r, 0)`` for real ``r``: float64 (..., c, c), from a cached polynomial table."""
    check_cutoff(cutoff)
    r = torch.as_tensor(r, dtype=torch.float64)
    sech = 1.0 / torch.cosh(r)  # (...)
    a, b, table = _squeezing_table(cutoff, r.device)  # (K,), (K,), (K, c²)
    monomials = sech[..., None] ** a * torch.tanh(r)[..., None] ** b  # (..., K)
    poly = monomials @ table  # (..., c²)
    return (sech.sqrt()[..., None] * poly).reshape(*r.shape, cutoff, cutoff)


def vacuum_row(params: torch.Tensor, cutoff: int, *, squeeze: bool = True) -> torch.Tensor:
    """Row 0 of :func:`one_mode_layers`, ``<0| G_N ... G_1``: complex128 (..., c), to ~1e-14."""
    _check_layers(params)
    check_cutoff(cutoff)
    p = params.to(torch.float64)  # (..., L, 6): sq, d, r1, r2, r3, κ
    clipped = p.clamp(-CLIP, CLIP)  # sq, d and κ are used clipped
    n = torch.arange(cutoff, dtype=torch.float64, device=p.device)
    phases = torch.exp(1j * p[..., 2:5, None] * n)  # (..., L, 3, c): R(r1), R(r2), R(r3)
    eigenvalues, u, u_t = _cubic_eigh(cutoff, p.device)
    cubic = torch.exp(1j * clipped[..., 5, None] * eigenvalues)  # (..., L, c)
    # one matrix per layer, V R(r3) D R(r2) S R(r1): (..., L, c, c)
    layer = phases[..., 2, :, None] * displacement_real(clipped[..., 1], cutoff)
    layer = layer * phases[..., 1, None, :]  # R(r3) D R(r2)
    if squeeze:
        layer = layer @ (squeezing_real(clipped[..., 0], cutoff) * phases[..., 0, None, :])
    else:
        layer = layer * phases[..., 0, None, :]
    layer = ((u * cubic[..., None, :]) @ u_t) @ layer  # V(κ) = U diag(e^{iκλ/6}) U^T first
    row = layer[..., -1, 0, :]  # <0| times the last layer: (..., c)
    for index in reversed(range(p.shape[-2] - 1)):
        row = (row.unsqueeze(-2) @ layer[..., index, :, :]).squeeze(-2)
    return row
