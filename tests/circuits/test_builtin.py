"""Every built-in circuit, compiled and simulated, against PennyLane's own templates run as a
default.qubit QNode: outputs and gradients with respect to inputs and weights, float64."""

from __future__ import annotations

import itertools

import pennylane as qml
import pytest
import torch

from pipeline.circuits.builtin import builtin, weight_shape
from pipeline.circuits.compiler import compile_circuit
from pipeline.common.config import CIRCUITS, EMBEDDINGS
from pipeline.simulators.fused import FusedProgramCircuit
from pipeline.simulators.program import ProgramCircuit

N, DEPTH = 3, 2


def _embed(embedding, x):
    wires = range(N)
    if embedding == "paper":
        for w in wires:
            qml.Hadamard(wires=w)
            qml.RY(x[w], wires=w)
    elif embedding == "iqp":
        qml.IQPEmbedding(x, wires=wires)
    else:
        qml.AngleEmbedding(x, wires=wires, rotation=embedding[-1].upper())


def _layers(circuit, w, layers):
    """The templates, written from PennyLane's documentation (one layer: a slice)."""
    wires = list(range(N))
    if circuit == "paper":
        for layer in layers:
            qml.CNOT(wires=[0, 1])
            qml.CNOT(wires=[1, 2])
            for i in wires:
                qml.RY(w[layer, i], wires=i)
    elif circuit == "basic_entangler":
        qml.BasicEntanglerLayers(w[layers[0] : layers[-1] + 1], wires=wires)
    elif circuit == "strongly_entangling":
        if len(layers) == DEPTH:  # the template's default ranges
            qml.StronglyEntanglingLayers(w, wires=wires)
        else:  # layer l alone entangles with range (l mod (N - 1)) + 1
            qml.StronglyEntanglingLayers(
                w[layers[0] : layers[0] + 1], wires=wires, ranges=[layers[0] % (N - 1) + 1]
            )
    else:
        initial, rest = w[:N], w[N:].reshape(DEPTH, N - 1, 2)
        if layers[0] > 0:  # a later layer without the initial RY layer
            initial = torch.zeros(N, dtype=w.dtype)
        qml.SimplifiedTwoDesign(initial, rest[layers[0] : layers[-1] + 1], wires=wires)


def _reference(circuit, embedding, reupload):
    @qml.qnode(qml.device("default.qubit", wires=N), interface="torch", diff_method="backprop")
    def qnode(x, w):
        if reupload:
            for layer in range(DEPTH):
                _embed(embedding, x)
                _layers(circuit, w, [layer])
        else:
            _embed(embedding, x)
            _layers(circuit, w, list(range(DEPTH)))
        return [qml.expval(qml.PauliZ(i)) for i in range(N)]

    return qnode


COMBINATIONS = list(itertools.product(CIRCUITS, EMBEDDINGS, (False, True)))


@pytest.mark.parametrize("simulator", [ProgramCircuit, FusedProgramCircuit])
@pytest.mark.parametrize(("circuit", "embedding", "reupload"), COMBINATIONS)
def test_builtin_equals_the_pennylane_template(circuit, embedding, reupload, simulator):
    fn, shape = builtin(circuit, embedding, reupload, N, DEPTH)
    assert shape == weight_shape(circuit, N, DEPTH)
    sim = simulator(compile_circuit(fn, shape, N, name=circuit))
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(2, N, generator=gen, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    w = (torch.rand(shape, generator=gen, dtype=torch.float64) * 6 - 3).requires_grad_()
    qnode = _reference(circuit, embedding, reupload)
    ref = torch.stack([torch.stack(qnode(x[b], w)) for b in range(2)])
    out = sim(x, w)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    probe = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)
    got = torch.autograd.grad((out * probe).sum(), (x, w))
    want = torch.autograd.grad((ref * probe).sum(), (x, w))
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=0)


def test_builtin_weight_shapes_are_the_templates():
    assert weight_shape("strongly_entangling", 4, 6) == qml.StronglyEntanglingLayers.shape(6, 4)
    assert weight_shape("basic_entangler", 4, 6) == qml.BasicEntanglerLayers.shape(6, 4)
    first, rest = qml.SimplifiedTwoDesign.shape(6, 4)
    assert weight_shape("simplified_two_design", 4, 6) == (first[0] + rest[0] * rest[1] * 2,)


def test_real_circuits_keep_a_real_state_and_others_are_complex():
    real = ProgramCircuit(compile_circuit(*builtin("paper", "paper", True, N, DEPTH), N, name="p"))
    iqp = ProgramCircuit(compile_circuit(*builtin("paper", "iqp", False, N, DEPTH), N, name="i"))
    assert real.real and not iqp.real
