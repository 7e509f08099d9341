"""Noisy and finite-shot simulation: by hand, against default.mixed and the pure-state circuit."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.common.errors import ConfigError, PipelineError
from pipeline.heads.dressed import DressedQuantumNet
from pipeline.simulators import noise as nz
from pipeline.simulators.noise import (
    NoiseModel,
    basis_probabilities,
    circuit_ops,
    density_matrix,
    noisy_ops,
)
from pipeline.simulators.noisy_circuits import (
    NoisyPennyLaneCircuit,
    NoisyTorchCircuit,
    make_noisy_circuit,
)
from pipeline.simulators.qubit import TorchCircuit
from pipeline.simulators.shots import (
    expectations,
    readout_probabilities,
    sample_counts,
    sample_expectations,
    z_expectations,
)

F64 = torch.float64

REPO = Path(__file__).resolve().parents[2]


def _random(n_qubits, q_depth, batch=4, seed=0):
    """Angles x (B, n) and weights (depth, n), uniform in [-pi, pi]."""
    g = torch.Generator().manual_seed(seed + 31 * n_qubits + q_depth)
    x = (torch.rand(batch, n_qubits, generator=g, dtype=F64) * 2 - 1) * math.pi
    w = (torch.rand(q_depth, n_qubits, generator=g, dtype=F64) * 2 - 1) * math.pi
    return x, w


# ----------------------------------------------------------------------------- the op list


def test_circuit_ops_is_the_papers_circuit():
    ops = circuit_ops(4, 2)
    assert len(ops) == 2 * 4 + 2 * (2 * 4 - 1)
    assert [(op.name, op.wires) for op in ops[:8]] == [("Hadamard", (i,)) for i in range(4)] + [
        ("RY", (i,)) for i in range(4)
    ]
    assert [op.param for op in ops[4:8]] == [nz.Angle("inputs", (i,)) for i in range(4)]
    layer = ops[8:15]
    assert [op.wires for op in layer[:3]] == [(0, 1), (2, 3), (1, 2)]
    assert all(op.name == "CNOT" for op in layer[:3])
    assert [op.param for op in layer[3:]] == [nz.Angle("weights", (0, i)) for i in range(4)]
    assert ops[-1].param == nz.Angle("weights", (1, 3))


def test_noisy_ops_put_the_channels_after_every_gate_on_every_touched_wire():
    noise = NoiseModel(depolarizing=0.1, amplitude_damping=0.2, readout_error=0.3)
    ops = noisy_ops(3, 1, noise)
    gates = [op for op in ops if op.name in ("Hadamard", "RY", "CNOT")]
    assert gates == list(circuit_ops(3, 1))
    i = next(k for k, op in enumerate(ops) if op.name == "CNOT")
    assert [(op.name, op.wires, op.param) for op in ops[i + 1 : i + 5]] == [
        ("DepolarizingChannel", (0,), 0.1),
        ("AmplitudeDamping", (0,), 0.2),
        ("DepolarizingChannel", (1,), 0.1),
        ("AmplitudeDamping", (1,), 0.2),
    ]
    assert len(ops) == len(gates) + 2 * sum(len(g.wires) for g in gates)
    assert noisy_ops(3, 1, NoiseModel(readout_error=0.3)) == circuit_ops(3, 1)


# ----------------------------------------------------------------------------- by hand


@pytest.mark.parametrize(("p", "q"), [(0.0, 0.0), (0.01, 0.0), (0.2, 0.05), (0.75, 0.0)])
def test_one_qubit_depolarizing_by_hand(p, q):
    # H, RY(x), RY(w), each followed by a depolarizing channel that shrinks the Bloch vector by
    # lam = 1 - 4p/3: |0> -> H -> (1, 0, 0) -> lam (1, 0, 0) -> RY(x) -> lam (cos x, 0, -sin x)
    # -> lam^2 (...) -> RY(w): z = -lam^2 sin(x + w) -> lam^3; readout: times 1 - 2q.
    x = torch.tensor([[0.3], [-2.1], [math.pi], [1.0]], dtype=F64)
    w = torch.tensor([[0.7]], dtype=F64)
    lam = 1 - 4 * p / 3
    expected = -(lam**3) * torch.sin(x + w[0]) * (1 - 2 * q)
    noise = NoiseModel(depolarizing=p, readout_error=q)
    assert torch.allclose(expectations(x, w, noise), expected, rtol=0, atol=1e-12)
    pennylane = NoisyPennyLaneCircuit("default.mixed", 1, 1, noise)(x, w)
    assert torch.allclose(pennylane, expected, rtol=0, atol=1e-12)


def test_one_qubit_amplitude_damping_then_depolarizing_by_hand():
    # Bloch maps: RY(t) rotates (bx, bz) -> (bx cos t + bz sin t, bz cos t - bx sin t);
    # depolarizing scales by lam; amplitude damping (after it): bx * sqrt(1 - g), g + (1 - g) bz.
    p, g, x, w = 0.05, 0.1, 0.9, -0.4
    lam, s = 1 - 4 * p / 3, math.sqrt(1 - g)

    def noise(b):
        bx, bz = lam * b[0], lam * b[1]
        return s * bx, g + (1 - g) * bz

    def ry(b, t):
        return b[0] * math.cos(t) + b[1] * math.sin(t), b[1] * math.cos(t) - b[0] * math.sin(t)

    bloch = noise((1.0, 0.0))  # after H
    bloch = noise(ry(noise(ry(bloch, x)), w))
    model = NoiseModel(depolarizing=p, amplitude_damping=g)
    got = expectations(torch.tensor([[x]], dtype=F64), torch.tensor([[w]], dtype=F64), model)
    assert abs(got.item() - bloch[1]) < 1e-12


def test_full_noise_after_the_last_gate_fixes_the_outputs():
    x, w = _random(3, 2)
    assert expectations(x, w, NoiseModel(depolarizing=0.75)).abs().max() < 1e-14
    assert torch.allclose(
        expectations(x, w, NoiseModel(amplitude_damping=1.0)), torch.ones(4, 3, dtype=F64)
    )
    flipped = expectations(x, w, NoiseModel(amplitude_damping=1.0, readout_error=1.0))
    assert torch.allclose(flipped, -torch.ones(4, 3, dtype=F64))


# ----------------------------------------------------------------------------- against references


NOISES = [
    NoiseModel(depolarizing=0.02, amplitude_damping=0.03, readout_error=0.04),
    NoiseModel(depolarizing=0.3, amplitude_damping=0.15),
]


@pytest.mark.parametrize("n_qubits", [1, 2, 3, 4])
@pytest.mark.parametrize("q_depth", [0, 1, 2, 6])
def test_torch_density_matrix_equals_default_mixed(n_qubits, q_depth):
    x, w = _random(n_qubits, q_depth, batch=3)
    for noise in NOISES:
        ours = expectations(x, w, noise)
        theirs = NoisyPennyLaneCircuit("default.mixed", n_qubits, q_depth, noise)(x, w)
        assert ours.dtype == theirs.dtype == F64
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-10), (ours - theirs).abs().max()


@pytest.mark.parametrize(("n_qubits", "q_depth"), [(1, 0), (1, 3), (2, 1), (4, 6), (5, 2), (6, 3)])
def test_noiseless_equals_the_pure_state_circuit(n_qubits, q_depth):
    x, w = _random(n_qubits, q_depth, batch=5)
    pure = TorchCircuit(n_qubits, q_depth, "gates")(x, w)
    assert torch.allclose(expectations(x, w), pure, rtol=0, atol=1e-12)
    rho = density_matrix(x, w)
    purity = torch.einsum("bij,bji->b", rho, rho)
    assert torch.allclose(purity, torch.ones(5, dtype=F64), rtol=0, atol=1e-12)


def test_density_matrix_is_a_state_and_chunks_do_not_change_it(monkeypatch):
    x, w = _random(3, 2, batch=7)
    rho = density_matrix(x, w, NOISES[0])
    assert rho.shape == (7, 8, 8) and rho.dtype == F64
    assert torch.allclose(rho, rho.transpose(1, 2), rtol=0, atol=1e-15)
    assert torch.allclose(torch.einsum("bii->b", rho), torch.ones(7, dtype=F64), atol=1e-14)
    assert torch.linalg.eigvalsh(rho).min() > -1e-14
    probs = basis_probabilities(x, w, NOISES[0])
    assert torch.equal(probs, torch.diagonal(rho, dim1=1, dim2=2))
    monkeypatch.setattr(nz, "CHUNK_ELEMENTS", 2 * 4**3)  # chunks of 2 samples
    assert torch.allclose(density_matrix(x, w, NOISES[0]), rho, rtol=0, atol=1e-15)


def test_float32_inputs_give_float32_outputs():
    x, w = _random(3, 2)
    got = expectations(x.float(), w.float(), NOISES[0])
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expectations(x, w, NOISES[0]), atol=1e-5)


def test_noisy_circuit_drops_into_a_dressed_net():
    torch.manual_seed(0)
    net = DressedQuantumNet(in_features=6, n_qubits=3, q_depth=2).double()
    feats = torch.randn(5, 6, dtype=F64)
    exact = net(feats)
    net.circuit = NoisyTorchCircuit(3, 2)
    assert torch.allclose(net(feats), exact, rtol=0, atol=1e-12)
    net.circuit = make_noisy_circuit("torch", 3, 2, NoiseModel(depolarizing=0.05))
    assert not torch.allclose(net(feats), exact, atol=1e-3)


# ----------------------------------------------------------------------------- readout and shots


def test_readout_error_scales_exact_values_and_flips_bits():
    x, w = _random(3, 2)
    probs = basis_probabilities(x, w, NOISES[1])
    read = readout_probabilities(probs, 0.1)
    assert torch.allclose(z_expectations(read), 0.8 * z_expectations(probs), rtol=0, atol=1e-15)
    point = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=F64)  # |01>
    expected = torch.tensor([[0.1 * 0.9, 0.9 * 0.9, 0.1 * 0.1, 0.9 * 0.1]], dtype=F64)
    assert torch.allclose(readout_probabilities(point, 0.1), expected, rtol=0, atol=1e-15)


def test_sample_counts_add_up_and_respect_the_support():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]], dtype=F64)
    counts = sample_counts(probs, 1000, generator=1)
    assert counts.dtype == torch.int64
    assert counts.sum(1).tolist() == [1000, 1000]
    assert counts[0, 0] == counts[0, 2] == 0
    assert counts[1].tolist() == [0, 0, 1000, 0]


def test_shots_are_seeded():
    x, w = _random(4, 6, batch=10)
    probs = basis_probabilities(x, w, NOISES[0])
    a = sample_expectations(probs, 100, readout_error=0.04, generator=7)
    b = sample_expectations(
        probs, 100, readout_error=0.04, generator=torch.Generator().manual_seed(7)
    )
    c = sample_expectations(probs, 100, readout_error=0.04, generator=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    circuit = NoisyTorchCircuit(4, 6, NOISES[0], shots=100, seed=7)
    first, second = circuit(x, w), circuit(x, w)
    assert torch.equal(first, a)  # the module's generator starts where a fresh seed does
    assert not torch.equal(first, second)  # and later calls continue its stream
    again = NoisyTorchCircuit(4, 6, NOISES[0], shots=100, seed=7)
    assert torch.equal(again(x, w), first) and torch.equal(again(x, w), second)


@pytest.mark.parametrize("readout_error", [0.0, 0.1])
def test_shot_estimates_are_unbiased_with_the_binomial_variance(readout_error):
    x, w = _random(3, 2, batch=6)
    probs = basis_probabilities(x, w, NOISES[1])  # (6, 8)
    exact = z_expectations(readout_probabilities(probs, readout_error))  # (6, 3)
    shots, reps = 50, 4000
    est = sample_expectations(
        probs.repeat(reps, 1), shots, readout_error=readout_error, generator=3
    ).view(reps, 6, 3)
    var = (1 - exact**2) / shots  # of one estimate: the mean of shots +-1 outcomes
    # the mean of reps estimates has standard error sqrt(var / reps): 18 entries within 5 of them
    assert ((est.mean(0) - exact).abs() <= 5 * (var / reps).sqrt()).all()
    # the sample variance of reps draws has relative standard error about sqrt(2 / reps)
    assert ((est.var(0) / var - 1).abs() <= 5 * math.sqrt(2 / reps)).all()


def test_default_mixed_shots_are_seeded_and_near_the_exact_values():
    x, w = _random(2, 1, batch=20)
    noise = NoiseModel(depolarizing=0.05, readout_error=0.02)
    make = lambda seed: NoisyPennyLaneCircuit(  # noqa: E731
        "default.mixed", 2, 1, noise, shots=2000, seed=seed
    )
    a, b, c = make(5)(x, w), make(5)(x, w), make(6)(x, w)
    assert torch.equal(a, b) and not torch.equal(a, c)
    exact = expectations(x, w, noise)
    se = ((1 - exact**2) / 2000).sqrt()
    assert ((a - exact).abs() <= 5 * se + 1e-12).all()


def test_noiseless_devices_run_without_noise():
    x, w = _random(3, 2)
    exact = expectations(x, w)
    got = NoisyPennyLaneCircuit("lightning.qubit", 3, 2)(x, w)
    assert torch.allclose(got, exact, rtol=0, atol=1e-12)
    sampled = NoisyPennyLaneCircuit("default.qubit", 3, 2, shots=10, seed=0)(x, w)
    assert ((sampled * 10).round() == sampled * 10).all()  # means of 10 +-1 outcomes


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("key", ["depolarizing", "amplitude_damping", "readout_error"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), True, "0.1", None])
def test_noise_probabilities_are_checked(key, value):
    with pytest.raises(ConfigError, match=rf"^evaluate\.{key}: expected probabilities in \[0, 1\]"):
        NoiseModel(**{key: value})


def test_noise_error_message():
    with pytest.raises(ConfigError) as err:
        NoiseModel(depolarizing=-0.1)
    assert str(err.value) == "evaluate.depolarizing: expected probabilities in [0, 1]; got -0.1"
    assert NoiseModel(depolarizing=1, readout_error=0).depolarizing == 1.0


@pytest.mark.parametrize("shots", [0, -5, 1.5, True, "100"])
def test_shots_are_checked(shots):
    probs = torch.full((2, 4), 0.25, dtype=F64)
    with pytest.raises(ConfigError, match=r"^evaluate\.shots: expected a positive integer"):
        sample_expectations(probs, shots)
    with pytest.raises(ConfigError, match=r"^evaluate\.shots"):
        NoisyTorchCircuit(2, 1, shots=shots)


@pytest.mark.parametrize(
    "probs",
    [
        torch.full((2, 3), 1 / 3, dtype=F64),  # not 2^n states
        torch.tensor([[0.5, 0.6]], dtype=F64),  # sums to 1.1
        torch.tensor([[-0.5, 1.5]], dtype=F64),
        torch.tensor([[float("nan"), 1.0]], dtype=F64),
        torch.tensor([[1, 0]]),  # integers
    ],
)
def test_probabilities_are_checked(probs):
    with pytest.raises(PipelineError, match="expected"):
        sample_counts(probs, 10, generator=0)


def test_shapes_and_sizes_are_checked():
    x, w = _random(3, 2)
    with pytest.raises(
        PipelineError, match=r"expected weights of shape \(q_depth, 3\); got \(2, 4\)"
    ):
        expectations(x, torch.zeros(2, 4, dtype=F64))
    with pytest.raises(PipelineError, match=r"expected inputs of shape \(B, n_qubits\); got \(3,"):
        expectations(x[0], w)
    with pytest.raises(PipelineError, match=r"expected inputs \(B, 4\) and weights \(2, 4\)"):
        NoisyTorchCircuit(4, 2)(x, w)
    with pytest.raises(ConfigError, match=r"^evaluate\.n_qubits: expected an integer >= 1"):
        circuit_ops(0, 1)


def test_unknown_device_lists_the_installed_ones():
    import pennylane as qml

    with pytest.raises(ConfigError, match=r"unknown backend 'no\.such\.device'") as err:
        make_noisy_circuit("no.such.device", 2, 1)
    assert ", ".join(sorted(qml.plugin_devices)) in str(err.value)


@pytest.mark.parametrize("device", ["default.qubit", "lightning.qubit"])
@pytest.mark.parametrize(
    "noise",
    [
        NoiseModel(depolarizing=0.01),
        NoiseModel(amplitude_damping=0.01),
        NoiseModel(readout_error=0.01),
    ],
)
def test_noiseless_only_devices_refuse_noise(device, noise):
    with pytest.raises(ConfigError, match=rf"{device}' cannot simulate noise .*'default\.mixed'"):
        NoisyPennyLaneCircuit(device, 2, 1, noise)


def test_the_torch_path_does_not_import_pennylane():
    code = (
        "import sys, torch; from pipeline.simulators import noise, noisy_circuits;"
        "noisy_circuits.NoisyTorchCircuit(2, 1, noise.NoiseModel(0.1), shots=10, seed=0)"
        "(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(1, 2));"
        "assert 'pennylane' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu_and_is_seeded():
    x, w = _random(4, 6, batch=9)
    noise = NOISES[0]
    cpu = expectations(x, w, noise)
    gpu = expectations(x.cuda(), w.cuda(), noise)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)
    circuit = NoisyTorchCircuit(4, 6, noise, shots=100, seed=3)
    again = NoisyTorchCircuit(4, 6, noise, shots=100, seed=3)
    assert torch.equal(circuit(x.cuda(), w.cuda()), again(x.cuda(), w.cuda()))
