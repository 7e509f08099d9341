"""A compiled :class:`~pipeline.simulators.program.Program` on few qubits as a handful of
batched matrix products, with the numbers of the gate-by-gate simulation to rounding.

A run of single-qubit gates is one layer: per wire the product of its 2x2 matrices, the layer
their Kronecker product, built for all layers at once. A layer that reads no input is one
matrix per member, with the signed permutations (CNOT, CZ, SWAP) before it folded in; the
first layer from ``|0…0>`` is a product state; a layer that reads inputs is applied wire by
wire per sample. A run of diagonal rotations (ZZ, MultiRZ, CRZ, and RZ by an input, as in an
IQP embedding) is one phase per basis state. Runs of weights layers and the product state
have adjoint gradients. Members are a batch dimension of every product, so a member's numbers
do not depend on the stack.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

from pipeline.simulators.program import (
    _ROTATIONS,
    Program,
    ProgramCircuit,
    _bits,
    _fixed,
    _move_of,
    _moved,
    _steps,
    pauli_action,
)
from pipeline.simulators.qubit import MATRIX_MAX_QUBITS, _kron

_S2 = 1 / math.sqrt(2)
_T = complex(math.cos(math.pi / 4), math.sin(math.pi / 4))
#: Transposes of the fixed single-qubit gates (states are rows: a gate acts as ``s @ G^T``).
_SINGLE = {
    "Hadamard": ((_S2, _S2), (_S2, -_S2)),
    "PauliX": ((0, 1), (1, 0)),
    "PauliY": ((0, 1j), (-1j, 0)),
    "PauliZ": ((1, 0), (0, -1)),
    "S": ((1, 0), (0, 1j)),
    "T": ((1, 0), (0, _T)),
}
#: ``(-i P)^T``: a rotation's transpose is ``cos(t/2) I + sin(t/2) (-i P)^T``.
_GENERATORS = {"X": ((0, -1j), (-1j, 0)), "Y": ((0, 1), (-1, 0)), "Z": ((-1j, 0), (0, 1j))}
_PERMUTATIONS = ("CNOT", "CZ", "SWAP")
#: Largest qubit count for which a product state's gradient goes through N x N per sample.
_OUTER_MAX_QUBITS = 5


def program_circuit(program: Program) -> ProgramCircuit:
    """The fastest exact simulator of ``program``: fused up to ``MATRIX_MAX_QUBITS`` qubits."""
    if program.n_qubits <= MATRIX_MAX_QUBITS:
        return FusedProgramCircuit(program)
    return ProgramCircuit(program)


def _eye() -> torch.Tensor:
    return torch.eye(2, dtype=torch.complex128)


@dataclass
class _Layer:
    factors: list[list[int]]  # per wire, the pool entries in gate order
    inputs: bool = False
    perm: tuple | None = None  # (index, phase) of the permutations just before it


@dataclass
class _Plan:
    items: list[tuple] = field(default_factory=list)
    # per rotation, its transposed 2x2 factor is cos(t/2) a + sin(t/2) b (neighbouring fixed
    # gates on its wire multiplied in); wider rotations keep zeros
    a: list[torch.Tensor] = field(default_factory=list)
    b: list[torch.Tensor] = field(default_factory=list)
    constants: list[torch.Tensor] = field(default_factory=lambda: [_eye()])

    def absorb(self, layer: _Layer, rotations: int) -> None:
        """Each wire's fixed gates into its rotations' factors: one pool entry per rotation."""
        for wire in layer.factors:
            entries, pending = [], _eye()  # pending: the fixed gates before the first rotation
            for factor in wire:
                if isinstance(factor, str):
                    matrix = torch.tensor(_SINGLE[factor], dtype=torch.complex128)
                    if entries:
                        self.a[entries[-1]] = self.a[entries[-1]] @ matrix
                        self.b[entries[-1]] = self.b[entries[-1]] @ matrix
                    else:
                        pending = pending @ matrix
                else:
                    if not entries:
                        self.a[factor] = pending @ self.a[factor]
                        self.b[factor] = pending @ self.b[factor]
                    entries.append(factor)
            if not entries and wire:
                self.constants.append(pending)
                entries.append(rotations + len(self.constants) - 1)
            wire[:] = entries


@functools.lru_cache(maxsize=8)
def _plan_of(program: Program) -> tuple[_Plan, int]:
    """The plan and the number of rotations, once per program (a stack builds many heads)."""
    _, columns, _ = _steps(program)
    return _plan(program, columns), len(columns)


def _rotation_list(gate) -> tuple:
    if gate.name == "MultiRZ":
        return ((0, 1.0, "Z" * len(gate.wires)),)
    return _ROTATIONS[gate.name]


def _diagonal_input(gate, program: Program, columns: list[int], r: int) -> bool:
    """Whether ``gate`` is an RZ or phase shift by an input: one more phase of a diagonal run
    (an IQP embedding's), not a factor of a per-sample layer."""
    return gate.name in ("RZ", "PhaseShift") and _reads_inputs(
        program.sources[columns[r]], program.n_qubits
    )


def _reads_inputs(source: tuple, n: int) -> bool:
    kind = source[0]
    return kind in ("x", "e") or (kind == "p" and min(int(source[1]), int(source[2])) < n)


def _plan(program: Program, columns: list[int]) -> _Plan:
    """The gates as layers, permutations, diagonal runs and other rotations, in order.

    A single-qubit gate joins the open layer unless a diagonal run placed after that layer
    acts on its wire (gates on other wires commute with the run).
    """
    n, plan = program.n_qubits, _Plan()
    layer, blocked, perm, r = None, set(), None, 0

    def flush() -> None:
        nonlocal layer, perm
        layer = None
        if perm is not None:
            plan.items.append(("perm", perm))
            perm = None

    for gate in program.gates:
        if gate.name == "Identity":
            continue
        if len(gate.wires) == 1 and not _diagonal_input(gate, program, columns, r):
            if layer is None or gate.wires[0] in blocked:
                layer, blocked, perm = _Layer([[] for _ in range(n)], perm=perm), set(), None
                plan.items.append(("layer", layer))
            wire = layer.factors[gate.wires[0]]
            if gate.name in _SINGLE:
                wire.append(gate.name)
                continue
            for _, _, letter in _rotation_list(gate):
                plan.a.append(_eye())
                plan.b.append(torch.tensor(_GENERATORS[letter], dtype=torch.complex128))
                wire.append(r)
                layer.inputs |= _reads_inputs(program.sources[columns[r]], n)
                r += 1
        elif gate.name in _PERMUTATIONS:
            layer = None
            index, phase = _fixed(gate.name, gate.wires, n)
            if perm is not None:
                index, phase = perm[0][index], phase * perm[1][index]
            perm = (index, phase)
        else:
            for _, _, letters in _rotation_list(gate):
                word = tuple((w, p) for w, p in zip(gate.wires, letters, strict=True) if p != "I")
                if all(p == "Z" for _, p in word):
                    if perm is not None:
                        flush()
                    if plan.items and plan.items[-1][0] == "diag":
                        plan.items[-1][1].append((r, word))
                    else:
                        plan.items.append(("diag", [(r, word)]))
                    blocked |= {w for w, _ in word}
                else:
                    flush()
                    plan.items.append(("rot", [(r, word)]))
                plan.a.append(torch.zeros(2, 2, dtype=torch.complex128))
                plan.b.append(torch.zeros(2, 2, dtype=torch.complex128))
                r += 1
    flush()
    for item in plan.items:
        if item[0] == "layer":
            plan.absorb(item[1], len(columns))
    return plan


class FusedProgramCircuit(ProgramCircuit):
    """:class:`ProgramCircuit` as few batched matrix products (memory ``4^n`` per member)."""

    def __init__(self, program: Program):
        super().__init__(program)
        self.plan, self.rotations = _plan_of(program)
        self._fused: dict[tuple, dict] = {}

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        lead = self.check(x, weights)
        if x.shape[-2] == 0:
            return super().forward(x, weights)
        shape = tuple(self.program.weight_shape)
        x3, w3 = x.reshape(-1, *x.shape[-2:]), weights.reshape(-1, *shape)  # (M, B, n), (M, …)
        _, _, signs, words, order, extra, pairs, sdtype = self._constants(x.dtype, x.device)
        fused = self._fused_constants(x.dtype, x.device, sdtype)
        half = self.half_angles(x3, w3, extra, pairs)  # (M, B, R)
        state = _run(fused, self.n_qubits, half, sdtype)  # (M, B, N)
        if words:
            out = self.expectations(state, signs, words, order)
        else:  # Z words only: one product per member
            probs = state * state if self.real else (state.conj() * state).real
            out = torch.bmm(probs, signs.mT.expand(probs.shape[0], *signs.mT.shape))
        return out.reshape(*lead, *out.shape[-2:])

    def _fused_constants(self, dtype: torch.dtype, device: torch.device, sdtype) -> dict:
        key = (dtype, device)
        if key not in self._fused:
            self._fused[key] = _tensors(self.plan, self.n_qubits, self.rotations, sdtype, device)
        return self._fused[key]


def _pool(plan: _Plan, groups: list[list[_Layer]], rotations: int, cast, device) -> dict:
    """A pool of 2x2 factors for layer groups: the rotations they use, then the constants.

    Each group's rounds (K, L n): round ``k`` holds every wire's ``k``-th factor as a pool
    position (the identity when the wire has fewer).
    """
    factors = [f for layers in groups for layer in layers for f in layer.factors]
    used = sorted({e for f in factors for e in f if e < rotations})
    where = {r: i for i, r in enumerate(used)}

    def position(entry: int) -> int:
        return where[entry] if entry < rotations else len(used) + entry - rotations

    rounds = []
    for layers in groups:
        wires = [f for layer in layers for f in layer.factors]
        depth = max([len(f) for f in wires] + [1])
        rows = [[position(f[k]) if k < len(f) else len(used) for f in wires]
                for k in range(depth)]  # fmt: skip
        rounds.append(torch.tensor(rows, dtype=torch.long, device=device) if layers else None)
    index = torch.tensor(used, dtype=torch.long)
    return {
        "rotations": index.to(device),
        "a": cast(torch.stack(plan.a)[index]) if used else None,
        "b": cast(torch.stack(plan.b)[index]) if used else None,
        "constants": cast(torch.stack(plan.constants)),
        "cat": any(bool((r >= len(used)).any()) for r in rounds if r is not None),
        "rounds": rounds,
    }


def _tensors(plan: _Plan, n: int, rotations: int, sdtype, device) -> dict:
    """The plan's constant tensors and its steps, on ``device``."""
    real = not sdtype.is_complex
    dim = 2**n

    def cast(values) -> torch.Tensor:
        t = torch.as_tensor(values, dtype=torch.complex128)
        return (t.real if real else t).to(device=device, dtype=sdtype)

    items = list(plan.items)
    if items and items[0][0] == "perm":  # CNOT, CZ and SWAP leave |0…0> as it is
        items.pop(0)
    start = items.pop(0)[1] if items and items[0][0] == "layer" else None
    weight = [item[1] for item in items if item[0] == "layer" and not item[1].inputs]
    inputs = [item[1] for item in items if item[0] == "layer" and item[1].inputs]
    out = {
        "samples": _pool(plan, [[start] if start else [], inputs], rotations, cast, device),
        "weights": _pool(plan, [weight], rotations, cast, device),
        "layers": len(weight),
        "e0": cast([1] + [0] * (dim - 1)),
    }
    steps, bits, counts = [], _bits(n), {"weight": 0, "inputs": 0}
    for kind, value in items:
        if kind == "layer":
            group = "inputs" if value.inputs else "weight"
            perm = _perm(value.perm, n, cast, device) if value.perm and value.inputs else None
            steps.append((group, counts[group], perm))
            counts[group] += 1
        elif kind == "perm":
            steps.append(("perm", _perm(value, n, cast, device)))
        elif kind == "diag":
            signs = [torch.prod(1 - 2 * bits[:, [w for w, _ in word]], dim=1) for _, word in value]
            cols = torch.tensor([r for r, _ in value], dtype=torch.long, device=device)
            signs_t = torch.stack(signs).to(device=device, dtype=sdtype.to_real())
            steps.append(("diag", cols, signs_t))
        else:
            ((r, word),) = value
            index, phase = pauli_action(n, word)
            steps.append(("rot", r, (_move_of(index, n, device), cast(-1j * phase))))
    out["steps"] = _segments(steps, weight, n, cast, device)
    return out


def _segments(steps: list[tuple], weight: list[_Layer], n: int, cast, device) -> list[tuple]:
    """Runs of weights layers as one step ``("weights", first, count, fold)``."""
    out = []
    for step in steps:
        if step[0] != "weight":
            out.append(step)
        elif out and out[-1][0] == "weights":
            out[-1] = ("weights", out[-1][1], out[-1][2] + 1)
        else:
            out.append(("weights", step[1], 1))
    return [(*step, _fold(weight[step[1] : step[1] + step[2]], n, cast, device))
            if step[0] == "weights" else step for step in out]  # fmt: skip


def _perm(perm: tuple, n: int, cast, device) -> tuple:
    """A signed permutation as a move of the state and its signs (None when all are 1)."""
    index, phase = perm
    ones = bool((phase == 1).all())
    return _move_of(index, n, device), None if ones else cast(phase)


def _fold(layers: list[_Layer], n: int, cast, device) -> tuple | None:
    """Rows and signs that fold each layer's preceding permutation into its matrix."""
    if not any(layer.perm for layer in layers):
        return None
    dim, rows, signs = 2**n, [], []
    for k, layer in enumerate(layers):
        index, phase = layer.perm or (torch.arange(dim), torch.ones(dim, dtype=torch.complex128))
        inverse = torch.argsort(index)
        rows.append(k * dim + inverse)
        signs.append(phase[inverse])
    phase = torch.cat(signs)
    ones = bool((phase == 1).all())
    rows_t = torch.cat(rows).to(device)
    return rows_t, None if ones else cast(phase).unsqueeze(-1)


def _products(pool: torch.Tensor, rounds: torch.Tensor) -> torch.Tensor:
    """Per wire of each layer, the product of its transposed 2x2 factors (..., L n, 2, 2)."""
    out = pool.index_select(-3, rounds[0])
    for row in rounds[1:]:
        out = out @ pool.index_select(-3, row)
    return out


def _factors(pool: dict, half: torch.Tensor, sdtype) -> torch.Tensor:
    """The pool's 2x2 factors (..., P, 2, 2) for half angles (..., R)."""
    if pool["a"] is None:
        return pool["constants"].expand(*half.shape[:-1], -1, 2, 2)
    used = half.index_select(-1, pool["rotations"])
    cos, sin = (
        torch.cos(used).to(sdtype)[..., None, None],
        torch.sin(used).to(sdtype)[..., None, None],
    )
    out = torch.addcmul(cos * pool["a"], sin, pool["b"])
    if pool["cat"]:  # fixed gates alone on a wire, or padding to a round
        out = torch.cat([out, pool["constants"].expand(*half.shape[:-1], -1, 2, 2)], dim=-3)
    return out


def _run(f: dict, n: int, half: torch.Tensor, sdtype) -> torch.Tensor:
    """The states (M, B, 2^n) of a batch, from the rotations' half angles (M, B, R)."""
    m, b, dim = half.shape[0], half.shape[1], 2**n
    samples, weights = f["samples"], f["weights"]
    if samples["rounds"][0] is not None or samples["rounds"][1] is not None:
        pool = _factors(samples, half, sdtype)  # (M, B, P, 2, 2)
    if samples["rounds"][0] is not None:
        wires = _products(pool, samples["rounds"][0])  # (M, B, n, 2, 2): rows are <0| G^T
        state = _ProductState.apply(wires[..., 0, :])
    else:
        state = f["e0"].expand(m, b, dim)
    if samples["rounds"][1] is not None:
        per_sample = _products(pool, samples["rounds"][1]).unflatten(-3, (-1, n))
    if weights["rounds"][0] is not None:
        layers = _factors(weights, half[:, 0], sdtype)  # (M, P, 2, 2)
        layers = _products(layers, weights["rounds"][0]).unflatten(-3, (f["layers"], n))
    for step in f["steps"]:
        kind = step[0]
        if kind == "weights":
            factors = layers[:, step[1] : step[1] + step[2]]
            state = _WeightLayers.apply(state, factors, step[3])
        elif kind == "inputs":
            if step[2] is not None:
                state = _signed(state, *step[2])
            for wire in range(n):
                view = state.reshape(m, b, 2**wire, 2, 2 ** (n - wire - 1))
                factor = per_sample[:, :, step[1], wire]
                state = torch.einsum("mbij,mbxiy->mbxjy", factor, view).reshape(m, b, dim)
        elif kind == "perm":
            state = _signed(state, *step[1])
        elif kind == "diag":
            signs = step[2].expand(m, *step[2].shape)
            phi = torch.bmm(half.index_select(-1, step[1]), signs)  # (M, B, N)
            state = state * torch.exp(phi * -1j)
        else:
            r, (move, phase) = step[1], step[2]
            angle = half[..., r : r + 1]
            cos, sin = torch.cos(angle).to(sdtype), torch.sin(angle).to(sdtype)
            state = torch.addcmul(state * cos, _moved(state, move) * phase, sin)
    return state


def _signed(state: torch.Tensor, move, phase) -> torch.Tensor:
    moved = _moved(state, move)
    return moved if phase is None else moved * phase


@functools.lru_cache(maxsize=16)
def _traces(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(4^n, 4 n): an N x N matrix, flattened, to its partial traces over all wires but one."""
    bits, dim = _bits(n), 2**n
    rows, cols = torch.arange(dim).repeat_interleave(dim), torch.arange(dim).repeat(dim)
    out = torch.zeros(dim * dim, 4 * n, dtype=dtype)
    for w in range(n):
        others = (rows ^ cols) & ~(1 << (n - 1 - w)) == 0
        column = 4 * w + 2 * bits[rows, w] + bits[cols, w]
        out[others.nonzero()[:, 0], column[others]] = 1
    return out.to(device)


class _WeightLayers(torch.autograd.Function):
    """States (M, B, N) through layers given by per-wire factors (M, L, n, 2, 2), with adjoint
    gradients: a layer's output state with one wire's factor undone, against the layer's
    output gradient, gives that factor's gradient, for all layers at once per wire."""

    @staticmethod
    def forward(ctx, state, factors, fold):
        m, count, n = factors.shape[:3]
        dim = 2**n
        layers = _kron(factors)  # (M, L, N, N)
        if fold is not None:
            rows, signs = fold
            layers = layers.flatten(1, 2).index_select(1, rows)
            layers = (layers if signs is None else layers * signs).view(m, count, dim, dim)
        states = []
        for k in range(count):
            state = torch.bmm(state, layers[:, k])
            states.append(state)
        ctx.save_for_backward(factors, layers, torch.stack(states, dim=1))
        return state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        factors, layers, states = ctx.saved_tensors
        m, count, n = factors.shape[:3]
        adjoint = layers.mH if layers.is_complex() else layers.mT
        grads = [grad] * count
        for k in range(count - 1, 0, -1):
            grads[k - 1] = torch.bmm(grads[k], adjoint[:, k])
        lam = torch.stack(grads, dim=1)  # (M, L, B, N): gradients of the layers' outputs
        grad_state = torch.bmm(grads[0], adjoint[:, 0])
        # per layer sum_b conj(s_b)^T lam_b (N, N), then traced down to each wire's (2, 2)
        states = states.flatten(0, 1).mT
        outer = torch.bmm(states.conj() if states.is_complex() else states, lam.flatten(0, 1))
        traces = _traces(n, outer.dtype, outer.device)
        contracted = torch.bmm(outer.view(m, count, -1), traces.expand(m, *traces.shape))
        return grad_state, factors @ contracted.view(m, count, n, 2, 2), None


class _ProductState(torch.autograd.Function):
    """States (M, B, N) from unit wire vectors (M, B, n, 2), with gradients from the state:
    wire ``w``'s vector undone, against the state's gradient, gives that vector's gradient."""

    @staticmethod
    def forward(ctx, vectors):
        state = _kron(vectors.unsqueeze(-2)).squeeze(-2)
        ctx.save_for_backward(vectors, state)
        return state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        vectors, state = ctx.saved_tensors
        m, b, n = vectors.shape[:3]
        if state.is_complex():
            state = state.conj()
        if n <= _OUTER_MAX_QUBITS:  # all wires in one product through (M, B, N, N)
            outer = (state.unsqueeze(-1) * grad.unsqueeze(-2)).view(m, b, -1)
            traces = _traces(n, outer.dtype, outer.device)
            contracted = torch.bmm(outer, traces.expand(m, *traces.shape)).view(m, b, n, 2, 2)
        else:  # wire by wire, memory linear in N
            contracted = torch.stack(
                [torch.einsum("mbxiy,mbxjy->mbij",
                              state.view(m, b, 2**w, 2, 2 ** (n - w - 1)),
                              grad.reshape(m, b, 2**w, 2, 2 ** (n - w - 1)))
                 for w in range(n)], dim=2,
            )  # fmt: skip
        return (vectors.unsqueeze(-2) @ contracted).squeeze(-2)
