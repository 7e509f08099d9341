"""Any compiled qubit circuit as an exact statevector simulation, batched over members and rows.

A :class:`Program` is a circuit as plain data: gates from :data:`GATES` on wires
``0 … n-1``, each angle read from the inputs, the weights, a constant, or an expression of
them, and expectation values of Pauli words. :mod:`pipeline.circuits.compiler` makes one from
a PennyLane circuit function; :class:`ProgramCircuit` runs it in torch.

Every gate acts on the state as a signed permutation of the basis (a gather) or as a Pauli
rotation ``exp(-i t/2 P) psi = cos(t/2) psi + sin(t/2) (-i P) psi``; a controlled rotation is
two commuting Pauli rotations (``CR_P(t) = exp(-i t/4 P_t) exp(i t/4 Z_c P_t)``), ``Rot`` is
three. Every operation is elementwise over the state, so a member's numbers do not depend on
how many members run with it. The state is real when every gate and observable is real (H,
X, Z, RY, CNOT, CZ, SWAP, CRY: the paper's circuit), complex otherwise. Gradients by autograd.

Example:
    >>> circuit = ProgramCircuit(program)  # from pipeline.circuits.compiler.compile_circuit
    >>> circuit(torch.zeros(8, 4), torch.zeros(program.weight_shape)).shape
    torch.Size([8, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

#: The gate set the simulator runs; compiled circuits are lowered to it.
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
        n_qubits: wires ``0 … n-1``.
        weight_shape: shape of one member's weights.
        gates: in order of application.
        sources: per angle column, ``("x", i)`` (``inputs[i]``), ``("w", j)`` (element ``j``
            of the flattened weights), ``("c", value)`` or ``("e", k)`` (output ``k`` of
            ``expressions``).
        observables: per output, ``(coefficient, ((wire, "X" | "Y" | "Z"), ...))``.
        expressions: ``f(inputs (n,), weights) -> (E,)`` for the ``"e"`` columns, or None.
    """

    n_qubits: int
    weight_shape: tuple[int, ...]
    gates: tuple[Gate, ...]
    sources: tuple[tuple[str, float], ...]
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
        if pauli == "Y":  # Y|0> = i|1>, Y|1> = -i|0>: (Y psi)[k] = (i if bit 1 else -i) psi[flip]
            phase = phase * torch.where(b == 1, 1j, -1j)
        if pauli == "Z":
            phase = phase * (1 - 2 * b)
    return index, phase


def _swap_index(n: int, a: int, b: int) -> torch.Tensor:
    bits = _bits(n)
    swapped = bits.clone()
    swapped[:, [a, b]] = bits[:, [b, a]]
    return (swapped * 2 ** torch.arange(n - 1, -1, -1)).sum(1)


def _fixed(name: str, wires: tuple[int, ...], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, phase)`` of a gate that is a signed permutation of the basis."""
    bits, index = _bits(n), torch.arange(2**n)
    if name in ("PauliX", "PauliY", "PauliZ"):
        return pauli_action(n, ((wires[0], name[-1]),))
    if name in ("S", "T"):
        one = 1j if name == "S" else complex(math.cos(math.pi / 4), math.sin(math.pi / 4))
        return index, torch.where(bits[:, wires[0]] == 1, one, 1.0 + 0j)
    if name == "CNOT":
        flip = bits[:, wires[0]] << (n - 1 - wires[1])
        return index ^ flip, torch.ones(2**n, dtype=torch.complex128)
    if name == "CZ":
        both = bits[:, wires[0]] & bits[:, wires[1]]
        return index, (1 - 2 * both).to(torch.complex128)
    if name == "SWAP":
        return _swap_index(n, *wires), torch.ones(2**n, dtype=torch.complex128)
    raise ValueError(f"{name} is not a signed permutation")


#: Gates applied as Pauli rotations: per gate, (angle index, scale, Pauli word on its wires).
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
#: Gates and Pauli letters with real matrices: a program of only these keeps a real state.
REAL_GATES = ("Identity", "Hadamard", "PauliX", "PauliZ", "RY", "CNOT", "CZ", "SWAP", "CRY")


def is_real(program: Program) -> bool:
    """Whether the program's state stays real (no complex gate, no Y in an observable)."""
    gates = all(g.name in REAL_GATES for g in program.gates)
    return gates and all(p != "Y" for _, word in program.observables for _, p in word)


def _steps(program: Program) -> tuple[list[tuple], list[int], list[float]]:
    """The program as ``("perm", index, phase)``, ``("h", wire)`` and ``("rot", r, index,
    -i phase)`` steps (consecutive permutations fused into one), and per rotation ``r`` the
    angle column it reads and the scale of that angle."""
    n, steps, columns, scales = program.n_qubits, [], [], []
    for gate in program.gates:
        if gate.name == "Identity":
            continue
        if gate.name == "Hadamard":
            steps.append(("h", gate.wires[0]))
        elif gate.name in _FIXED:
            index, phase = _fixed(gate.name, gate.wires, n)
            if steps and steps[-1][0] == "perm":  # p2 p1 psi [k] = ph2 ph1[i2] psi[i1[i2]] [k]
                _, i1, ph1 = steps.pop()
                index, phase = i1[index], phase * ph1[index]
            steps.append(("perm", index, phase))
        else:
            rotations = _ROTATIONS.get(gate.name)
            if gate.name == "MultiRZ":
                rotations = ((0, 1.0, "Z" * len(gate.wires)),)
            if rotations is None:
                raise ValueError(f"gate {gate.name!r}: expected one of {', '.join(GATES)}")
            for angle, scale, letters in rotations:
                word = tuple((w, p) for w, p in zip(gate.wires, letters, strict=True) if p != "I")
                index, phase = pauli_action(n, word)
                # the r-th rotation reads column r of the half angles
                steps.append(("rot", len(columns), index, -1j * phase))
                columns.append(gate.params[angle])
                scales.append(scale)
    return steps, columns, scales


class ProgramCircuit(nn.Module):
    """A :class:`Program` in torch, called like :class:`pipeline.simulators.qubit.TorchCircuit`.

    Args:
        program: the compiled circuit.

    Call with inputs ``x`` (..., B, n) and weights (..., *weight_shape), the leading
    dimensions (none, or M stacked members) alike; returns the expectation values
    (..., B, n_outputs).
    """

    def __init__(self, program: Program):
        super().__init__()
        self.program, self.n_qubits = program, program.n_qubits
        self.real = is_real(program)
        self.steps, columns, scales = _steps(program)
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float64) * 0.5,
                             persistent=False)  # fmt: skip
        self._tensors: dict[tuple, list] = {}
        words = [pauli_action(program.n_qubits, w) for _, w in program.observables]
        self.diagonal = all(bool((i == torch.arange(len(i))).all()) for i, _ in words)
        self.words = words
        self.coefficients = [c for c, _ in program.observables]

    def extra_repr(self) -> str:
        return (
            f"n_qubits={self.n_qubits}, gates={len(self.program.gates)}, "
            f"weight_shape={self.program.weight_shape}, outputs={self.program.n_outputs}"
        )

    def _constants(self, dtype: torch.dtype, device: torch.device) -> list:
        """The steps' index and phase tensors on ``device``, phases in the state's dtype."""
        key = (dtype, device)
        if key not in self._tensors:
            sdtype = dtype if self.real else (torch.complex128 if dtype == torch.float64
                                              else torch.complex64)  # fmt: skip

            def phase(p):
                return (p.real if self.real else p).to(device=device, dtype=sdtype)

            steps = []
            for step in self.steps:
                if step[0] == "perm":
                    steps.append(("perm", step[1].to(device), phase(step[2])))
                elif step[0] == "rot":
                    steps.append(("rot", step[1], step[2].to(device), phase(step[3])))
                else:
                    steps.append(step)
            words = [(i.to(device), phase(p)) for i, p in self.words]
            self._tensors[key] = [steps, words, sdtype]
        return self._tensors[key]

    def angles(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Every angle column (..., B, P) from inputs (..., B, n) and weights."""
        prog, lead = self.program, x.shape[:-2]
        flat_w = weights.reshape(*lead, 1, -1)  # (..., 1, W)
        expr = None
        if prog.expressions is not None:  # one row and one member at a time, vectorised
            f = torch.func.vmap(prog.expressions, in_dims=(0, None))  # over rows
            expr = torch.func.vmap(f, in_dims=(0, 0))(x, weights) if lead else f(x, weights)
        columns = []
        for kind, value in prog.sources:
            if kind == "x":
                columns.append(x[..., int(value)])
            elif kind == "w":
                columns.append(flat_w[..., int(value)].expand(x.shape[:-1]))
            elif kind == "e":
                columns.append(expr[..., int(value)])
            else:
                columns.append(x.new_full(x.shape[:-1], float(value)))
        if not columns:
            return x.new_zeros(*x.shape[:-1], 0)
        return torch.stack(columns, dim=-1)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        prog, n = self.program, self.n_qubits
        shape = tuple(prog.weight_shape)
        lead = tuple(weights.shape[: weights.ndim - len(shape)])
        if tuple(weights.shape[len(lead) :]) != shape:
            raise ValueError(f"expected weights of shape {shape}; got {tuple(weights.shape)}")
        if x.ndim != len(lead) + 2 or x.shape[-1] != n or tuple(x.shape[:-2]) != lead:
            expected = ", ".join([*map(str, lead), "B", str(n)])
            raise ValueError(f"expected inputs of shape ({expected}); got {tuple(x.shape)}")
        steps, words, sdtype = self._constants(x.dtype, x.device)
        half = self.angles(x, weights).index_select(-1, self.columns) * self.scales.to(x.dtype)
        cos, sin = torch.cos(half), torch.sin(half)  # (..., B, rotations)
        state = torch.zeros(*x.shape[:-1], 2**n, dtype=sdtype, device=x.device)
        state[..., 0] = 1
        for step in steps:
            state = _apply(step, state, n, cos, sin)
        return self._expvals(state, words)

    def _expvals(self, state: torch.Tensor, words: list) -> torch.Tensor:
        outs = []
        for c, (index, phase) in zip(self.coefficients, words, strict=True):
            moved = state.index_select(-1, index) * phase
            value = (state.conj() * moved).real if not self.real else state * moved
            outs.append(value.sum(-1) * c if c != 1 else value.sum(-1))
        return torch.stack(outs, dim=-1)


def _apply(step: tuple, state: torch.Tensor, n: int, cos, sin) -> torch.Tensor:
    if step[0] == "perm":
        return state.index_select(-1, step[1]) * step[2]
    if step[0] == "h":  # H = (X + Z) / sqrt 2, on the view (..., 2^w, 2, rest)
        wire = step[1]
        view = state.unflatten(-1, (2**wire, 2, 2 ** (n - wire - 1)))
        a, b = view.select(-2, 0), view.select(-2, 1)
        s = 1 / math.sqrt(2)
        return torch.stack(((a + b) * s, (a - b) * s), dim=-2).flatten(-3)
    _, r, index, phase = step
    c, s = cos[..., r : r + 1], sin[..., r : r + 1]
    return state * c + state.index_select(-1, index) * phase * s
