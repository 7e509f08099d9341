"""A compiled circuit (:class:`~pipeline.simulators.program.Program`) as a PennyLane QNode,
under the noise of :class:`~pipeline.simulators.noisy_program.NoisyProgramCircuit`: for scoring
on any installed device (``default.mixed``, a plugin, hardware).

The QNode applies the program's gates as PennyLane's own operations, each followed on its wires
by the gate channels; a readout error flips each measured bit of a word read in its eigenbasis.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.simulators.noise import NOISELESS, READOUT_CHANNEL, NoiseModel
from pipeline.simulators.noisy_circuits import pennylane_device, scoring_qnode
from pipeline.simulators.program import Program, ProgramCircuit, _table_columns
from pipeline.simulators.shots import check_shots


class PennyLaneProgramCircuit(nn.Module):
    """A compiled circuit on the PennyLane device ``device``, for scoring only (no gradients).

    Call with ``x`` (B, n) and weights (*weight_shape); returns (B, n_outputs).
    """

    def __init__(
        self,
        device: str,
        program: Program,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        import pennylane as qml  # lazily: torch paths never need it

        self.pure, self.noise = ProgramCircuit(program), noise
        self.device_name, self.shots = device, check_shots(shots, optional=True)
        dev = pennylane_device(device, program.n_qubits, noise, shots=shots, seed=seed)
        self.columns = _table_columns(program)[0]
        words = [word for _, word in program.observables]
        # one execution for every word, unless a readout flip must follow a change of basis
        each = noise.readout_error > 0 and any(p != "Z" for word in words for _, p in word)
        groups = [[k] for k in range(len(words))] if each else [list(range(len(words)))]
        self.groups = groups
        self.qnodes = [scoring_qnode(self._circuit(qml, [words[k] for k in g]), dev, self.shots)
                       for g in groups]  # fmt: skip

    def extra_repr(self) -> str:
        return f"device={self.device_name!r}, noise={self.noise}, shots={self.shots}"

    def _circuit(self, qml, words: list[tuple]):
        program, noise = self.pure.program, self.noise
        rotate = noise.readout_error > 0 and any(p != "Z" for word in words for _, p in word)

        def circuit(table):  # table (B, T): the angle table
            for gate in program.gates:
                angles = [table[:, self.columns[c]] for c in gate.params]
                getattr(qml, gate.name)(*angles, wires=gate.wires)
                for channel, p in noise.gate_channels():
                    for wire in gate.wires:
                        getattr(qml, channel)(p, wires=wire)
            measured, read = sorted({w for word in words for w, _ in word}), words
            if rotate:  # one word: read it in its eigenbasis
                for wire, pauli in words[0]:
                    if pauli == "X":
                        qml.Hadamard(wires=wire)
                    elif pauli == "Y":
                        qml.adjoint(qml.S(wires=wire))
                        qml.Hadamard(wires=wire)
                read = [tuple((w, "Z") for w, _ in words[0])]
            if noise.readout_error > 0:
                for wire in measured:
                    getattr(qml, READOUT_CHANNEL)(noise.readout_error, wires=wire)
            return [qml.expval(_operator(qml, word)) for word in read]

        return circuit

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        pure = self.pure
        *_, extra, pairs, _ = pure._constants(torch.float64, torch.device("cpu"))
        with torch.no_grad():
            table = pure.angles(x.detach().cpu().double(), weights.detach().cpu().double(),
                                extra, pairs).numpy()  # fmt: skip
        values = [None] * len(pure.coefficients)
        for group, qnode in zip(self.groups, self.qnodes, strict=True):
            out = qnode(table)
            for k, value in zip(group, out if isinstance(out, (list, tuple)) else [out],
                                strict=True):  # fmt: skip
                values[k] = np.asarray(value, dtype=np.float64).reshape(-1) * pure.coefficients[k]
        z = np.stack([np.broadcast_to(v, (x.shape[0],)) for v in values], axis=-1)
        return torch.as_tensor(z, dtype=x.dtype, device=x.device)  # (B, n_outputs)


def _operator(qml, word: tuple[tuple[int, str], ...]):
    """The Pauli word as a PennyLane operator (the identity for an empty word)."""
    if not word:
        return qml.Identity(0)
    ops = [getattr(qml, f"Pauli{p}")(w) for w, p in word]
    return ops[0] if len(ops) == 1 else qml.prod(*ops)
