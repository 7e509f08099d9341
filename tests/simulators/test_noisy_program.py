"""Compiled circuits under noise against PennyLane's default.mixed running the same lowered
operations with the same channels after every gate.

default.mixed applies RZ-type gates (RZ, CRZ, MultiRZ) to about 1e-8 only; the circuits here
avoid them (the noiseless simulator meets default.qubit on those to 1e-10 elsewhere)."""

from __future__ import annotations

import pennylane as qml
import pytest
import torch

from pipeline.circuits.builtin import builtin
from pipeline.circuits.compiler import compile_circuit, record
from pipeline.simulators.noise import NoiseModel
from pipeline.simulators.noisy_program import NoisyProgramCircuit
from pipeline.simulators.program import ProgramCircuit

N = 3


def ring(inputs, weights):
    for i in range(N):
        qml.RY(inputs[i], wires=i)
        qml.RX(weights[0, i], wires=i)
    for i in range(N):
        qml.CRX(weights[1, i], wires=[i, (i + 1) % N])
    qml.IsingXX(weights[0, 0] * inputs[1], wires=[0, 2])
    return [qml.expval(qml.PauliZ(0) @ qml.PauliZ(1)), qml.expval(qml.PauliX(2)),
            qml.expval(qml.PauliY(1))]  # fmt: skip


def _mixed(fn, shape, noise: NoiseModel, x, w):
    """default.mixed on the lowered operations, each followed by the channels on its wires;
    each word read in its eigenbasis, through a BitFlip of the readout error on its wires."""
    dev = qml.device("default.mixed", wires=N)

    def one(xb, k):
        @qml.qnode(dev, interface="torch")
        def qnode():
            tape = record(fn, xb, w, N, "reference")
            for op in tape.operations:
                qml.apply(op)
                for wire in op.wires:
                    if noise.depolarizing:
                        qml.DepolarizingChannel(noise.depolarizing, wires=wire)
                    if noise.amplitude_damping:
                        qml.AmplitudeDamping(noise.amplitude_damping, wires=wire)
            obs = tape.measurements[k].obs
            with qml.QueuingManager.stop_recording():
                gates = obs.diagonalizing_gates()
            for gate in gates:
                qml.apply(gate)
            for wire in obs.wires:
                qml.BitFlip(noise.readout_error, wires=wire)
            return qml.expval(qml.prod(*(qml.PauliZ(wire) for wire in obs.wires)))

        return qnode()

    return torch.stack([torch.stack([one(xb, k) for k in range(3)]) for xb in x])


@pytest.mark.parametrize(
    "noise",
    [
        NoiseModel(),
        NoiseModel(depolarizing=0.05, amplitude_damping=0.1),
        NoiseModel(depolarizing=0.02, readout_error=0.1),
    ],
)
@pytest.mark.parametrize("which", ["ring", "basic_entangler+angle_y"])
def test_noisy_program_equals_default_mixed(noise, which):
    if which == "ring":
        fn, shape = ring, (2, N)
    else:
        inner, shape = builtin("basic_entangler", "angle_y", True, N, 2)

        def fn(inputs, weights):
            inner(inputs, weights)
            return [qml.expval(qml.PauliZ(i)) for i in range(N)]

    program = compile_circuit(fn, shape, N, name=which)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, N, generator=gen, dtype=torch.float64) * 3 - 1.5
    w = torch.rand(shape, generator=gen, dtype=torch.float64) * 3 - 1.5
    got = NoisyProgramCircuit(program, noise)(x, w)
    torch.testing.assert_close(got, _mixed(fn, shape, noise, x, w), atol=1e-10, rtol=0)
    if noise.noiseless:
        torch.testing.assert_close(got, ProgramCircuit(program)(x, w), atol=1e-12, rtol=0)


def test_shots_are_seeded_and_near_the_exact_values():
    program = compile_circuit(ring, (2, N), N, name="ring")
    x, w = torch.full((4, N), 0.3, dtype=torch.float64), torch.full((2, N), 0.7).double()
    exact = NoisyProgramCircuit(program)(x, w)
    a = NoisyProgramCircuit(program, shots=4000, seed=1)(x, w)
    assert torch.equal(a, NoisyProgramCircuit(program, shots=4000, seed=1)(x, w))
    assert not torch.equal(a, NoisyProgramCircuit(program, shots=4000, seed=2)(x, w))
    assert (a - exact).abs().max() < 0.1


@pytest.mark.parametrize(
    "noise",
    [
        NoiseModel(),
        NoiseModel(depolarizing=0.05, amplitude_damping=0.1),
        NoiseModel(depolarizing=0.02, readout_error=0.1),
    ],
)
def test_the_program_on_default_mixed_equals_the_reference(noise):
    """The compiled circuit as PennyLane operations on default.mixed (what evaluate runs with
    a PennyLane backend) against the recorded tape with the same channels."""
    from pipeline.simulators.pennylane_program import PennyLaneProgramCircuit

    program = compile_circuit(ring, (2, N), N, name="ring")
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(3, N, generator=gen, dtype=torch.float64) * 3 - 1.5
    w = torch.rand((2, N), generator=gen, dtype=torch.float64) * 3 - 1.5
    got = PennyLaneProgramCircuit("default.mixed", program, noise)(x, w)
    torch.testing.assert_close(got, _mixed(ring, (2, N), noise, x, w), atol=1e-10, rtol=0)


def test_a_device_that_cannot_simulate_noise_is_refused_for_a_program():
    from pipeline.common.errors import ConfigError
    from pipeline.simulators.pennylane_program import PennyLaneProgramCircuit

    program = compile_circuit(ring, (2, N), N, name="ring")
    with pytest.raises(ConfigError, match=r"default\.mixed"):
        PennyLaneProgramCircuit("default.qubit", program, NoiseModel(depolarizing=0.01))
