"""A compiled qubit circuit (:class:`Program`) as an exact statevector simulation in torch.

Each gate is a signed permutation of the basis or a Pauli rotation
``exp(-i t/2 P) psi = cos(t/2) psi + sin(t/2) (-i P) psi`` (``CR_P(t) = exp(-i t/4 P_t)
exp(i t/4 Z_c P_t)``). All operations are elementwise over the state, so a stacked member's
numbers do not depend on the others. The state is real when every gate and observable is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

GATES = (
    "Identity", "Hadamard", "PauliX", "PauliY", "PauliZ", "S", "T", "RX", "RY", "RZ",
    "PhaseShift", "Rot", "CNOT", "CZ", "SWAP", "CRX", "CRY", "CRZ", "IsingXX", "IsingYY",
    "IsingZZ", "MultiRZ",
)  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """One gate: its name, wires, and for each angle a column of the program's sources."""

    name: str
    wires: tuple[int, ...]
    params: tuple[int, ...] = ()


@dataclass(frozen=True)
class Program:
    """A circuit as data.

    Attributes:
        sources: per angle column, ``("x", i)``, ``("w", j)`` (flattened weights),
            ``("c", value)``, ``("p", i, j)`` (product of ``[inputs | weights]`` elements,
            as IQP's ``x_i x_j``) or ``("e", k)`` (output ``k`` of ``expressions``).
        observables: per output, ``(coefficient, ((wire, "X" | "Y" | "Z"), ...))``.
    """

    n_qubits: int
    weight_shape: tuple[int, ...]
    gates: tuple[Gate, ...]
    sources: tuple[tuple, ...]
    observables: tuple[tuple[float, tuple[tuple[int, str], ...]], ...]
    expressions: Callable | None = None

    @property
    def n_outputs(self) -> int:
        return len(self.observables)


def _bits(n: int) -> torch.Tensor:
    """(2^n, n): bit of wire i of basis index k, wire 0 the most significant."""
    k = torch.arange(2**n)
    return (k[:, None] >> torch.arange(n - 1, -1, -1)[None, :]) & 1


def pauli_action(n: int, word: tuple[tuple[int, str], ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, phase)`` with ``(P psi)[k] = phase[k] * psi[index[k]]`` for a Pauli word."""
    bits = _bits(n)
    index, phase = torch.arange(2**n), torch.ones(2**n, dtype=torch.complex128)
    for wire, pauli in word:
        b = bits[:, wire]
        if pauli in "XY":
            index = index ^ (1 << (n - 1 - wire))
        if pauli == "Y":  # Y|0> = i|1>, Y|1> = -i|0>
            phase = phase * torch.tensor([-1j, 1j], dtype=torch.complex128)[b]
        if pauli == "Z":
            phase = phase * (1 - 2 * b)
    return index, phase


def _swap_index(n: int, a: int, b: int) -> torch.Tensor:
    bits = _bits(n)
    swapped = bits.clone()
    swapped[:, [a, b]] = bits[:, [b, a]]
    return (swapped * 2 ** torch.arange(n - 1, -1, -1)).sum(1)


def _fixed(name: str, wires: tuple[int, ...], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    bits, index = _bits(n), torch.arange(2**n)
    if name in ("PauliX", "PauliY", "PauliZ"):
        return pauli_action(n, ((wires[0], name[-1]),))
    if name in ("S", "T"):
        one = 1j if name == "S" else complex(math.cos(math.pi / 4), math.sin(math.pi / 4))
        values = torch.tensor([1.0, one], dtype=torch.complex128)
        return index, values[bits[:, wires[0]]]
    if name == "CNOT":
        flip = bits[:, wires[0]] << (n - 1 - wires[1])
        return index ^ flip, torch.ones(2**n, dtype=torch.complex128)
    if name == "CZ":
        both = bits[:, wires[0]] & bits[:, wires[1]]
        return index, (1 - 2 * both).to(torch.complex128)
    if name == "SWAP":
        return _swap_index(n, *wires), torch.ones(2**n, dtype=torch.complex128)
    raise ValueError(f"{name} is not a signed permutation")


#: Per gate: (angle index, scale, Pauli word on its wires).
_ROTATIONS = {
    "RX": ((0, 1.0, "X"),),
    "RY": ((0, 1.0, "Y"),),
    "RZ": ((0, 1.0, "Z"),),
    "PhaseShift": ((0, 1.0, "Z"),),  # up to a global phase
    "Rot": ((0, 1.0, "Z"), (1, 1.0, "Y"), (2, 1.0, "Z")),  # RZ(omega) RY(theta) RZ(phi)
    "CRX": ((0, 0.5, "IX"), (0, -0.5, "ZX")),
    "CRY": ((0, 0.5, "IY"), (0, -0.5, "ZY")),
    "CRZ": ((0, 0.5, "IZ"), (0, -0.5, "ZZ")),
    "IsingXX": ((0, 1.0, "XX"),),
    "IsingYY": ((0, 1.0, "YY"),),
    "IsingZZ": ((0, 1.0, "ZZ"),),
}
_FIXED = ("PauliX", "PauliY", "PauliZ", "S", "T", "CNOT", "CZ", "SWAP")
REAL_GATES = ("Identity", "Hadamard", "PauliX", "PauliZ", "RY", "CNOT", "CZ", "SWAP", "CRY")


def is_real(program: Program) -> bool:
    """Whether the state stays real (real gates, no Y in an observable)."""
    gates = all(g.name in REAL_GATES for g in program.gates)
    return gates and all(p != "Y" for _, word in program.observables for _, p in word)


@functools.lru_cache(maxsize=8)  # a stack builds one head, and one circuit, per member
def _steps(program: Program) -> tuple[tuple[tuple, ...], tuple[int, ...], tuple[float, ...]]:
    """The gates as fused ``fixed`` and ``rot`` steps; per rotation, its column and scale."""
    n, steps, columns, scales = program.n_qubits, [], [], []
    for gate in program.gates:
        if gate.name == "Identity":
            continue
        if gate.name == "Hadamard":  # H = (X + Z) / sqrt 2
            (flip, one), (same, z) = (pauli_action(n, ((gate.wires[0], p),)) for p in "XZ")
            steps.append(("fixed", ((flip, one / math.sqrt(2)), (same, z / math.sqrt(2)))))
        elif gate.name in _FIXED:
            index, phase = _fixed(gate.name, gate.wires, n)
            if steps and steps[-1][0] == "fixed" and len(steps[-1][1]) == 1:
                ((i1, ph1),) = steps.pop()[1]  # fuse consecutive permutations
                index, phase = i1[index], phase * ph1[index]
            steps.append(("fixed", ((index, phase),)))
        else:
            rotations = _ROTATIONS.get(gate.name)
            if gate.name == "MultiRZ":
                rotations = ((0, 1.0, "Z" * len(gate.wires)),)
            if rotations is None:
                raise ValueError(f"gate {gate.name!r}: expected one of {', '.join(GATES)}")
            for angle, scale, letters in rotations:
                word = tuple((w, p) for w, p in zip(gate.wires, letters, strict=True) if p != "I")
                index, phase = pauli_action(n, word)
                steps.append(("rot", len(columns), index, -1j * phase))
                columns.append(gate.params[angle])
                scales.append(scale)
    return tuple(steps), tuple(columns), tuple(scales)


def _table_columns(program: Program) -> tuple[list[int], list[float], list[tuple[int, int]]]:
    """Each source's column in ``[x | weights | expressions | products | constants]``."""
    n, w = program.n_qubits, math.prod(program.weight_shape)
    kinds = [s[0] for s in program.sources]
    e = kinds.count("e")
    products = [(int(s[1]), int(s[2])) for s in program.sources if s[0] == "p"]
    constants = [float(s[1]) for s in program.sources if s[0] == "c"]
    where, seen = [], {"p": 0, "c": 0}
    for source in program.sources:
        kind = source[0]
        if kind == "x":
            where.append(int(source[1]))
        elif kind == "w":
            where.append(n + int(source[1]))
        elif kind == "e":
            where.append(n + w + int(source[1]))
        else:
            where.append(n + w + e + (0 if kind == "p" else len(products)) + seen[kind])
            seen[kind] += 1
    return where, constants, products


class ProgramCircuit(nn.Module):
    """A :class:`Program` in torch, called like :class:`pipeline.simulators.qubit.TorchCircuit`.

    Call with ``x`` (..., B, n) and weights (..., *weight_shape), the same leading (member)
    dimensions; returns (..., B, n_outputs).
    """

    def __init__(self, program: Program):
        super().__init__()
        self.program, self.n_qubits = program, program.n_qubits
        self.real = is_real(program)
        steps, columns, scales = _steps(program)
        steps = list(steps)
        initial = torch.zeros(2**program.n_qubits, dtype=torch.complex128)
        initial[0] = 1
        while steps and steps[0][0] == "fixed":  # gates before the first angle: once
            terms = steps.pop(0)[1]
            moves = tuple((_move_of(i, program.n_qubits, "cpu"), c) for i, c in terms)
            initial = _apply(("fixed", moves), initial, None, None)
        self.steps, self.initial = steps, initial
        where, constants, products = _table_columns(program)
        self.constants, self.products = constants, products
        self.register_buffer("rot_index", torch.tensor([where[c] for c in columns],
                             dtype=torch.long), persistent=False)  # fmt: skip
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float64) * 0.5,
                             persistent=False)  # fmt: skip
        self.words = [pauli_action(program.n_qubits, w) for _, w in program.observables]
        self.coefficients = [c for c, _ in program.observables]
        self._tensors: dict[tuple, list] = {}

    def extra_repr(self) -> str:
        return (
            f"n_qubits={self.n_qubits}, gates={len(self.program.gates)}, "
            f"weight_shape={self.program.weight_shape}, outputs={self.program.n_outputs}"
        )

    def _constants(self, dtype: torch.dtype, device: torch.device) -> list:
        key = (dtype, device)
        if key not in self._tensors:
            complex_ = torch.complex128 if dtype == torch.float64 else torch.complex64
            sdtype = dtype if self.real else complex_

            def cast(p):
                return (p.real if self.real else p).to(device=device, dtype=sdtype)

            n = self.n_qubits

            def move(index):
                return _move_of(index, n, device)

            steps = []
            for step in self.steps:
                if step[0] == "fixed":
                    steps.append(("fixed", tuple((move(i), cast(c)) for i, c in step[1])))
                else:
                    steps.append(("rot", step[1], move(step[2]), cast(step[3])))
            diagonal = [k for k, (i, _) in enumerate(self.words)
                        if bool((i == torch.arange(len(i))).all())]  # fmt: skip
            signs = torch.stack(
                [self.words[k][1].real * self.coefficients[k] for k in diagonal]
                or [torch.zeros(0, 2**self.n_qubits, dtype=torch.float64)]
            ).reshape(len(diagonal), 2**self.n_qubits)
            others = [k for k in range(len(self.words)) if k not in diagonal]
            words = [(move(self.words[k][0]), cast(self.words[k][1]), self.coefficients[k])
                     for k in others]  # fmt: skip
            order = torch.argsort(torch.tensor(diagonal + others)).to(device)
            extra = torch.tensor(self.constants, dtype=dtype, device=device)
            pairs = torch.tensor(self.products, dtype=torch.long, device=device).reshape(-1, 2)
            self._tensors[key] = [
                steps, cast(self.initial), signs.to(device=device, dtype=dtype), words, order,
                extra, pairs, sdtype,
            ]  # fmt: skip
        return self._tensors[key]

    def angles(self, x: torch.Tensor, weights: torch.Tensor, extra, pairs) -> torch.Tensor:
        """The angle table (..., B, T) the sources index."""
        prog, lead = self.program, x.shape[:-2]
        parts = [x, weights.reshape(*lead, 1, -1).expand(*x.shape[:-1], -1)]
        if prog.expressions is not None:
            f = torch.func.vmap(prog.expressions, in_dims=(0, None))  # over rows
            parts.append(torch.func.vmap(f, in_dims=(0, 0))(x, weights) if lead else f(x, weights))
        if len(pairs):
            base = torch.cat(parts[:2], dim=-1)
            parts.append(base.index_select(-1, pairs[:, 0]) * base.index_select(-1, pairs[:, 1]))
        if len(extra):
            parts.append(extra.expand(*x.shape[:-1], -1))
        return torch.cat(parts, dim=-1)

    def check(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[int, ...]:
        """The leading (member) dimensions of ``x`` and ``weights``, or a ValueError."""
        shape = tuple(self.program.weight_shape)
        lead = tuple(weights.shape[: weights.ndim - len(shape)])
        if tuple(weights.shape[len(lead) :]) != shape:
            raise ValueError(f"expected weights of shape {shape}; got {tuple(weights.shape)}")
        n = self.n_qubits
        if x.ndim != len(lead) + 2 or x.shape[-1] != n or tuple(x.shape[:-2]) != lead:
            expected = ", ".join([*map(str, lead), "B", str(n)])
            raise ValueError(f"expected inputs of shape ({expected}); got {tuple(x.shape)}")
        return lead

    def half_angles(self, x: torch.Tensor, weights: torch.Tensor, extra, pairs) -> torch.Tensor:
        """Each rotation's scaled half angle (..., B, R)."""
        table = self.angles(x, weights, extra, pairs)
        return table.index_select(-1, self.rot_index) * self.scales.to(x.dtype)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        self.check(x, weights)
        steps, initial, signs, words, order, extra, pairs, sdtype = self._constants(
            x.dtype, x.device
        )
        half = self.half_angles(x, weights, extra, pairs)
        cos = torch.cos(half).to(sdtype).unsqueeze(-1).unbind(-2)  # per rotation (..., B, 1)
        sin = torch.sin(half).to(sdtype).unsqueeze(-1).unbind(-2)
        dim = 2**self.n_qubits
        state = initial.expand(*x.shape[:-1], dim)
        for step in steps:
            state = _apply(step, state, cos, sin)
        if state is initial or state.shape != (*x.shape[:-1], dim):
            state = state.expand(*x.shape[:-1], dim)
        return self.expectations(state, signs, words, order)

    def expectations(self, state: torch.Tensor, signs, words, order) -> torch.Tensor:
        """The observables' values (..., B, K) on states (..., B, 2^n)."""
        probs = state * state if self.real else (state.conj() * state).real
        outs = [(probs.unsqueeze(-2) * signs).sum(-1)] if len(signs) else []
        for index, phase, coefficient in words:
            moved = _moved(state, index) * phase
            value = (state * moved if self.real else (state.conj() * moved).real).sum(-1)
            outs.append((value * coefficient).unsqueeze(-1))
        return torch.cat(outs, dim=-1).index_select(-1, order)


def _apply(step: tuple, state: torch.Tensor, cos, sin) -> torch.Tensor:
    if step[0] == "fixed":
        out = None
        for index, coefficient in step[1]:
            moved = _moved(state, index)
            out = moved * coefficient if out is None else torch.addcmul(out, moved, coefficient)
        return out
    _, r, index, phase = step
    return torch.addcmul(state * cos[r], _moved(state, index) * phase, sin[r])


def _move_of(index: torch.Tensor, n: int, device) -> tuple | torch.Tensor:
    """Wire dimensions to flip (a Pauli word's bit flips), or the index and its inverse."""
    mask = int(index[0])
    if bool((index == (torch.arange(2**n) ^ mask)).all()):
        return tuple(w - n for w in range(n) if mask >> (n - 1 - w) & 1)
    return torch.stack([index, torch.argsort(index)]).to(device)


def _moved(state: torch.Tensor, move) -> torch.Tensor:
    if isinstance(move, tuple):
        if not move:
            return state
        n = int(math.log2(state.shape[-1]))
        return state.unflatten(-1, (2,) * n).flip(move).flatten(-n)
    return _Permute.apply(state, move)


class _Permute(torch.autograd.Function):
    """``x[..., index]`` for a permutation ``index``; backward: the inverse permutation."""

    @staticmethod
    def forward(ctx, x, move):
        ctx.inverse = move[1]
        return x.index_select(-1, move[0])

    @staticmethod
    def backward(ctx, grad):
        return grad.index_select(-1, ctx.inverse), None
