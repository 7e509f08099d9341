"""Truncated-Fock simulation of one- and two-mode photonic circuits in torch.

Batched and differentiable: every gate parameter may carry leading batch dimensions ``(...)``
(a float, a 0-d tensor or a tensor of any shape), the gate matrices then carry the same
leading dimensions, and gradients flow by autograd. Everything is complex128 unless a
``dtype=`` says otherwise (parameters are cast to the matching real dtype first).

Conventions are Strawberry Fields' with ħ = 2 (``x = sqrt(ħ/2) (a + a†)``):

* ``R(φ) = exp(iφ n)``; Kerr ``K(κ) = exp(iκ n²)``.
* ``D(r, φ) = exp(alpha a† - alpha* a)`` with ``alpha = r e^{iφ}`` (``r`` may be negative).
* ``S(r, θ) = exp((r/2)(e^{-iθ} a² - e^{iθ} a†²))``.
* ``BS(θ, φ) = exp(θ (e^{iφ} a b† - e^{-iφ} a† b))``: ``a† -> cos θ a† + e^{iφ} sin θ b†``.
* ``V(gamma) = exp(i gamma/(3ħ) x³)`` = ``exp(i gamma/6 (a + a†)³)``.

Truncation: a gate is its exact Fock matrix elements ``<m|G|n>`` for ``m, n < cutoff``,
computed by recurrences (loops over the cutoff, never over the batch), not the exponential of
a truncated generator. The exception is the cubic phase gate, which has no closed form: it
is ``matrix_exp`` of the generator built from ``a`` truncated to the cutoff, as in Strawberry
Fields. Truncated gates are not exactly unitary; they are applied one after the other as in
Strawberry Fields' Fock backends, and the norm a state loses that way stays lost (nothing is
renormalised: the paper's QQ readout depends on it).

Layouts: a one-mode gate is ``(..., c, c)`` with ``G[m, n] = <m|G|n>``; a two-mode gate is
``(..., c, c, c, c)`` with ``G[m, n, p, q] = <m, n|G|p, q>``, mode 0 first (thewalrus' order;
Strawberry Fields' einsum wants ``(m, p, n, q)``, hence its ``transpose(0, 2, 1, 3)``). A
one-mode ket is ``(..., c)``; a two-mode ket is ``(..., c, c)`` with ``ket[i, j]`` the
amplitude of ``i`` photons in mode 0 and ``j`` in mode 1.

Example:
    >>> ket = coherent_state(1.0, 0.0, 30)[:, None] * fock_state(0, 30)  # |1> ⊗ |0>, (30, 30)
    >>> out = apply_two_mode(beamsplitter(torch.pi / 4, 0.0, 30), ket)  # 50:50 beamsplitter
    >>> half = coherent_state(2**-0.5, 0.0, 30)
    >>> bool(torch.allclose(out, half[:, None] * half))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: ħ of the quadrature convention (Strawberry Fields' default).
HBAR = 2.0
#: Clip of squeezing, displacement and non-linear (Kerr, cubic) parameters in the paper's
#: photonic notebooks (``tf.clip_by_value(x, -1, 1)``).
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
    """The parameters as real tensors of ``dtype``'s precision, broadcast to one shape."""
    real = _real_dtype(dtype)
    return list(torch.broadcast_tensors(*(torch.as_tensor(v, dtype=real) for v in values)))


def _sqrt_n(cutoff: int, like: torch.Tensor) -> torch.Tensor:
    """sqrt(0), sqrt(1), ..., sqrt(cutoff - 1) in ``like``'s real dtype and device."""
    return torch.arange(cutoff, dtype=like.real.dtype, device=like.device).sqrt()


def _shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` moved one step along ``dim``: out[k] = x[k - 1], out[0] = 0."""
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([zero, x.narrow(dim, 0, x.shape[dim] - 1)], dim=dim)


def _diagonal(phases: torch.Tensor) -> torch.Tensor:
    """diag(exp(i phases)) for real phases (..., c): (..., c, c)."""
    return torch.diag_embed(torch.exp(1j * phases))


def rotation(phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Phase rotation ``R(φ) = exp(iφ n)``: (..., c, c) for ``phi`` of shape (...).

    Example:
        >>> rotation(torch.pi, 3).diagonal().real.round().tolist()
        [1.0, -1.0, 1.0]
    """
    check_cutoff(cutoff)
    (phi,) = _params(dtype, phi)
    n = torch.arange(cutoff, dtype=phi.dtype, device=phi.device)
    return _diagonal(phi[..., None] * n)  # (..., c, c)


def kerr(kappa: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Kerr gate ``K(κ) = exp(iκ n²)``: (..., c, c) for ``kappa`` of shape (...).

    Example:
        >>> kerr(0.1, 3).diagonal().angle()  # κ n²
        tensor([0.0000, 0.1000, 0.4000], dtype=torch.float64)
    """
    check_cutoff(cutoff)
    (kappa,) = _params(dtype, kappa)
    n = torch.arange(cutoff, dtype=kappa.dtype, device=kappa.device)
    return _diagonal(kappa[..., None] * n * n)  # (..., c, c)


def coherent_state(
    r: Param, phi: Param, cutoff: int, *, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """``D(r, φ)|0>`` truncated (not renormalised): (..., c), the first column of D.

    Amplitudes ``e^{-|alpha|²/2} alpha^m / sqrt(m!)`` with ``alpha = r e^{iφ}``.

    Example:
        >>> coherent_state(0.0, 0.0, 3)
        tensor([1.+0.j, 0.+0.j, 0.+0.j], dtype=torch.complex128)
    """
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
    """Displacement ``D(r, φ)``, ``alpha = r e^{iφ}``: (..., c, c) for ``r``, ``phi`` (...).

    Recurrence: ``D[m, 0] = alpha/sqrt(m) D[m-1, 0]``, ``D[0, 0] = e^{-r²/2}``, and
    ``D[m, n] = -alpha*/sqrt(n) D[m, n-1] + sqrt(m/n) D[m-1, n-1]``, one column at a time.

    Example:
        >>> d = displacement(0.3, 1.0, 4)
        >>> bool(torch.allclose(d[:, 0], coherent_state(0.3, 1.0, 4)))
        True
    """
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
    """Squeezing ``S(r, θ) = exp((r/2)(e^{-iθ} a² - e^{iθ} a†²))``: (..., c, c).

    Recurrence (entries with ``m + n`` odd vanish): ``S[0, 0] = sqrt(sech r)``,
    ``S[m, 0] = -sqrt((m-1)/m) e^{iθ} tanh r S[m-2, 0]`` and
    ``S[m, n] = sqrt((n-1)/n) e^{-iθ} tanh r S[m, n-2] + sqrt(m/n) sech r S[m-1, n-1]``.

    Example:
        >>> s = squeezing(0.5, 0.0, 6)
        >>> round(float(s[2, 0].real), 6)  # -tanh(r) sqrt(sech r) / sqrt(2)
        -0.307719
    """
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
    """Beamsplitter ``BS(θ, φ) = exp(θ (e^{iφ} a b† - e^{-iφ} a† b))``: (..., c, c, c, c).

    ``G[m, n, p, q] = <m, n|BS|p, q>`` (mode 0 = ``a`` first), nonzero only for
    ``m + n = p + q``. With ``t = cos θ``, ``s = e^{iφ} sin θ``, from
    ``BS a† BS† = t a† + s b†`` and ``BS b† BS† = t b† - s* a†``:
    ``G[m, n, p, 0] = (t sqrt(m) G[m-1, n, p-1, 0] + s sqrt(n) G[m, n-1, p-1, 0]) / sqrt(p)``,
    ``G[m, n, p, q] = (-s* sqrt(m) G[m-1, n, p, q-1] + t sqrt(n) G[m, n-1, p, q-1]) / sqrt(q)``.

    Example:
        >>> bs = beamsplitter(0.3, 0.5, 4)
        >>> abs(complex(bs[0, 1, 1, 0]) - cmath.exp(0.5j) * math.sin(0.3)) < 1e-15  # <0,1|BS|1,0>
        True
    """
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
    """Cubic phase ``V(gamma) = exp(i gamma/(3ħ) x³)``, ħ = 2, ``x = a + a†``: (..., c, c).

    The only gate here built as the exponential of a truncated generator
    (``torch.linalg.matrix_exp``), exactly as Strawberry Fields builds it.

    Example:
        >>> bool(torch.allclose(cubic_phase(0.0, 5), torch.eye(5, dtype=torch.complex128)))
        True
    """
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
    """The Fock state ``|n>`` as a one-mode ket (..., c) for integer ``n`` of shape (...).

    Example:
        >>> fock_state(torch.tensor([0, 2]), 3).real.tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
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
    """Apply a one-mode gate to a one-mode ket, or to mode 0 or 1 of a two-mode ket.

    Args:
        gate: (..., c, c); leading dimensions broadcast against the ket's.
        ket: one-mode kets (..., c) when ``mode`` is None, else two-mode kets (..., c, c).
        mode: None, 0 or 1.

    Returns:
        The kets after the gate, same layout (batch dimensions broadcast).

    Example:
        >>> apply_one_mode(rotation(0.5, 2), fock_state(1, 2)[None]).angle()
        tensor([[0.0000, 0.5000]], dtype=torch.float64)
    """
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
    """Apply a two-mode gate (..., c, c, c, c) to two-mode kets (..., c, c).

    Example:
        >>> ket = fock_state(1, 3)[:, None] * fock_state(0, 3)[None, :]  # |1, 0>
        >>> out = apply_two_mode(beamsplitter(torch.pi / 2, 0.0, 3), ket)  # |0, 1>
        >>> out[0, 1].real.round(decimals=12).item()
        1.0
    """
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
    """A circuit's gates multiplied into one gate, by running it on every basis state.

    Args:
        circuit: maps a batch of kets (B, c) (one mode) or (B, c, c) (two modes) to the kets
            after the circuit, same shape; it must treat batch rows independently.
        cutoff: ``c``.
        n_modes: 1 or 2.
        dtype, device: of the basis states.

    Returns:
        The truncated circuit as a gate: (c, c) or (c, c, c, c) in this module's layout, to
        use with :func:`apply_one_mode` / :func:`apply_two_mode`. Applying it equals applying
        the circuit's truncated gates one by one.

    Example:
        >>> m = circuit_matrix(lambda k: apply_one_mode(rotation(0.5, 4), k), 4)
        >>> bool(torch.allclose(m, rotation(0.5, 4)))
        True
    """
    check_cutoff(cutoff)
    if n_modes not in (1, 2):
        raise ValueError(f"n_modes: expected 1 or 2; got {n_modes!r}")
    dim = cutoff**n_modes
    basis = torch.eye(dim, dtype=dtype, device=device)  # row k = |k>
    kets = basis.reshape(dim, *(cutoff,) * n_modes)
    out = circuit(kets).reshape(dim, dim)  # row k = circuit |k>
    return out.T.reshape((cutoff,) * (2 * n_modes))
