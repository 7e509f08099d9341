"""Truncated-Fock simulation of one- and two-mode photonic circuits: batched, differentiable.

Strawberry Fields' conventions, ħ = 2 (e.g. ``D(r, φ) = exp(alpha a† - alpha* a)``,
``alpha = r e^{iφ}``; ``S(r, θ) = exp((r/2)(e^{-iθ} a² - e^{iθ} a†²))``). Gates are exact
matrix elements below the cutoff (the cubic phase gate: ``matrix_exp`` of the truncated
generator), never renormalised: the paper's QQ readout depends on the lost norm.
Layouts: ``G[m, n] = <m|G|n>``, ``G[m, n, p, q] = <m, n|G|p, q>``, mode 0 first.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: ħ of the quadrature convention (Strawberry Fields' default).
HBAR = 2.0
#: Clip of squeezing, displacement and non-linear parameters in the paper's notebooks.
CLIP = 1.0

Param = torch.Tensor | float
_REAL = {torch.complex128: torch.float64, torch.complex64: torch.float32}


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in _REAL:
        raise ValueError(f"dtype: expected torch.complex128 or torch.complex64; got {dtype}")
    return _REAL[dtype]


def check_cutoff(cutoff: int) -> None:
    if not isinstance(cutoff, int) or isinstance(cutoff, bool) or cutoff < 1:
        raise ValueError(f"cutoff: expected an integer >= 1; got {cutoff!r}")


def _params(dtype: torch.dtype, *values: Param) -> list[torch.Tensor]:
    real = _real_dtype(dtype)
    return list(torch.broadcast_tensors(*(torch.as_tensor(v, dtype=real) for v in values)))


def _sqrt_n(cutoff: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(cutoff, dtype=like.real.dtype, device=like.device).sqrt()


def _shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([zero, x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)


def _diagonal(phases: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.exp(1j * phases))


def rotation(phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Phase rotation ``R(φ)``: (..., c, c) for ``phi`` of shape (...)."""
    check_cutoff(cutoff)
    (phi,) = _params(dtype, phi)
    n = torch.arange(cutoff, dtype=phi.dtype, device=phi.device)
    return _diagonal(phi[..., None] * n)  # (..., c, c)


def kerr(kappa: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Kerr gate ``K(κ)``: (..., c, c) for ``kappa`` of shape (...)."""
    check_cutoff(cutoff)
    (kappa,) = _params(dtype, kappa)
    n = torch.arange(cutoff, dtype=kappa.dtype, device=kappa.device)
    return _diagonal(kappa[..., None] * n * n)  # (..., c, c)


def coherent_state(
    r: Param, phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """``D(r, φ)|0>`` truncated, not renormalised: (..., c)."""
    check_cutoff(cutoff)
    r, phi = _params(dtype, r, phi)
    alpha = r * torch.exp(1j * phi)  # (...)
    column = [torch.exp(-0.5 * r * r).to(dtype)]
    for m in range(1, cutoff):
        column.append(alpha / math.sqrt(m) * column[-1])
    return torch.stack(column, dim=-1)  # (..., c)


def displacement(
    r: Param, phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """Displacement ``D(r, φ)``: (..., c, c) for ``r``, ``phi`` of shape (...)."""
    r, phi = _params(dtype, r, phi)
    first = coherent_state(r, phi, cutoff, dtype=dtype)  # (..., c)
    minus_conj = -(r * torch.exp(-1j * phi))[..., None]  # -alpha* (..., 1)
    sqrt_m = _sqrt_n(cutoff, first)
    columns = [first]
    for n in range(1, cutoff):
        prev = columns[-1]
        columns.append((minus_conj * prev + sqrt_m * _shift(prev, -1)) / math.sqrt(n))
    return torch.stack(columns, dim=-1)  # (..., c, c)


def squeezing(
    r: Param, theta: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """Squeezing ``S(r, θ)``: (..., c, c)."""
    check_cutoff(cutoff)
    r, theta = _params(dtype, r, theta)
    tanh = torch.tanh(r)
    sech = (1.0 / torch.cosh(r)).to(dtype)[..., None]  # (..., 1)
    down = -torch.exp(1j * theta) * tanh  # (...): the a†² coefficient
    up = (torch.exp(-1j * theta) * tanh)[..., None]  # (..., 1): the a² coefficient
    zero = torch.zeros_like(down)
    entries = [torch.sqrt(sech[..., 0])]
    for m in range(1, cutoff):
        entries.append(zero if m % 2 else math.sqrt((m - 1) / m) * down * entries[m - 2])
    columns = [torch.stack(entries, dim=-1)]  # (..., c)
    sqrt_m = _sqrt_n(cutoff, columns[0])
    for n in range(1, cutoff):
        column = sqrt_m * sech * _shift(columns[n - 1], -1) / math.sqrt(n)
        if n >= 2:
            column = column + math.sqrt((n - 1) / n) * up * columns[n - 2]
        columns.append(column)
    return torch.stack(columns, dim=-1)  # (..., c, c)


def beamsplitter(
    theta: Param, phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """Beamsplitter ``BS(θ, φ)``: (..., c, c, c, c), ``a† -> cos θ a† + e^{iφ} sin θ b†``."""
    check_cutoff(cutoff)
    theta, phi = _params(dtype, theta, phi)
    t = torch.cos(theta).to(dtype)[..., None, None]  # (..., 1, 1)
    s = (torch.sin(theta) * torch.exp(1j * phi))[..., None, None]  # (..., 1, 1)
    sqrt_n = _sqrt_n(cutoff, t)
    sqrt_m = sqrt_n[:, None]  # (c, 1)
    start = torch.zeros(cutoff, cutoff, dtype=dtype, device=t.device)
    start[0, 0] = 1.0
    planes = [start + torch.zeros_like(t)]  # G[:, :, p, 0], each (..., c_m, c_n)
    for p in range(1, cutoff):
        prev = planes[-1]
        planes.append(
            (t * sqrt_m * _shift(prev, -2) + s * sqrt_n * _shift(prev, -1)) / math.sqrt(p)
        )
    slices = [torch.stack(planes, dim=-1)]  # G[:, :, :, q], each (..., c_m, c_n, c_p)
    t, s = t[..., None], s[..., None]  # (..., 1, 1, 1)
    sqrt_m = sqrt_m[..., None]  # (c, 1, 1)
    sqrt_n = sqrt_n[:, None]  # (c, 1)
    for q in range(1, cutoff):
        prev = slices[-1]
        slices.append(
            (-s.conj() * sqrt_m * _shift(prev, -3) + t * sqrt_n * _shift(prev, -2)) / math.sqrt(q)
        )
    return torch.stack(slices, dim=-1)  # (..., c, c, c, c)


def cubic_phase(
    gamma: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """Cubic phase ``V(gamma)``: (..., c, c), the exponential of the truncated generator."""
    check_cutoff(cutoff)
    (gamma,) = _params(dtype, gamma)
    a = torch.diag(_sqrt_n(cutoff, gamma)[1:], 1)  # annihilation, a[m, m+1] = sqrt(m+1)
    x = math.sqrt(HBAR / 2) * (a + a.T)  # (c, c)
    x3 = x @ x @ x
    generator = gamma[..., None, None] / (3 * HBAR) * x3  # (..., c, c), Hermitian
    return torch.linalg.matrix_exp(1j * generator)


def fock_state(
    n: int | torch.Tensor, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """The Fock state ``|n>`` as a one-mode ket (..., c) for integer ``n`` of shape (...)."""
    check_cutoff(cutoff)
    _real_dtype(dtype)
    n = torch.as_tensor(n, dtype=torch.int64)
    if n.numel() and (int(n.min()) < 0 or int(n.max()) >= cutoff):
        raise ValueError(f"n: expected photon numbers in [0, {cutoff}); got {n.tolist()}")
    return torch.nn.functional.one_hot(n, cutoff).to(dtype)  # (..., c)


def _check_gate(gate: torch.Tensor, n_modes: int) -> int:
    cutoff = gate.shape[-1] if gate.ndim else 0
    if gate.ndim < 2 * n_modes or gate.shape[-2 * n_modes :] != (cutoff,) * (2 * n_modes):
        dims = ", ".join(["c"] * (2 * n_modes))
        raise ValueError(f"expected a {n_modes}-mode gate (..., {dims}); got {tuple(gate.shape)}")
    return cutoff


def apply_one_mode(gate: torch.Tensor, ket: torch.Tensor, mode: int | None = None) -> torch.Tensor:
    """Apply a one-mode gate (..., c, c) to kets (..., c), or to ``mode`` 0 or 1 of (..., c, c)."""
    c = _check_gate(gate, 1)
    if mode is None:
        if ket.ndim < 1 or ket.shape[-1] != c:
            raise ValueError(f"expected one-mode kets (..., {c}); got {tuple(ket.shape)}")
        return (gate @ ket.unsqueeze(-1)).squeeze(-1)  # (..., c)
    if ket.ndim < 2 or ket.shape[-2:] != (c, c):
        raise ValueError(f"expected two-mode kets (..., {c}, {c}); got {tuple(ket.shape)}")
    if mode == 0:
        return gate @ ket  # out[m, j] = sum_p G[m, p] ket[p, j]
    if mode == 1:
        return ket @ gate.transpose(-1, -2)  # out[i, n] = sum_q ket[i, q] G[n, q]
    raise ValueError(f"mode: expected None, 0 or 1; got {mode!r}")


def apply_two_mode(gate: torch.Tensor, ket: torch.Tensor) -> torch.Tensor:
    """Apply a two-mode gate (..., c, c, c, c) to two-mode kets (..., c, c)."""
    c = _check_gate(gate, 2)
    if ket.ndim < 2 or ket.shape[-2:] != (c, c):
        raise ValueError(f"expected two-mode kets (..., {c}, {c}); got {tuple(ket.shape)}")
    flat = gate.reshape(*gate.shape[:-4], c * c, c * c)  # (..., c², c²)
    out = flat @ ket.reshape(*ket.shape[:-2], c * c, 1)  # (..., c², 1)
    return out.reshape(*out.shape[:-2], c, c)


def circuit_matrix(
    circuit: Callable[[torch.Tensor], torch.Tensor],
    cutoff: int,
    n_modes: int = 1,
    *,
    dtype: torch.dtype = torch.complex128,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A circuit's gates multiplied into one gate, by running ``circuit`` on every basis state.

    ``circuit`` maps kets (B, c) or (B, c, c) to the kets after it, row by row.
    """
    check_cutoff(cutoff)
    if n_modes not in (1, 2):
        raise ValueError(f"n_modes: expected 1 or 2; got {n_modes!r}")
    dim = cutoff**n_modes
    basis = torch.eye(dim, dtype=dtype, device=device)  # row k = |k>
    kets = basis.reshape(dim, *(cutoff,) * n_modes)
    out = circuit(kets).reshape(dim, dim)  # row k = circuit |k>
    return out.T.reshape((cutoff,) * (2 * n_modes))
