"""The circuit's simulators against a plain per-sample PennyLane default.qubit QNode."""

from __future__ import annotations

import math
import subprocess
import sys

import pennylane as qml
import pytest
import torch

from pipeline.common.errors import ConfigError
from pipeline.heads.dressed import DressedQuantumNet
from pipeline.simulators.qubit import (
    PennyLaneCircuit,
    TorchCircuit,
    cnot_permutation,
    shape,
)

TOL = 1e-10


def reference_qnode(n_qubits: int, q_depth: int):
    """The paper's circuit, one sample at a time, written out gate by gate (demo style)."""
    dev = qml.device("default.qubit", wires=n_qubits)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(x, w):
        for i in range(n_qubits):
            qml.Hadamard(wires=i)
        for i in range(n_qubits):
            qml.RY(x[i], wires=i)
        for k in range(q_depth):
            for i in range(0, n_qubits - 1, 2):
                qml.CNOT(wires=[i, i + 1])
            for i in range(1, n_qubits - 1, 2):
                qml.CNOT(wires=[i, i + 1])
            for i in range(n_qubits):
                qml.RY(w[k, i], wires=i)
        return [qml.expval(qml.PauliZ(i)) for i in range(n_qubits)]

    return circuit


def reference(n_qubits, q_depth, x, w, cotangent):
    """Outputs (B, n) and the gradients of <cotangent, outputs> w.r.t. x and w, per sample."""
    qnode = reference_qnode(n_qubits, q_depth)
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    out = torch.stack([torch.stack(list(qnode(x[b], w))) for b in range(len(x))])
    gx, gw = torch.autograd.grad(out, (x, w), cotangent, allow_unused=True)
    return out.detach(), gx, gw if gw is not None else torch.zeros_like(w)


def ours(circuit, x, w, cotangent):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    out = circuit(x, w)
    gx, gw = torch.autograd.grad(out, (x, w), cotangent, allow_unused=True)
    return out.detach(), gx, gw if gw is not None else torch.zeros_like(w)


def _random(n_qubits, q_depth, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed + 31 * n_qubits + q_depth)
    x = (torch.rand(batch, n_qubits, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    w = (torch.rand(q_depth, n_qubits, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    cot = torch.randn(batch, n_qubits, generator=g, dtype=torch.float64)
    return x, w, cot


BACKENDS = {
    "torch-matrix": lambda n, d: TorchCircuit(n, d, "matrix"),
    "torch-gates": lambda n, d: TorchCircuit(n, d, "gates"),
    "default.qubit": lambda n, d: PennyLaneCircuit("default.qubit", n, d),
    "lightning.qubit-adjoint": lambda n, d: PennyLaneCircuit(
        "lightning.qubit", n, d, diff_method="adjoint"
    ),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("n_qubits", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("q_depth", [0, 1, 2, 6])
def test_backends_agree_with_per_sample_pennylane(backend, n_qubits, q_depth):
    x, w, cot = _random(n_qubits, q_depth)
    ref_out, ref_gx, ref_gw = reference(n_qubits, q_depth, x, w, cot)
    out, gx, gw = ours(BACKENDS[backend](n_qubits, q_depth).double(), x, w, cot)
    assert out.shape == (4, n_qubits)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=TOL)
    torch.testing.assert_close(gx, ref_gx, rtol=0, atol=TOL)
    torch.testing.assert_close(gw, ref_gw, rtol=0, atol=TOL)
    assert ref_gx.abs().max() > 1e-3  # the gradients compared are not all zero


@pytest.mark.parametrize("n_qubits", [10, 16])
def test_gate_by_gate_simulation_scales_to_16_qubits(n_qubits):
    x, w, cot = _random(n_qubits, 2, batch=2)
    circuit = TorchCircuit(n_qubits, 2)  # auto picks gates above MATRIX_MAX_QUBITS
    assert circuit.method == "gates"
    ref_out, ref_gx, ref_gw = reference(n_qubits, 2, x, w, cot)
    out, gx, gw = ours(circuit.double(), x, w, cot)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=TOL)
    torch.testing.assert_close(gx, ref_gx, rtol=0, atol=TOL)
    torch.testing.assert_close(gw, ref_gw, rtol=0, atol=TOL)


@pytest.mark.parametrize("n_qubits", [3, 10])
def test_stacked_gate_by_gate_circuits_agree_with_pennylane(n_qubits):
    """M circuits at once (inputs (M, B, n), weights (M, d, n)): each member's outputs and
    gradients are the reference's for its own weights."""
    runs = [_random(n_qubits, 2, batch=2, seed=s) for s in range(3)]
    x, w, cot = (torch.stack(parts) for parts in zip(*runs, strict=True))
    out, gx, gw = ours(TorchCircuit(n_qubits, 2, "gates").double(), x, w, cot)
    assert out.shape == (3, 2, n_qubits)
    for m, run in enumerate(runs):
        for got, want in zip((out[m], gx[m], gw[m]), reference(n_qubits, 2, *run), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=TOL)


def test_matrix_and_gates_agree_at_eight_qubits():
    x, w, cot = _random(8, 3, batch=5)
    a = ours(TorchCircuit(8, 3, "matrix").double(), x, w, cot)
    b = ours(TorchCircuit(8, 3, "gates").double(), x, w, cot)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=TOL)


def test_unitary_is_orthogonal_and_gradcheck_passes():
    circuit = TorchCircuit(3, 4).double()
    _, w, _ = _random(3, 4)
    u = circuit.unitary(w)
    torch.testing.assert_close(u @ u.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-12)
    x, w, _ = _random(3, 2)
    assert torch.autograd.gradcheck(
        TorchCircuit(3, 2).double(), (x.requires_grad_(), w.requires_grad_())
    )


def test_float32_option_stays_close():
    x, w, cot = _random(4, 6)
    ref_out, ref_gx, ref_gw = reference(4, 6, x, w, cot)
    out, gx, gw = ours(TorchCircuit(4, 6), x.float(), w.float(), cot.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out, rtol=0, atol=1e-5)
    torch.testing.assert_close(gx.double(), ref_gx, rtol=0, atol=1e-5)
    torch.testing.assert_close(gw.double(), ref_gw, rtol=0, atol=1e-5)


def test_cnot_layer_permutation():
    # 3 qubits: CNOT(0,1) then CNOT(1,2); |100> -> |110> -> |111>
    perm = cnot_permutation(3)
    assert perm[0b100] == 0b111 and perm[0b000] == 0 and perm[0b001] == 0b001
    assert sorted(perm.tolist()) == list(range(8))


def test_shape_helper_and_constructor_checks():
    assert shape(4, 6) == (6, 4)
    net = DressedQuantumNet(in_features=8, n_qubits=3, q_depth=2, n_classes=3)
    assert net.q_params.shape == shape(3, 2)
    assert net(torch.zeros(5, 8)).shape == (5, 3)
    with pytest.raises(ValueError, match=r"n_qubits: expected an integer >= 1; got 0"):
        DressedQuantumNet(n_qubits=0)
    with pytest.raises(ValueError, match=r"n_classes: expected an integer >= 2; got 1"):
        DressedQuantumNet(n_classes=1)
    with pytest.raises(ValueError, match=r"q_delta: expected a number >= 0; got -1"):
        DressedQuantumNet(q_delta=-1)
    circuit = TorchCircuit(3, 2)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(B, 3\); got \(5, 4\)"):
        circuit(torch.zeros(5, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"expected weights of shape \(2, 3\); got \(3, 2\)"):
        circuit(torch.zeros(5, 3), torch.zeros(3, 2))


def test_initial_circuit_weights_follow_q_delta():
    torch.manual_seed(0)
    net = DressedQuantumNet(n_qubits=16, q_depth=64, q_delta=0.01, backend="torch")
    assert net.q_params.std().item() == pytest.approx(0.01, rel=0.05)


def test_unknown_backend_lists_installed_devices():
    with pytest.raises(ConfigError, match=r"unknown backend 'nope.qubit'.*default\.qubit"):
        DressedQuantumNet(backend="nope.qubit")


def test_shots_are_seeded_and_differentiable():
    net = PennyLaneCircuit("default.qubit", 2, 1, shots=200, seed=7)
    x = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[0.1, 0.2]], dtype=torch.float64, requires_grad=True)
    a = net(x, w)
    a.sum().backward()
    assert x.grad is not None and w.grad is not None
    b = PennyLaneCircuit("default.qubit", 2, 1, shots=200, seed=7)(x, w)
    torch.testing.assert_close(a, b)
    exact = PennyLaneCircuit("default.qubit", 2, 1)(x, w)
    assert (a - exact).abs().max() < 0.3  # 200 shots: within a few standard deviations


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_backend_on_cuda_matches_cpu():
    x, w, cot = _random(4, 6)
    cpu = ours(TorchCircuit(4, 6).double(), x, w, cot)
    gpu = ours(TorchCircuit(4, 6).double().cuda(), x.cuda(), w.cuda(), cot.cuda())
    for u, v in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(u, v.cpu(), rtol=0, atol=TOL)


def test_torch_backend_imports_neither_pennylane_nor_torchvision():
    code = (
        "import sys; from pipeline import train_head; from pipeline.heads import dressed;"
        "dressed.DressedQuantumNet()(__import__('torch').zeros(2, 512));"
        "bad = [m for m in ('pennylane', 'torchvision') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
