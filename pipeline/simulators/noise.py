"""The paper's circuit under finite shots and noise: exact density matrices, sampling, PennyLane.

How does a trained head hold up with 1,000 shots, or with 1 % depolarizing noise per gate?
This module scores the circuit of :mod:`pipeline.simulators.qubit` (H on every wire,
``RY(x_i)``, then ``q_depth`` layers of CNOTs on (0,1), (2,3), … and (1,2), (3,4), … followed by
``RY(w[k, i])``; outputs ``<Z_i>``; wire 0 is the most significant bit) on noisy and
finite-shot simulators.

* :func:`circuit_ops` describes the circuit once as a list of :class:`Op` (gate name, wires,
  which parameter); :func:`noisy_ops` inserts the noise channels of a :class:`NoiseModel`
  after every gate on every wire it touches. Every simulator below runs that one list, so all
  paths apply exactly the same sequence of gates and channels.
* :func:`density_matrix` / :func:`basis_probabilities` / :func:`expectations`: an exact,
  batched torch density-matrix simulation. H, RY, CNOT, the depolarizing channel and
  amplitude damping all have real Kraus operators (``Y rho Y^† = A rho A^T`` with the real
  ``A = -iY``), so ``rho`` stays real symmetric and the whole evolution runs in real
  arithmetic. Gates and channels are tensor contractions on one wire's row and column bit
  of ``rho`` viewed as (B, 2, …, 2, 2, …, 2), CNOTs a gather; the result is ``B * 4^n``
  numbers (n = 8, B = 153: 80 MB in float64), computed in cache-sized chunks of samples.
* :func:`sample_counts` / :func:`sample_expectations`: ``shots`` measurements per sample,
  drawn with a seeded ``torch.Generator``; readout error is applied to the distribution of
  the read bits before sampling (a bit-flip channel on the diagonal, which is the same as
  flipping each sampled bit).
* :class:`NoisyTorchCircuit` and :class:`NoisyPennyLaneCircuit` wrap these as modules with
  the ``(x (B, n), weights (depth, n)) -> <Z> (B, n)`` call of ``pipeline.simulators.qubit``'s
  circuits, so they can replace ``DressedQuantumNet.circuit`` to score a trained head;
  :func:`make_noisy_circuit` picks one by backend name. Any PennyLane device that can
  simulate noise (``default.mixed``) or a plugin device with ``shots`` runs the same op list.

Example:
    >>> noise = NoiseModel(depolarizing=0.01)
    >>> x, w = torch.zeros(8, 4, dtype=torch.float64), torch.zeros(6, 4, dtype=torch.float64)
    >>> expectations(x, w, noise, shots=1000, generator=0).shape
    torch.Size([8, 4])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
from torch import nn

from pipeline.common.errors import ConfigError, PipelineError

#: Config section named in error messages.
SECTION = "evaluate"

#: The mixed-state PennyLane simulator every noisy setting can run on.
MIXED_DEVICE = "default.mixed"

#: Gate-noise fields of :class:`NoiseModel`, in the order their channels follow a gate, and
#: the PennyLane channel each one is (``qml.<name>(p, wires=wire)``).
GATE_CHANNELS = {"depolarizing": "DepolarizingChannel", "amplitude_damping": "AmplitudeDamping"}

#: The PennyLane channel of ``NoiseModel.readout_error``, applied to every wire before readout.
READOUT_CHANNEL = "BitFlip"

#: Density matrices are simulated in chunks of about this many numbers (B * 4^n) of samples.
CHUNK_ELEMENTS = 2**18


# ------------------------------------------------------------------ the op list


@dataclass(frozen=True)
class Angle:
    """The parameter an RY takes: ``inputs[:, index[0]]`` or ``weights[index]``."""

    source: Literal["inputs", "weights"]
    index: tuple[int, ...]  # (wire,) into a sample's inputs, (layer, wire) into the weights


@dataclass(frozen=True)
class Op:
    """One gate or channel: a PennyLane operation name, its wires and its parameter.

    ``name`` is ``Hadamard``, ``RY``, ``CNOT`` or a channel of :data:`GATE_CHANNELS`;
    ``param`` is an :class:`Angle` for RY, the probability for a channel, None otherwise.
    """

    name: str
    wires: tuple[int, ...]
    param: Angle | float | None = None


def circuit_ops(n_qubits: int, q_depth: int) -> tuple[Op, ...]:
    """The noiseless circuit, gate by gate.

    Args:
        n_qubits: number of wires, >= 1.
        q_depth: number of entangling + RY layers, >= 0.

    Returns:
        ``2 n + q_depth * (2 n - 1)`` ops: H on every wire, RY(x_i) on every wire, then per
        layer the CNOTs on (0,1), (2,3), …, those on (1,2), (3,4), … and RY(w[k, i]).

    Example:
        >>> [op.name for op in circuit_ops(2, 1)]
        ['Hadamard', 'Hadamard', 'RY', 'RY', 'CNOT', 'RY', 'RY']
    """
    _check_size(n_qubits, q_depth)
    ops = [Op("Hadamard", (wire,)) for wire in range(n_qubits)]
    ops += [Op("RY", (wire,), Angle("inputs", (wire,))) for wire in range(n_qubits)]
    for layer in range(q_depth):
        for first in (0, 1):
            ops += [Op("CNOT", (c, c + 1)) for c in range(first, n_qubits - 1, 2)]
        ops += [Op("RY", (w,), Angle("weights", (layer, w))) for w in range(n_qubits)]
    return tuple(ops)


def noisy_ops(n_qubits: int, q_depth: int, noise: NoiseModel) -> tuple[Op, ...]:
    """:func:`circuit_ops` with the gate noise of ``noise`` after every gate.

    After each gate, for each wire it touches (control, then target), the channels of
    :data:`GATE_CHANNELS` with a non-zero probability follow in that order (depolarizing, then
    amplitude damping: the two do not commute). Readout error is not in the list: it acts on
    the measured bits (see :func:`readout_probabilities`).

    Example:
        >>> [op.name for op in noisy_ops(1, 0, NoiseModel(depolarizing=0.1))]
        ['Hadamard', 'DepolarizingChannel', 'RY', 'DepolarizingChannel']
    """
    channels = noise.gate_channels()
    ops = []
    for op in circuit_ops(n_qubits, q_depth):
        ops.append(op)
        ops += [Op(name, (wire,), p) for wire in op.wires for name, p in channels]
    return tuple(ops)


def _check_size(n_qubits: int, q_depth: int) -> None:
    for name, value, low in (("n_qubits", n_qubits, 1), ("q_depth", q_depth, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{SECTION}.{name}: expected an integer >= {low}; got {value!r}")


# ------------------------------------------------------------------ the noise model


@dataclass(frozen=True)
class NoiseModel:
    """Per-gate noise and readout error; all zero is the noiseless circuit.

    Args:
        depolarizing: probability p of PennyLane's ``DepolarizingChannel`` after every gate
            on every wire it touches: ``rho -> (1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z)``,
            which shrinks the Bloch vector by ``1 - 4p/3`` (p = 3/4 depolarizes fully).
        amplitude_damping: gamma of ``AmplitudeDamping`` after every gate on every touched
            wire (after the depolarizing channel).
        readout_error: symmetric bit-flip probability q of each measured bit; exact values
            become ``(1 - 2q) <Z_i>``.

    More channels fit the same shape: a field here, its PennyLane name in
    :data:`GATE_CHANNELS` and its real Kraus operators in ``_kraus``.

    Raises:
        ConfigError: a value is not a probability in [0, 1] (the message names the key).

    Example:
        >>> NoiseModel(depolarizing=0.01).gate_channels()
        (('DepolarizingChannel', 0.01),)
    """

    depolarizing: float = 0.0
    amplitude_damping: float = 0.0
    readout_error: float = 0.0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0.0 <= value <= 1.0  # False for NaN too
            ):
                raise ConfigError(
                    f"{SECTION}.{field.name}: expected probabilities in [0, 1]; got {value!r}"
                )
            object.__setattr__(self, field.name, float(value))

    @property
    def noiseless(self) -> bool:
        """True when every probability is 0."""
        return all(getattr(self, f.name) == 0.0 for f in fields(self))

    def gate_channels(self) -> tuple[tuple[str, float], ...]:
        """(PennyLane channel name, probability) for each non-zero gate channel, in order."""
        values = ((name, getattr(self, key)) for key, name in GATE_CHANNELS.items())
        return tuple((name, p) for name, p in values if p > 0.0)


NOISELESS = NoiseModel()


# ------------------------------------------------------------------ torch: density matrix


def _kraus(name: str, p: float | None) -> list[np.ndarray]:
    """Real Kraus operators (2, 2) of a fixed single-qubit gate or channel."""
    eye, x, z = np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]]), np.diag([1.0, -1.0])
    if name == "Hadamard":
        return [(x + z) / math.sqrt(2)]
    if name == "DepolarizingChannel":
        minus_iy = np.array([[0.0, -1.0], [1.0, 0.0]])  # -iY: A rho A^T = Y rho Y^dagger
        return [math.sqrt(1 - p) * eye] + [math.sqrt(p / 3) * k for k in (x, minus_iy, z)]
    if name == "AmplitudeDamping":
        return [np.diag([1.0, math.sqrt(1 - p)]), np.array([[0.0, math.sqrt(p)], [0.0, 0.0]])]
    if name == "BitFlip":
        return [math.sqrt(1 - p) * eye, math.sqrt(p) * x]
    raise ConfigError(f"{SECTION}: no torch implementation of the channel {name!r}")


def _superoperator(kraus: torch.Tensor) -> torch.Tensor:
    """S (..., 4, 4) of real Kraus operators (..., k, 2, 2): sum_k K (x) K.

    ``rho'[a, b] = sum_{c, d} S[2a + b, 2c + d] rho[c, d]`` on one wire's row and column bit.
    """
    s = torch.einsum("...kac,...kbd->...abcd", kraus, kraus)  # (..., 2, 2, 2, 2)
    return s.reshape(*s.shape[:-4], 4, 4)


def _ry(angles: torch.Tensor) -> torch.Tensor:
    """RY matrices (..., 2, 2) for angles (...)."""
    c, s = torch.cos(angles * 0.5), torch.sin(angles * 0.5)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


@functools.lru_cache(maxsize=256)
def _cnot_index(n_qubits: int, control: int, target: int) -> torch.Tensor:
    """Flat gather index (4^n,) of ``rho -> CNOT rho CNOT``: new[k, l] = rho[pi[k], pi[l]]."""
    k = torch.arange(2**n_qubits)
    perm = k ^ (((k >> (n_qubits - 1 - control)) & 1) << (n_qubits - 1 - target))  # involution
    return (perm[:, None] * 2**n_qubits + perm[None, :]).reshape(-1)


Step = tuple[tuple[int, ...], "torch.Tensor | None"]


def _fused_steps(inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel) -> list[Step]:
    """:func:`noisy_ops` as steps: ``((control, target), None)`` for a CNOT, or ``((wire,),
    S)`` with a superoperator S (4, 4), or (B, 4, 4) when it holds an input angle.

    The one-wire ops on a wire up to the next CNOT on it are multiplied into one S: one-wire
    maps on different wires commute, so this is the same map in a third of the passes.
    """
    n, depth = inputs.shape[1], weights.shape[0]
    fixed: dict[tuple[str, float | None], torch.Tensor] = {}  # Hadamard and channels
    pending: dict[int, torch.Tensor] = {}  # wire -> product of its one-wire maps so far
    steps: list[Step] = []
    for op in noisy_ops(n, depth, noise):
        if op.name == "CNOT":
            steps += [((w,), pending.pop(w)) for w in op.wires if w in pending]
            steps.append((op.wires, None))
            continue
        if op.name == "RY":
            angle = op.param
            theta = inputs[:, angle.index[0]] if angle.source == "inputs" else weights[angle.index]
            superop = _superoperator(_ry(theta).unsqueeze(-3))  # (B, 4, 4) or (4, 4)
        else:
            key = (op.name, op.param)
            if key not in fixed:
                kraus = np.stack(_kraus(*key))  # (k, 2, 2)
                fixed[key] = _superoperator(torch.as_tensor(kraus).to(inputs))
            superop = fixed[key]
        wire = op.wires[0]
        pending[wire] = superop @ pending[wire] if wire in pending else superop
    return steps + [((w,), pending[w]) for w in sorted(pending)]


def _apply_single(rho: torch.Tensor, superop: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """Apply a one-wire superoperator (4, 4) or per sample (B, 4, 4) to rho (B, D, D)."""
    batch, dim = rho.shape[0], 2**n
    left, right = 2**wire, 2 ** (n - wire - 1)
    view = rho.reshape(batch, left, 2, right, left, 2, right)  # (B, L, row bit, R, L, col bit, R)
    s = superop.reshape(*superop.shape[:-2], 2, 2, 2, 2)  # (..., a, b, c, d)
    spec = "xabcd," if s.ndim == 5 else "abcd,"
    return torch.einsum(spec + "xicjkdl->xiajkbl", s, view).reshape(batch, dim, dim)


def _run_steps(steps: list[Step], start: int, stop: int, n: int, like: torch.Tensor):
    """rho (stop - start, D, D) of samples start:stop, from |0...0><0...0|."""
    batch, dim = stop - start, 2**n
    rho = like.new_zeros(batch, dim, dim)
    rho[:, 0, 0] = 1.0
    for wires, superop in steps:
        if superop is None:  # a CNOT: a permutation of rows and columns
            index = _cnot_index(n, *wires).to(rho.device)
            rho = rho.reshape(batch, dim * dim)[:, index].reshape(batch, dim, dim)
        else:
            superop = superop[start:stop] if superop.ndim == 3 else superop
            rho = _apply_single(rho, superop, wires[0], n)
    return rho


def _check_angles(inputs: torch.Tensor, weights: torch.Tensor) -> tuple[int, int]:
    """(n_qubits, q_depth) of inputs (B, n) and weights (depth, n)."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 2 or inputs.shape[1] < 1:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise PipelineError(f"expected inputs of shape (B, n_qubits); got {got}")
    if not inputs.is_floating_point():
        raise PipelineError(f"expected floating-point inputs; got {inputs.dtype}")
    n = inputs.shape[1]
    if not isinstance(weights, torch.Tensor) or weights.ndim != 2 or weights.shape[1] != n:
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise PipelineError(f"expected weights of shape (q_depth, {n}); got {got}")
    return n, weights.shape[0]


def density_matrix(
    inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel = NOISELESS
) -> torch.Tensor:
    """The exact state after the circuit with gate noise, batched over samples.

    Runs :func:`noisy_ops`: each one-wire gate or channel is a superoperator contracted with
    that wire's row and column bit of rho (B, 2, …, 2, 2, …, 2), and the one-wire ops on a
    wire between two CNOTs on it are first multiplied into one (they commute with the ops on
    other wires). A CNOT permutes rows and columns. The samples are simulated in chunks of
    about :data:`CHUNK_ELEMENTS` numbers, which keeps each chunk's rho in the CPU cache.

    Args:
        inputs: angles x (B, n), float64 (or float32: the computation uses their dtype).
        weights: circuit weights w (q_depth, n).
        noise: only the gate channels act on the state; readout error acts on the read bits.

    Returns:
        rho (B, 2^n, 2^n): real symmetric, trace 1, wire 0 the most significant bit.

    Raises:
        PipelineError: the shapes do not fit (``expected …; got …``).

    Example:
        >>> density_matrix(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(1, 2)).shape
        torch.Size([3, 4, 4])
    """
    n, _ = _check_angles(inputs, weights)
    weights = weights.to(inputs)
    steps = _fused_steps(inputs, weights, noise)
    batch, chunk = inputs.shape[0], max(1, CHUNK_ELEMENTS // 4**n)
    if batch <= chunk:
        return _run_steps(steps, 0, batch, n, inputs)
    # chunks of samples whose rho stays in the CPU cache through all steps
    return torch.cat(
        [_run_steps(steps, i, min(i + chunk, batch), n, inputs) for i in range(0, batch, chunk)]
    )


def basis_probabilities(
    inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel = NOISELESS
) -> torch.Tensor:
    """Probabilities (B, 2^n) of the basis states before readout: the diagonal of rho.

    Example:
        >>> basis_probabilities(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(0, 2))
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]], dtype=torch.float64)
    """
    return torch.diagonal(density_matrix(inputs, weights, noise), dim1=1, dim2=2)


# ------------------------------------------------------------------ torch: readout, shots


def _z_signs(n_qubits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(2^n, n): 1 - 2 bit_i(k), wire 0 the most significant bit."""
    k = torch.arange(2**n_qubits, device=device)
    bits = (k[:, None] >> torch.arange(n_qubits - 1, -1, -1, device=device)[None, :]) & 1
    return (1 - 2 * bits).to(dtype)


def _check_probabilities(probs: torch.Tensor) -> int:
    """n_qubits of a batch of basis-state distributions (B, 2^n)."""
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or not probs.is_floating_point():
        got = (
            f"{tuple(probs.shape)} {probs.dtype}"
            if isinstance(probs, torch.Tensor)
            else type(probs).__name__
        )
        raise PipelineError(f"expected floating-point probabilities of shape (B, 2^n); got {got}")
    dim = probs.shape[1]
    if dim < 2 or dim & (dim - 1):
        raise PipelineError(f"expected probabilities of shape (B, 2^n); got {tuple(probs.shape)}")
    tol = 1e-9 if probs.dtype == torch.float64 else 1e-5
    sums = probs.sum(dim=1)
    if not bool(torch.isfinite(probs).all()) or bool((probs < -tol).any()):
        raise PipelineError("expected finite, non-negative probabilities")
    if bool(((sums - 1).abs() > tol * dim).any()):
        raise PipelineError(f"expected probabilities that sum to 1; got sums {sums.tolist()[:8]}")
    return dim.bit_length() - 1


def _check_shots(shots: int | None, *, optional: bool = False) -> int | None:
    if shots is None and optional:
        return None
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        expected = "a positive integer or null" if optional else "a positive integer"
        raise ConfigError(f"{SECTION}.shots: expected {expected}; got {shots!r}")
    return int(shots)


def _generator(generator: torch.Generator | int | None, device: torch.device):
    """A torch.Generator: as given, seeded from an int, or None for torch's global one."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise ConfigError(f"{SECTION}.seed: expected an integer; got {generator!r}")
    return torch.Generator(device=device).manual_seed(int(generator))


def readout_probabilities(probs: torch.Tensor, readout_error: float) -> torch.Tensor:
    """Distribution (B, 2^n) of the read bits when each bit flips with probability q.

    The bit-flip channel on the diagonal, wire by wire: ``p'(.., 0, ..) = (1 - q) p(.., 0, ..)
    + q p(.., 1, ..)``; sampling from it is the same as flipping each sampled bit.

    Example:
        >>> readout_probabilities(torch.tensor([[1.0, 0.0]], dtype=torch.float64), 0.25)
        tensor([[0.7500, 0.2500]], dtype=torch.float64)
    """
    n = _check_probabilities(probs)
    q = NoiseModel(readout_error=readout_error).readout_error
    if q == 0.0:
        return probs
    batch, dim = probs.shape
    for wire in range(n):
        zero, one = probs.reshape(batch, 2**wire, 2, -1).unbind(2)  # (B, 2^wire, 2^(n-wire-1))
        probs = torch.stack([(1 - q) * zero + q * one, q * zero + (1 - q) * one], 2)
        probs = probs.reshape(batch, dim)
    return probs


def z_expectations(probs: torch.Tensor) -> torch.Tensor:
    """Exact ``<Z_i>`` (B, n) of basis-state distributions (B, 2^n)."""
    n = _check_probabilities(probs)
    return probs @ _z_signs(n, probs.dtype, probs.device)  # (B, n)


def sample_counts(
    probs: torch.Tensor, shots: int, *, generator: torch.Generator | int | None = None
) -> torch.Tensor:
    """Counts (B, 2^n), int64, of ``shots`` draws per row from distributions (B, 2^n).

    A multinomial draw per row, as n vectorised rounds of conditional binomials down the
    binary tree of basis states (wire 0 first): the cost is O(B 2^n), whatever ``shots``.

    Args:
        probs: basis-state probabilities (B, 2^n) (rounding noise below 0 is clipped).
        shots: draws per row, >= 1.
        generator: a ``torch.Generator``, or an int seed for a fresh one, or None for torch's
            global generator. The same seed gives bitwise the same counts.

    Raises:
        ConfigError: ``shots`` is not a positive integer, or the seed not an integer.
        PipelineError: ``probs`` is not a batch of distributions over 2^n states.

    Example:
        >>> sample_counts(torch.tensor([[0.5, 0.5]], dtype=torch.float64), 10, generator=0).sum()
        tensor(10)
    """
    n = _check_probabilities(probs)
    shots = _check_shots(shots)
    gen = _generator(generator, probs.device)
    probs = probs.to(torch.float64).clamp(min=0.0)
    batch = probs.shape[0]
    counts = torch.full((batch, 1), float(shots), dtype=torch.float64, device=probs.device)
    for level in range(n):
        mass = probs.reshape(batch, 2 ** (level + 1), -1).sum(-1)  # (B, 2^(level + 1))
        zero, total = mass[:, 0::2], mass[:, 0::2] + mass[:, 1::2]  # (B, 2^level)
        p_zero = torch.where(total > 0, zero / total, 0.0).clamp(0.0, 1.0)  # 0/0: no counts
        counts_zero = torch.binomial(counts, p_zero, generator=gen)  # (B, 2^level)
        counts = torch.stack([counts_zero, counts - counts_zero], -1).reshape(batch, -1)
    return counts.to(torch.int64)


def sample_expectations(
    probs: torch.Tensor,
    shots: int,
    *,
    readout_error: float = 0.0,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """Finite-shot estimates (B, n) of ``<Z_i>``: the mean of ``1 - 2 bit_i`` over the shots.

    Unbiased for the exact value with readout error, ``z_expectations(readout_probabilities(
    probs, readout_error))``; its variance is ``(1 - <Z_i>^2) / shots``.

    Args:
        probs: basis-state probabilities (B, 2^n) before readout.
        shots: measurements per row, >= 1.
        readout_error: symmetric flip probability of each read bit.
        generator: see :func:`sample_counts`.

    Returns:
        Estimates (B, n) in the dtype of ``probs``.
    """
    read = readout_probabilities(probs, readout_error)
    counts = sample_counts(read, shots, generator=generator)  # (B, 2^n)
    n = probs.shape[1].bit_length() - 1
    signs = _z_signs(n, torch.float64, probs.device)  # (2^n, n)
    return (counts.to(torch.float64) @ signs / shots).to(probs.dtype)  # (B, n)


def expectations(
    inputs: torch.Tensor,
    weights: torch.Tensor,
    noise: NoiseModel = NOISELESS,
    *,
    shots: int | None = None,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """``<Z_i>`` (B, n) of the noisy circuit: exact for ``shots=None``, else sampled.

    Args:
        inputs: angles (B, n); weights: (q_depth, n).
        noise: gate noise and readout error.
        shots: None for exact values, else measurements per sample.
        generator: see :func:`sample_counts` (only used with shots).

    Example:
        >>> expectations(torch.zeros(2, 1, dtype=torch.float64), torch.zeros(0, 1))
        tensor([[0.], [0.]], dtype=torch.float64)
    """
    shots = _check_shots(shots, optional=True)
    probs = basis_probabilities(inputs, weights, noise)  # (B, 2^n)
    if shots is None:
        return z_expectations(readout_probabilities(probs, noise.readout_error))
    return sample_expectations(probs, shots, readout_error=noise.readout_error, generator=generator)


# ------------------------------------------------------------------ modules


class NoisyTorchCircuit(nn.Module):
    """The noisy circuit in torch, called like ``pipeline.simulators.qubit.TorchCircuit``.

    Args:
        n_qubits, q_depth: circuit size.
        noise: gate noise and readout error.
        shots: None for exact values, else measurements per sample.
        seed: seeds the module's generator for shots (created on the inputs' device at the
            first call); successive calls continue its stream. None: torch's global RNG.

    Call with inputs ``x`` (B, n) and weights ``w`` (q_depth, n); returns ``<Z_i>`` (B, n).

    Example:
        >>> circuit = NoisyTorchCircuit(4, 6, NoiseModel(depolarizing=0.01), shots=100, seed=0)
        >>> circuit(torch.zeros(5, 4, dtype=torch.float64), torch.zeros(6, 4)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        n_qubits: int,
        q_depth: int,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        _check_size(n_qubits, q_depth)
        self.n_qubits, self.q_depth, self.noise = n_qubits, q_depth, noise
        self.shots = _check_shots(shots, optional=True)
        self.seed = seed
        self._generator: torch.Generator | None = None
        _generator(seed, torch.device("cpu"))  # validates the seed

    def extra_repr(self) -> str:
        return f"n_qubits={self.n_qubits}, q_depth={self.q_depth}, noise={self.noise}, " + (
            f"shots={self.shots}, seed={self.seed}"
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_call(x, weights, self.n_qubits, self.q_depth)
        if self.shots is not None and self.seed is not None:
            if self._generator is None or self._generator.device != x.device:
                self._generator = _generator(self.seed, x.device)
        return expectations(x, weights, self.noise, shots=self.shots, generator=self._generator)


def _check_call(x: torch.Tensor, weights: torch.Tensor, n_qubits: int, q_depth: int) -> None:
    n, depth = _check_angles(x, weights)
    if (n, depth) != (n_qubits, q_depth):
        raise PipelineError(
            f"expected inputs (B, {n_qubits}) and weights ({q_depth}, {n_qubits}); "
            f"got {tuple(x.shape)} and {tuple(weights.shape)}"
        )


# ------------------------------------------------------------------ PennyLane


def installed_devices() -> list[str]:
    """Names of the installed PennyLane devices, sorted."""
    import pennylane as qml  # lazily: importing PennyLane takes seconds; torch paths never need it

    return sorted(qml.plugin_devices)


def _pennylane_circuit(qml, n_qubits: int, q_depth: int, noise: NoiseModel):
    """The quantum function of :func:`noisy_ops` plus readout bit flips, broadcast over B."""
    ops = noisy_ops(n_qubits, q_depth, noise)

    def circuit(inputs, weights):  # inputs (B, n), weights (q_depth, n)
        for op in ops:
            gate = getattr(qml, op.name)
            if isinstance(op.param, Angle):
                index = op.param.index
                angle = inputs[..., index[0]] if op.param.source == "inputs" else weights[index]
                gate(angle, wires=op.wires)
            elif op.param is None:
                gate(wires=op.wires)
            else:
                gate(op.param, wires=op.wires)
        if noise.readout_error > 0.0:
            for wire in range(n_qubits):
                getattr(qml, READOUT_CHANNEL)(noise.readout_error, wires=wire)
        return [qml.expval(qml.PauliZ(wire)) for wire in range(n_qubits)]

    return circuit


def _check_noise_support(qml, dev, name: str, noise: NoiseModel) -> None:
    """Raise ConfigError unless the device's preprocessing accepts the noise channels."""
    channels = list(noise.gate_channels())
    if noise.readout_error > 0.0:
        channels.append((READOUT_CHANNEL, noise.readout_error))
    wire = dev.wires[0] if dev.wires else 0
    tape = qml.tape.QuantumScript(
        [getattr(qml, channel)(p, wires=wire) for channel, p in channels],
        [qml.expval(qml.PauliZ(wire))],
    )
    if hasattr(dev, "preprocess_transforms"):
        program = dev.preprocess_transforms()
    else:  # PennyLane < 0.41
        program = dev.preprocess()[0]
    device_error = getattr(getattr(qml, "exceptions", None), "DeviceError", None)
    device_error = device_error or qml.DeviceError  # PennyLane < 0.42
    try:
        program((tape,))
    except device_error as exc:
        names = ", ".join(channel for channel, _ in channels)
        raise ConfigError(
            f"{SECTION}.backend: the PennyLane device {name!r} cannot simulate noise "
            f"({names}); expected a mixed-state simulator such as {MIXED_DEVICE!r}, "
            "or no noise for a noiseless device or real hardware"
        ) from exc


class NoisyPennyLaneCircuit(nn.Module):
    """The same op list as a PennyLane QNode on any device, batched by parameter broadcasting.

    For scoring only: no gradients (``diff_method=None``); inputs go to the device as
    float64 numpy arrays and the results come back in the inputs' dtype.

    Args:
        device: an installed PennyLane device name: ``default.mixed`` for noise, any device
            (``default.qubit``, ``lightning.qubit``, a hardware plugin) without noise.
        n_qubits, q_depth: circuit size.
        noise: inserted as ``qml.DepolarizingChannel`` / ``qml.AmplitudeDamping`` after every
            gate on each touched wire, and ``qml.BitFlip`` on every wire before measurement.
        shots: None for exact expectation values, else the number of samples.
        seed: seeds the device's sampling when ``shots`` is set.

    Raises:
        ConfigError: the device is not installed (the message lists the installed ones), or
            it cannot simulate the requested noise (the message names ``default.mixed``).

    Example:
        >>> circuit = NoisyPennyLaneCircuit("default.mixed", 4, 6, NoiseModel(depolarizing=0.01))
        >>> circuit(torch.zeros(5, 4, dtype=torch.float64), torch.zeros(6, 4)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        device: str,
        n_qubits: int,
        q_depth: int,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        import pennylane as qml  # lazily: importing PennyLane takes seconds

        _check_size(n_qubits, q_depth)
        shots = _check_shots(shots, optional=True)
        if device not in qml.plugin_devices:
            raise ConfigError(
                f"{SECTION}.backend: unknown backend {device!r}; expected 'torch' or an "
                f"installed PennyLane device: {', '.join(installed_devices())}"
            )
        self.n_qubits, self.q_depth, self.noise = n_qubits, q_depth, noise
        self.device_name, self.shots = device, shots
        dev = (
            qml.device(device, wires=n_qubits)
            if shots is None
            else qml.device(device, wires=n_qubits, seed=seed)
        )
        if not noise.noiseless:
            _check_noise_support(qml, dev, device, noise)
        circuit = _pennylane_circuit(qml, n_qubits, q_depth, noise)
        qnode = qml.QNode(circuit, dev, interface="numpy", diff_method=None)
        self.qnode = qnode if shots is None else qml.set_shots(qnode, shots=shots)

    def extra_repr(self) -> str:
        return (
            f"device={self.device_name!r}, n_qubits={self.n_qubits}, q_depth={self.q_depth}, "
            f"noise={self.noise}, shots={self.shots}"
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_call(x, weights, self.n_qubits, self.q_depth)
        inputs = x.detach().to("cpu", torch.float64).numpy()  # (B, n)
        out = self.qnode(inputs, weights.detach().to("cpu", torch.float64).numpy())  # n x (B,)
        z = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in out], axis=-1)
        return torch.as_tensor(z, dtype=x.dtype, device=x.device)  # (B, n)


def make_noisy_circuit(
    backend: str,
    n_qubits: int,
    q_depth: int,
    noise: NoiseModel = NOISELESS,
    *,
    shots: int | None = None,
    seed: int | None = None,
) -> nn.Module:
    """:class:`NoisyTorchCircuit` for ``backend="torch"``, else a :class:`NoisyPennyLaneCircuit`.

    Example:
        >>> make_noisy_circuit("torch", 4, 6, NoiseModel(depolarizing=0.01), shots=1000, seed=0)
        NoisyTorchCircuit(...)
    """
    if backend == "torch":
        return NoisyTorchCircuit(n_qubits, q_depth, noise, shots=shots, seed=seed)
    return NoisyPennyLaneCircuit(backend, n_qubits, q_depth, noise, shots=shots, seed=seed)
