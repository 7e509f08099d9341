"""The noisy circuit (:func:`pipeline.simulators.noise.noisy_ops`) in torch or PennyLane."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.common.errors import ConfigError, PipelineError
from pipeline.simulators.noise import (
    MIXED_DEVICE,
    NOISELESS,
    READOUT_CHANNEL,
    SECTION,
    Angle,
    NoiseModel,
    check_angles,
    check_size,
    noisy_ops,
)
from pipeline.simulators.shots import check_shots, expectations, make_generator


class NoisyTorchCircuit(nn.Module):
    """The noisy circuit in torch: ``circuit(x (B, n), w (q_depth, n))`` -> ``<Z_i>`` (B, n).

    With ``shots``, ``seed`` seeds the module's generator; successive calls continue its stream.
    """

    def __init__(
        self,
        n_qubits: int,
        q_depth: int,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        check_size(n_qubits, q_depth)
        self.n_qubits, self.q_depth, self.noise = n_qubits, q_depth, noise
        self.shots = check_shots(shots, optional=True)
        self.seed = seed
        self._generator: torch.Generator | None = None
        make_generator(seed, torch.device("cpu"))  # validates the seed

    def extra_repr(self) -> str:
        return f"n_qubits={self.n_qubits}, q_depth={self.q_depth}, noise={self.noise}, " + (
            f"shots={self.shots}, seed={self.seed}"
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_call(x, weights, self.n_qubits, self.q_depth)
        if self.shots is not None and self.seed is not None:
            if self._generator is None or self._generator.device != x.device:
                self._generator = make_generator(self.seed, x.device)
        return expectations(x, weights, self.noise, shots=self.shots, generator=self._generator)


def _check_call(x: torch.Tensor, weights: torch.Tensor, n_qubits: int, q_depth: int) -> None:
    n, depth = check_angles(x, weights)
    if (n, depth) != (n_qubits, q_depth):
        raise PipelineError(
            f"expected inputs (B, {n_qubits}) and weights ({q_depth}, {n_qubits}); "
            f"got {tuple(x.shape)} and {tuple(weights.shape)}"
        )


def installed_devices() -> list[str]:
    import pennylane as qml  # lazily: torch paths never need it

    return sorted(qml.plugin_devices)


def _pennylane_circuit(qml, n_qubits: int, q_depth: int, noise: NoiseModel):
    """The quantum function of :func:`noisy_ops` plus readout bit flips, broadcast over B."""
    ops = noisy_ops(n_qubits, q_depth, noise)

    def circuit(inputs, weights):  # inputs (B, n), weights (q_depth, n)
        for op in ops:
            gate = getattr(qml, op.name)
            if isinstance(op.param, Angle):
                index = op.param.index
                angle = inputs[..., index[0]] if op.param.source == "inputs" else weights[index]
                gate(angle, wires=op.wires)
            elif op.param is None:
                gate(wires=op.wires)
            else:
                gate(op.param, wires=op.wires)
        if noise.readout_error > 0.0:
            for wire in range(n_qubits):
                getattr(qml, READOUT_CHANNEL)(noise.readout_error, wires=wire)
        return [qml.expval(qml.PauliZ(wire)) for wire in range(n_qubits)]

    return circuit


def _check_noise_support(qml, dev, name: str, noise: NoiseModel) -> None:
    """Raise ConfigError unless the device's preprocessing accepts the noise channels."""
    channels = list(noise.gate_channels())
    if noise.readout_error > 0.0:
        channels.append((READOUT_CHANNEL, noise.readout_error))
    wire = dev.wires[0] if dev.wires else 0
    tape = qml.tape.QuantumScript(
        [getattr(qml, channel)(p, wires=wire) for channel, p in channels],
        [qml.expval(qml.PauliZ(wire))],
    )
    if hasattr(dev, "preprocess_transforms"):
        program = dev.preprocess_transforms()
    else:  # PennyLane < 0.41
        program = dev.preprocess()[0]
    device_error = getattr(getattr(qml, "exceptions", None), "DeviceError", None)
    device_error = device_error or qml.DeviceError  # PennyLane < 0.42
    try:
        program((tape,))
    except device_error as exc:
        names = ", ".join(channel for channel, _ in channels)
        raise ConfigError(
            f"{SECTION}.backend: the PennyLane device {name!r} cannot simulate noise "
            f"({names}); expected a mixed-state simulator such as {MIXED_DEVICE!r}, "
            "or no noise for a noiseless device or real hardware"
        ) from exc


def pennylane_device(name: str, n_qubits: int, noise: NoiseModel, *, shots=None, seed=None):
    """An installed PennyLane device on ``n_qubits`` wires that can simulate ``noise``."""
    import pennylane as qml

    check_shots(shots, optional=True)
    if name not in qml.plugin_devices:
        raise ConfigError(
            f"{SECTION}.backend: unknown backend {name!r}; expected 'torch' or an "
            f"installed PennyLane device: {', '.join(installed_devices())}"
        )
    dev = (
        qml.device(name, wires=n_qubits)
        if shots is None
        else qml.device(name, wires=n_qubits, seed=seed)
    )
    if not noise.noiseless:
        _check_noise_support(qml, dev, name, noise)
    return dev


def scoring_qnode(circuit, dev, shots: int | None):
    """``circuit`` as a QNode without gradients (numpy in and out), run with ``shots``."""
    import pennylane as qml

    qnode = qml.QNode(circuit, dev, interface="numpy", diff_method=None)
    return qnode if shots is None else qml.set_shots(qnode, shots=shots)


class NoisyPennyLaneCircuit(nn.Module):
    """The same op list as a PennyLane QNode, for scoring only (no gradients).

    ``device`` must simulate mixed states (``default.mixed``) when there is noise.
    """

    def __init__(
        self,
        device: str,
        n_qubits: int,
        q_depth: int,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        import pennylane as qml  # lazily: torch paths never need it

        check_size(n_qubits, q_depth)
        self.n_qubits, self.q_depth, self.noise = n_qubits, q_depth, noise
        self.device_name, self.shots = device, check_shots(shots, optional=True)
        dev = pennylane_device(device, n_qubits, noise, shots=shots, seed=seed)
        circuit = _pennylane_circuit(qml, n_qubits, q_depth, noise)
        self.qnode = scoring_qnode(circuit, dev, self.shots)

    def extra_repr(self) -> str:
        return (
            f"device={self.device_name!r}, n_qubits={self.n_qubits}, q_depth={self.q_depth}, "
            f"noise={self.noise}, shots={self.shots}"
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_call(x, weights, self.n_qubits, self.q_depth)
        inputs = x.detach().to("cpu", torch.float64).numpy()  # (B, n)
        out = self.qnode(inputs, weights.detach().to("cpu", torch.float64).numpy())  # n x (B,)
        z = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in out], axis=-1)
        return torch.as_tensor(z, dtype=x.dtype, device=x.device)  # (B, n)


def make_noisy_circuit(
    backend: str,
    n_qubits: int,
    q_depth: int,
    noise: NoiseModel = NOISELESS,
    *,
    shots: int | None = None,
    seed: int | None = None,
) -> nn.Module:
    """:class:`NoisyTorchCircuit` for ``backend="torch"``, else a :class:`NoisyPennyLaneCircuit`."""
    if backend == "torch":
        return NoisyTorchCircuit(n_qubits, q_depth, noise, shots=shots, seed=seed)
    return NoisyPennyLaneCircuit(backend, n_qubits, q_depth, noise, shots=shots, seed=seed)
