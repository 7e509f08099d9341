"""The built-in ansätze and embeddings as PennyLane circuit functions, compiled like a user's.

Weight shapes and conventions are PennyLane's templates'; ``simplified_two_design`` packs
``initial_layer_weights`` and ``weights`` into one vector. Outputs are ``<Z_i>`` on every wire.
"""

from __future__ import annotations

from collections.abc import Callable

import pennylane as qml

from pipeline.common.config import CIRCUITS, EMBEDDINGS


def weight_shape(circuit: str, n_qubits: int, q_depth: int) -> tuple[int, ...]:
    """Shape of a built-in ansatz's weights."""
    if circuit in ("paper", "basic_entangler"):
        return (q_depth, n_qubits)
    if circuit == "strongly_entangling":
        return (q_depth, n_qubits, 3)
    if circuit == "simplified_two_design":
        return (n_qubits + q_depth * (n_qubits - 1) * 2,)
    raise ValueError(f"train.circuit: expected one of {', '.join(CIRCUITS)}; got {circuit!r}")


def embed(embedding: str, inputs, n_qubits: int) -> None:
    """Queue the embedding of ``inputs`` (n,) on wires ``0 … n-1``."""
    wires = range(n_qubits)
    if embedding == "paper":
        for w in wires:
            qml.Hadamard(wires=w)
        for w in wires:
            qml.RY(inputs[w], wires=w)
    elif embedding in ("angle_x", "angle_y", "angle_z"):
        qml.AngleEmbedding(inputs, wires=wires, rotation=embedding[-1].upper())
    elif embedding == "iqp":
        qml.IQPEmbedding(inputs, wires=wires, n_repeats=1)
    else:
        raise ValueError(
            f"train.embedding: expected one of {', '.join(EMBEDDINGS)}; got {embedding!r}"
        )


def _strong_ranges(n_qubits: int, q_depth: int) -> list[int]:
    return [(layer % (n_qubits - 1)) + 1 if n_qubits > 1 else 0 for layer in range(q_depth)]


def layers(circuit: str, weights, n_qubits: int, q_depth: int, which: range) -> None:
    """Queue the ansatz's layers ``which`` (one at a time for re-uploading)."""
    wires = list(range(n_qubits))
    if circuit == "paper":
        for layer in which:
            for first in (0, 1):
                for control in range(first, n_qubits - 1, 2):
                    qml.CNOT(wires=[control, control + 1])
            for w in wires:
                qml.RY(weights[layer, w], wires=w)
    elif circuit == "basic_entangler":
        qml.BasicEntanglerLayers(weights[which.start : which.stop], wires=wires)
    elif circuit == "strongly_entangling":
        ranges = _strong_ranges(n_qubits, q_depth)[which.start : which.stop]
        qml.StronglyEntanglingLayers(weights[which.start : which.stop], wires=wires, ranges=ranges)
    elif circuit == "simplified_two_design":
        initial = weights[:n_qubits]
        rest = weights[n_qubits:].reshape(q_depth, max(n_qubits - 1, 0), 2)
        with qml.QueuingManager.stop_recording():
            ops = qml.SimplifiedTwoDesign.compute_decomposition(
                initial, rest[which.start : which.stop], wires=wires
            )
        for op in ops[n_qubits if which.start else 0 :]:  # the initial layer once, first
            qml.apply(op)
    else:
        raise ValueError(f"train.circuit: expected one of {', '.join(CIRCUITS)}; got {circuit!r}")


def builtin(
    circuit: str, embedding: str, reupload: bool, n_qubits: int, q_depth: int
) -> tuple[Callable, tuple[int, ...]]:
    """The circuit function ``fn(inputs, weights)`` and its weight shape."""
    shape = weight_shape(circuit, n_qubits, q_depth)
    if embedding not in EMBEDDINGS:
        raise ValueError(
            f"train.embedding: expected one of {', '.join(EMBEDDINGS)}; got {embedding!r}"
        )

    def fn(inputs, weights):
        if reupload:
            for layer in range(q_depth):
                embed(embedding, inputs, n_qubits)
                layers(circuit, weights, n_qubits, q_depth, range(layer, layer + 1))
        else:
            embed(embedding, inputs, n_qubits)
            layers(circuit, weights, n_qubits, q_depth, range(q_depth))

    return fn, shape
