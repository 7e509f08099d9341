"""A user's circuit function compiled and simulated: every supported gate, Pauli-word
observables, lowered operations and expressions against a default.qubit QNode; what is
refused, and why; members of a stack equal their own runs bitwise. Both simulators: gate by
gate and fused into layers."""

from __future__ import annotations

import pennylane as qml
import pytest
import torch

from pipeline.circuits.compiler import CircuitError, compile_circuit
from pipeline.simulators.fused import FusedProgramCircuit
from pipeline.simulators.program import GATES, ProgramCircuit

N = 3


def every_gate(inputs, weights):
    qml.Hadamard(wires=0)
    qml.PauliX(wires=1)
    qml.PauliY(wires=2)
    qml.RX(inputs[0], wires=0)
    qml.RY(inputs[1], wires=1)
    qml.RZ(inputs[2], wires=2)
    qml.PauliZ(wires=0)
    qml.S(wires=1)
    qml.T(wires=2)
    qml.PhaseShift(weights[0], wires=0)
    qml.Rot(weights[1], weights[2], weights[3], wires=1)
    qml.CNOT(wires=[0, 2])
    qml.CZ(wires=[2, 1])
    qml.SWAP(wires=[0, 1])
    qml.CRX(weights[4], wires=[1, 0])
    qml.CRY(weights[5], wires=[0, 2])
    qml.CRZ(weights[6], wires=[2, 1])
    qml.IsingXX(weights[7], wires=[0, 1])
    qml.IsingYY(weights[8], wires=[1, 2])
    qml.IsingZZ(weights[9], wires=[0, 2])
    qml.MultiRZ(weights[10], wires=[0, 1, 2])
    qml.Identity(wires=1)
    return [
        qml.expval(qml.PauliZ(0)),
        qml.expval(qml.PauliX(1) @ qml.PauliY(2)),
        qml.expval(qml.PauliY(0) @ qml.PauliZ(1) @ qml.PauliX(2)),
        qml.expval(qml.PauliZ(1) @ qml.PauliZ(2)),
    ]


def lowered(inputs, weights):
    """Operations outside the gate set, and angles that are expressions of the arguments."""
    qml.U3(inputs[0], weights[0], weights[1], wires=0)
    qml.Toffoli(wires=[0, 1, 2])
    qml.CRot(weights[2], weights[3], inputs[1], wires=[1, 2])
    qml.RY(2 * inputs[2] + weights[0], wires=2)
    qml.RX(torch.sin(inputs[0]) * weights[1], wires=1)
    qml.RZ(0.25, wires=0)
    return [qml.expval(qml.PauliX(0)), qml.expval(qml.PauliY(1) @ qml.PauliX(2))]


def layered(inputs, weights):
    """Every kind of fused step: permutations before the first layer, folded into a weights
    layer and before an inputs layer, factors of several gates on a wire, a diagonal run that
    starts with an input RZ (the next gate, on another wire, joins the layer before it), a
    rotation that is neither, a permutation at the end."""
    qml.CNOT(wires=[0, 1])
    qml.Hadamard(wires=0)
    qml.RY(inputs[0], wires=0)
    qml.RX(inputs[1], wires=1)
    qml.CZ(wires=[0, 2])
    qml.CNOT(wires=[2, 1])
    qml.Rot(weights[0], weights[1], weights[2], wires=2)
    qml.S(wires=0)
    qml.RY(weights[3], wires=1)
    qml.SWAP(wires=[0, 2])
    qml.RY(inputs[2], wires=1)
    qml.PauliY(wires=0)
    qml.RZ(inputs[0], wires=0)
    qml.RX(weights[4], wires=2)
    qml.IsingZZ(inputs[0] * inputs[1], wires=[0, 1])
    qml.MultiRZ(weights[5], wires=[0, 1, 2])
    qml.CRY(weights[6], wires=[1, 2])
    qml.T(wires=1)
    qml.CZ(wires=[1, 2])
    return [
        qml.expval(qml.PauliZ(0)),
        qml.expval(qml.PauliX(1) @ qml.PauliY(2)),
        qml.expval(qml.PauliY(0) @ qml.PauliZ(1) @ qml.PauliX(2)),
    ]


SIMULATORS = (ProgramCircuit, FusedProgramCircuit)


def _check_against_pennylane(fn, n_weights, simulator):
    sim = simulator(compile_circuit(fn, (n_weights,), N, name="test"))
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(3, N, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_()
    w = (torch.rand(n_weights, generator=gen, dtype=torch.float64) * 4 - 2).requires_grad_()
    qnode = qml.QNode(fn, qml.device("default.qubit", wires=N), interface="torch")
    ref = torch.stack([torch.stack(qnode(x[b], w)) for b in range(3)])
    out = sim(x, w)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    probe = torch.linspace(-1, 1, ref.shape[1], dtype=torch.float64)
    got = torch.autograd.grad((out * probe).sum(), (x, w))
    want = torch.autograd.grad((ref * probe).sum(), (x, w))
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=0)
    return sim


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_every_supported_gate_and_pauli_word_equals_default_qubit(simulator):
    sim = _check_against_pennylane(every_gate, 11, simulator)
    assert {g.name for g in sim.program.gates} == set(GATES)
    assert not sim.real


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_lowered_operations_and_expression_angles_equal_default_qubit(simulator):
    sim = _check_against_pennylane(lowered, 4, simulator)
    kinds = {s[0] for s in sim.program.sources}
    assert {"x", "w", "c", "e"} <= kinds  # 2 x + w and sin(x) w are expressions
    assert sim.program.expressions is not None


def test_the_fused_steps_equal_default_qubit():
    sim = _check_against_pennylane(layered, 7, FusedProgramCircuit)
    kinds = [item[0] for item in sim.plan.items]
    assert kinds == ["layer", "layer", "layer", "diag", "rot", "rot", "layer", "perm"]
    assert [item[1].inputs for item in sim.plan.items if item[0] == "layer"] == [1, 0, 1, 0]


def test_the_product_state_gradient_wire_by_wire_equals_default_qubit(monkeypatch):
    from pipeline.simulators import fused

    monkeypatch.setattr(fused, "_OUTER_MAX_QUBITS", 0)  # as on more qubits
    _check_against_pennylane(layered, 7, FusedProgramCircuit)


def test_without_a_return_the_outputs_are_z_on_every_wire():
    def bare(inputs, weights):
        for i in range(N):
            qml.RY(inputs[i] * 1.0, wires=i)

    program = compile_circuit(bare, (0,), N, name="bare")
    assert program.observables == tuple((1.0, ((i, "Z"),)) for i in range(N))


@pytest.mark.parametrize(("simulator", "fn"), [(ProgramCircuit, every_gate),
                                                (FusedProgramCircuit, every_gate),
                                                (FusedProgramCircuit, layered)])  # fmt: skip
def test_stack_members_equal_their_own_runs_bitwise(simulator, fn):
    sim = simulator(compile_circuit(fn, (11,), N, name="test"))
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(4, 6, N, generator=gen, dtype=torch.float64).requires_grad_()
    w = torch.rand(4, 11, generator=gen, dtype=torch.float64).requires_grad_()
    out = sim(x, w)
    gx, gw = torch.autograd.grad(out.sum(), (x, w))
    for m in range(4):
        xm, wm = x[m : m + 1].detach().requires_grad_(), w[m : m + 1].detach().requires_grad_()
        alone = sim(xm, wm)
        assert torch.equal(alone[0], out[m])
        ax, aw = torch.autograd.grad(alone.sum(), (xm, wm))
        assert torch.equal(ax[0], gx[m]) and torch.equal(aw[0], gw[m])


def _refused(fn, match, shape=(2,)):
    with pytest.raises(CircuitError, match=match):
        compile_circuit(fn, shape, N, name="circuits/bad.py:bad")


def test_a_wire_out_of_range_is_refused():
    _refused(lambda x, w: qml.RX(x[0], wires=N), r"acts on wire 3; expected wires 0 … 2")


def test_an_operation_that_cannot_be_lowered_is_named_with_the_supported_gates():
    class Mystery(qml.operation.Operation):
        num_wires = 1
        num_params = 0

    _refused(lambda x, w: Mystery(wires=0), r"operation Mystery cannot be lowered.*Hadamard, ")


@pytest.mark.parametrize(
    "measure",
    [
        lambda: qml.probs(wires=0),
        lambda: qml.expval(qml.Hermitian(torch.eye(2, dtype=torch.float64), wires=0)),
        lambda: qml.var(qml.PauliZ(0)),
        lambda: qml.expval(qml.PauliZ(0) + qml.PauliX(1)),
    ],
)
def test_measurements_other_than_pauli_word_expectations_are_refused(measure):
    def fn(x, w):
        qml.RX(x[0], wires=0)
        return [measure()]

    _refused(fn, "expected qml.expval of a Pauli word")


def test_weights_indexed_outside_weight_shape_are_refused():
    _refused(lambda x, w: qml.RX(w[5], wires=0), r"weights of shape \(2,\) failed \(IndexError")


def test_a_bad_weight_shape_is_refused():
    _refused(lambda x, w: None, "weight_shape must return a tuple of integers", shape=(2, -1))


def test_gates_that_depend_on_argument_values_are_refused():
    def branching(x, w):
        if float(x[0]) > 1.5:
            qml.RX(x[0], wires=0)
        qml.RY(x[1], wires=1)

    _refused(branching, "its gates depend on the values of inputs or weights")
