"""The paper's qubit circuit as one op list with noise channels, and its exact density matrix.

Every simulator runs :func:`noisy_ops`, so all apply the same gates and channels; all have real
Kraus operators, so :func:`density_matrix` runs in real arithmetic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch

from pipeline.common.errors import ConfigError, PipelineError

#: Config section named in error messages.
SECTION = "evaluate"

#: The mixed-state PennyLane simulator every noisy setting can run on.
MIXED_DEVICE = "default.mixed"

#: Gate-noise fields of :class:`NoiseModel`, in channel order, and their PennyLane channels.
GATE_CHANNELS = {"depolarizing": "DepolarizingChannel", "amplitude_damping": "AmplitudeDamping"}

#: The PennyLane channel of ``NoiseModel.readout_error``, applied to every wire before readout.
READOUT_CHANNEL = "BitFlip"

#: Density matrices are simulated in chunks of about this many numbers (B * 4^n).
CHUNK_ELEMENTS = 2**18


@dataclass(frozen=True)
class Angle:
    """The parameter an RY takes: ``inputs[:, index[0]]`` or ``weights[index]``."""

    source: Literal["inputs", "weights"]
    index: tuple[int, ...]  # (wire,) into a sample's inputs, (layer, wire) into the weights


@dataclass(frozen=True)
class Op:
    """One gate or channel: PennyLane name, wires, and an :class:`Angle`, probability or None."""

    name: str
    wires: tuple[int, ...]
    param: Angle | float | None = None


def circuit_ops(n_qubits: int, q_depth: int) -> tuple[Op, ...]:
    """The noiseless circuit: H, RY(x_i) on every wire, then per layer CNOTs and RY(w[k, i])."""
    check_size(n_qubits, q_depth)
    ops = [Op("Hadamard", (wire,)) for wire in range(n_qubits)]
    ops += [Op("RY", (wire,), Angle("inputs", (wire,))) for wire in range(n_qubits)]
    for layer in range(q_depth):
        for first in (0, 1):
            ops += [Op("CNOT", (c, c + 1)) for c in range(first, n_qubits - 1, 2)]
        ops += [Op("RY", (w,), Angle("weights", (layer, w))) for w in range(n_qubits)]
    return tuple(ops)


def noisy_ops(n_qubits: int, q_depth: int, noise: NoiseModel) -> tuple[Op, ...]:
    """``circuit_ops`` with the gate channels after every gate on each wire it touches.

    Depolarizing comes before amplitude damping (they do not commute); readout error acts on the
    measured bits instead (:func:`pipeline.simulators.shots.readout_probabilities`).
    """
    channels = noise.gate_channels()
    ops = []
    for op in circuit_ops(n_qubits, q_depth):
        ops.append(op)
        ops += [Op(name, (wire,), p) for wire in op.wires for name, p in channels]
    return tuple(ops)


def check_size(n_qubits: int, q_depth: int) -> None:
    for name, value, low in (("n_qubits", n_qubits, 1), ("q_depth", q_depth, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{SECTION}.{name}: expected an integer >= {low}; got {value!r}")


@dataclass(frozen=True)
class NoiseModel:
    """Per-gate noise and readout error; all zero is the noiseless circuit.

    Args:
        depolarizing: p of ``DepolarizingChannel`` after every gate on each wire.
        amplitude_damping: gamma of ``AmplitudeDamping``, after the depolarizing channel.
        readout_error: symmetric bit-flip probability of each measured bit.
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
        return all(getattr(self, f.name) == 0.0 for f in fields(self))

    def gate_channels(self) -> tuple[tuple[str, float], ...]:
        """(PennyLane channel name, probability) of each non-zero gate channel, in order."""
        values = ((name, getattr(self, key)) for key, name in GATE_CHANNELS.items())
        return tuple((name, p) for name, p in values if p > 0.0)


NOISELESS = NoiseModel()


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
    """S (..., 4, 4) = sum_k K (x) K, acting on one wire's (row bit, column bit)."""
    s = torch.einsum("...kac,...kbd->...abcd", kraus, kraus)  # (..., 2, 2, 2, 2)
    return s.reshape(*s.shape[:-4], 4, 4)


def _ry(angles: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angles * 0.5), torch.sin(angles * 0.5)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


@functools.lru_cache(maxsize=256)
def _cnot_index(n_qubits: int, control: int, target: int) -> torch.Tensor:
    """Flat gather index (4^n,) of ``rho -> CNOT rho CNOT``."""
    k = torch.arange(2**n_qubits)
    perm = k ^ (((k >> (n_qubits - 1 - control)) & 1) << (n_qubits - 1 - target))  # involution
    return (perm[:, None] * 2**n_qubits + perm[None, :]).reshape(-1)


Step = tuple[tuple[int, ...], "torch.Tensor | None"]


def _fused_steps(inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel) -> list[Step]:
    """:func:`noisy_ops` as steps; a wire's one-wire maps up to its next CNOT fused into one."""
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
    batch, dim = rho.shape[0], 2**n
    left, right = 2**wire, 2 ** (n - wire - 1)
    view = rho.reshape(batch, left, 2, right, left, 2, right)  # (B, L, row bit, R, L, col bit, R)
    s = superop.reshape(*superop.shape[:-2], 2, 2, 2, 2)  # (..., a, b, c, d)
    spec = "xabcd," if s.ndim == 5 else "abcd,"
    return torch.einsum(spec + "xicjkdl->xiajkbl", s, view).reshape(batch, dim, dim)


def _run_steps(steps: list[Step], start: int, stop: int, n: int, like: torch.Tensor):
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


def check_angles(inputs: torch.Tensor, weights: torch.Tensor) -> tuple[int, int]:
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
    """The exact state after the noisy circuit: real rho (B, 2^n, 2^n), wire 0 most significant."""
    n, _ = check_angles(inputs, weights)
    weights = weights.to(inputs)
    steps = _fused_steps(inputs, weights, noise)
    batch, chunk = inputs.shape[0], max(1, CHUNK_ELEMENTS // 4**n)
    if batch <= chunk:
        return _run_steps(steps, 0, batch, n, inputs)
    return torch.cat(
        [_run_steps(steps, i, min(i + chunk, batch), n, inputs) for i in range(0, batch, chunk)]
    )


def basis_probabilities(
    inputs: torch.Tensor, weights: torch.Tensor, noise: NoiseModel = NOISELESS
) -> torch.Tensor:
    """Probabilities (B, 2^n) of the basis states before readout: the diagonal of rho."""
    return torch.diagonal(density_matrix(inputs, weights, noise), dim1=1, dim2=2)
