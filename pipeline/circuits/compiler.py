"""A PennyLane circuit function compiled once into a :class:`~pipeline.simulators.program.Program`.

``fn(inputs, weights)`` is a one-sample QNode body returning ``qml.expval`` of Pauli words (or
nothing: ``<Z_i>``), recorded on three random draws: an angle equal to one argument in every
draw reads it directly, other varying angles become a traced torch graph. Gates that depend on
argument values are refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

from pipeline.common.errors import ConfigError
from pipeline.simulators.program import GATES, Gate, Program

#: Ranges of the draws: different signs and sizes expose value-dependent gates.
_DRAWS = ((0.05, 1.5), (-1.5, -0.05), (1.6, 3.1))


class CircuitError(ConfigError):
    """A circuit cannot be compiled: bad wires, gates, measurements or weight shape."""


def check_weight_shape(shape: object, name: str) -> tuple[int, ...]:
    """``shape`` as a tuple of integers >= 0, else a :class:`CircuitError`."""
    try:
        dims = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                               for d in dims):  # fmt: skip
        raise CircuitError(
            f"{name}: weight_shape must return a tuple of integers >= 0; got {shape!r}"
        )
    return dims


def record(fn: Callable, x: torch.Tensor, w: torch.Tensor, n_qubits: int, name: str):
    """The function's tape on inputs ``x`` and weights ``w``, lowered to the gate set."""
    import pennylane as qml  # here, not on import: a compiled circuit on disk needs none

    try:
        tape = qml.tape.make_qscript(fn)(x, w)
    except Exception as exc:  # the user's code: any error is reported, with its type
        raise CircuitError(
            f"{name}: calling it on inputs of shape {tuple(x.shape)} and weights of shape "
            f"{tuple(w.shape)} failed ({type(exc).__name__}: {exc}); expected fn(inputs, "
            "weights) for one sample, indexing inputs[i] and weights within weight_shape"
        ) from exc
    _check_wires(tape, n_qubits, name)
    try:
        with warnings.catch_warnings():  # what stays outside the gate set is named below
            warnings.simplefilter("ignore")
            (tape,), _ = qml.transforms.decompose(tape, gate_set=set(GATES))
    except Exception as exc:
        raise CircuitError(f"{name}: lowering to the gate set failed: {exc}") from exc
    for op in tape.operations:
        if op.name not in GATES:
            raise CircuitError(
                f"{name}: operation {op.name} cannot be lowered to the supported gates: "
                f"{', '.join(GATES)}"
            )
    return tape


def _check_wires(tape, n_qubits: int, name: str) -> None:
    for item in (*tape.operations, *tape.measurements):
        for wire in item.wires:
            if not (isinstance(wire, int) and 0 <= wire < n_qubits):
                raise CircuitError(
                    f"{name}: {item.name if hasattr(item, 'name') else item} acts on wire "
                    f"{wire!r}; expected wires 0 … {n_qubits - 1} (train.n_qubits {n_qubits})"
                )


def observables(tape, n_qubits: int, name: str) -> tuple:
    """Each measurement as ``(coefficient, ((wire, pauli), ...))``; none: Z on every wire."""
    import pennylane as qml

    if not tape.measurements:
        return tuple((1.0, ((w, "Z"),)) for w in range(n_qubits))
    out = []
    for m in tape.measurements:
        rep = m.obs.pauli_rep if isinstance(m, qml.measurements.ExpectationMP) and m.obs else None
        if rep is None or len(rep) != 1:
            raise CircuitError(
                f"{name}: measurement {m} is not supported; expected qml.expval of a Pauli "
                "word, e.g. qml.expval(qml.PauliZ(0) @ qml.PauliZ(1))"
            )
        ((word, coeff),) = rep.items()
        if complex(coeff).imag != 0:
            raise CircuitError(f"{name}: measurement {m} has a complex coefficient")
        out.append((float(complex(coeff).real), tuple(sorted(word.items()))))
    return tuple(out)


def _params(tape) -> list:
    return [p for op in tape.operations for p in op.data]


def _classify(tapes, xs, ws) -> tuple[list[tuple], list[int]]:
    """Each angle's source (see :class:`Program`) and the expressions' angle positions."""
    values = [[float(p) for p in _params(t)] for t in tapes]
    args = [torch.cat([x, w.reshape(-1)]).tolist() for x, w in zip(xs, ws, strict=True)]
    n = len(xs[0])
    sources, expressions = [], []
    for p in range(len(values[0])):
        seen = [v[p] for v in values]
        hits = set.intersection(
            *({i for i, a in enumerate(arg) if a == s} for arg, s in zip(args, seen, strict=True))
        )
        if hits:
            i = min(hits)
            sources.append(("x", i) if i < n else ("w", i - n))
        elif all(s == seen[0] for s in seen):
            sources.append(("c", seen[0]))
        elif (pair := _product(args, seen)) is not None:
            sources.append(("p", *pair))
        else:
            sources.append(("e", len(expressions)))
            expressions.append(p)
    return sources, expressions


def _product(args: list[list[float]], seen: list[float]) -> tuple[int, int] | None:
    first = args[0]
    for i, a in enumerate(first):
        for j in range(i, len(first)):
            if a * first[j] == seen[0] and all(
                arg[i] * arg[j] == s for arg, s in zip(args[1:], seen[1:], strict=True)
            ):
                return i, j
    return None


def _expression_graph(record_fn, x, w, positions: Sequence[int]):
    """The expression angles as a torch graph ``g(inputs, weights) -> (E,)``."""
    from torch.fx.experimental.proxy_tensor import make_fx

    index = list(positions)

    def angles(inputs, weights):
        tape = record_fn(inputs, weights)
        params = _params(tape)
        return torch.stack([torch.as_tensor(params[i], dtype=inputs.dtype) for i in index])

    return make_fx(angles)(x, w)


def compile_circuit(
    fn: Callable, weight_shape: Sequence[int], n_qubits: int, *, name: str
) -> Program:
    """Record ``fn`` and compile it to a :class:`Program`; ``name`` is for messages.

    Raises:
        CircuitError: the call fails, a bad wire, gate or measurement, or value-dependent gates.
    """
    shape = check_weight_shape(weight_shape, name)
    gen = torch.Generator().manual_seed(0)

    def draw(size, low, high):
        return torch.rand(size, generator=gen, dtype=torch.float64) * (high - low) + low

    xs = [draw(n_qubits, *r) for r in _DRAWS]
    ws = [draw(shape, *r) for r in _DRAWS]

    def record_fn(x, w):
        return record(fn, x, w, n_qubits, name)

    tapes = [record_fn(x, w) for x, w in zip(xs, ws, strict=True)]
    layout = [[(op.name, tuple(op.wires)) for op in t.operations] for t in tapes]
    counts = [len(_params(t)) for t in tapes]
    if any(lay != layout[0] for lay in layout) or len(set(counts)) != 1:
        raise CircuitError(
            f"{name}: its gates depend on the values of inputs or weights; expected the same "
            "gates on the same wires for every sample"
        )
    outputs = observables(tapes[0], n_qubits, name)
    sources, positions = _classify(tapes, xs, ws)
    gates, column = [], 0
    for op in tapes[0].operations:
        k = len(op.data)
        wires = tuple(int(w) for w in op.wires)
        gates.append(Gate(op.name, wires, tuple(range(column, column + k))))
        column += k
    graph = _expression_graph(record_fn, xs[0], ws[0], positions) if positions else None
    return Program(n_qubits, shape, tuple(gates), tuple(sources), outputs, graph)
