"""A compiled circuit (:class:`~pipeline.simulators.program.Program`) under noise and shots.

Each gate, as ``rho -> U rho U^dagger``, is followed on its wires by the gate channels, as
:func:`pipeline.simulators.noise.noisy_ops` places them. Readout error ``q`` scales
``Tr(P rho)`` by ``(1 - 2q)^|P|``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.simulators.noise import NOISELESS, NoiseModel, _kraus
from pipeline.simulators.program import Program, ProgramCircuit, _move_of, _moved


class NoisyProgramCircuit(nn.Module):
    """A compiled circuit as density matrices with gate noise, readout error and shots.

    ``shots``: None for exact expectation values, else measurements per word and sample.
    Call with ``x`` (B, n) and weights (*weight_shape); returns (B, n_outputs).
    """

    def __init__(
        self,
        program: Program,
        noise: NoiseModel = NOISELESS,
        *,
        shots: int | None = None,
        seed: int | None = None,
    ):
        super().__init__()
        self.pure = ProgramCircuit(program)
        self.noise, self.shots, self.seed = noise, shots, seed
        n = program.n_qubits
        self.steps, self.step_wires = _steps_unfused(program)
        channels = noise.gate_channels()
        self.kraus = [torch.tensor(np.stack(_kraus(name, p)), dtype=torch.complex128)
                      for name, p in channels]  # fmt: skip
        self.words = [(_move_of(i, n, "cpu"), p) for i, p in self.pure.words]
        self.weights_of_words = [len(w) for _, w in program.observables]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        pure, n = self.pure, self.pure.n_qubits
        cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        *_, extra, pairs, _ = pure._constants(x.dtype, x.device)
        half = pure.half_angles(x, weights, extra, pairs)
        cos = torch.cos(half).to(cdtype)[..., None, None]  # (B, R, 1, 1)
        sin = torch.sin(half).to(cdtype)[..., None, None]
        rho = torch.zeros(x.shape[0], 2**n, 2**n, dtype=cdtype, device=x.device)
        rho[:, 0, 0] = 1
        for step, wires in zip(self.steps, self.step_wires, strict=True):
            rho = _conjugate(rho, step, cos, sin)
            for wire in wires:
                for kraus in self.kraus:
                    rho = _channel(rho, kraus.to(device=x.device, dtype=cdtype), wire, n)
        values = []
        for (move, phase), coefficient, weight in zip(
            self.words, pure.coefficients, self.weights_of_words, strict=True
        ):
            p_rho = _moved(rho.transpose(-1, -2), move).transpose(-1, -2)  # rows psi[index]
            p_rho = p_rho * phase.to(device=x.device, dtype=cdtype)[:, None]
            value = torch.diagonal(p_rho, dim1=-2, dim2=-1).sum(-1).real
            values.append(value * (1 - 2 * self.noise.readout_error) ** weight * coefficient)
        out = torch.stack(values, dim=-1).to(x.dtype)  # (B, K)
        return out if self.shots is None else self._sample(out)

    def _sample(self, exact: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator(device=exact.device)
        gen.manual_seed(0 if self.seed is None else self.seed)
        scale = torch.tensor([abs(c) or 1.0 for c in self.pure.coefficients], dtype=exact.dtype)
        plus = ((1 + exact / scale) / 2).clamp(0, 1)  # P(+1) of each word
        draws = torch.rand(*plus.shape, self.shots, generator=gen, dtype=exact.dtype)
        mean = (draws < plus.unsqueeze(-1)).to(exact.dtype).mean(-1)
        return (2 * mean - 1) * scale


def _steps_unfused(program: Program) -> tuple[list[tuple], list[tuple[int, ...]]]:
    """The steps, unfused, and per step the wires whose channels follow it."""
    from pipeline.simulators.program import _steps

    steps, columns, wires = [], [], []
    for gate in program.gates:
        if gate.name == "Identity":
            continue
        one = Program(program.n_qubits, program.weight_shape, (gate,), program.sources,
                      program.observables)  # fmt: skip
        s, c, _ = _steps(one)
        for step in s:
            if step[0] == "rot":
                step = ("rot", step[1] + len(columns), *step[2:])
            steps.append(step)
        columns += c
        wires += [()] * (len(s) - 1) + [gate.wires]
    n = program.n_qubits
    moved = []
    for step in steps:
        if step[0] == "fixed":
            moved.append(("fixed", tuple((_move_of(i, n, "cpu"), c) for i, c in step[1])))
        else:
            moved.append(("rot", step[1], _move_of(step[2], n, "cpu"), step[3]))
    return moved, wires


def _apply_rows(step, rho: torch.Tensor, cos, sin) -> torch.Tensor:
    if step[0] == "fixed":
        out = None
        for move, coefficient in step[1]:
            term = _moved(rho, move) * coefficient.to(rho.dtype)
            out = term if out is None else out + term
        return out
    _, r, move, phase = step
    return rho * cos[:, r] + _moved(rho, move) * phase.to(rho.dtype) * sin[:, r]


def _conjugate(rho: torch.Tensor, step, cos, sin) -> torch.Tensor:
    """``U rho U^dagger``: U on the row index, conj(U) on the column index."""
    u_rho = _apply_rows(step, rho.transpose(-1, -2), cos, sin).transpose(-1, -2)
    return _apply_rows(step, u_rho.conj(), cos.conj(), sin.conj()).conj()


def _channel(rho: torch.Tensor, kraus: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """``sum_k K rho K^dagger`` on one wire, for Kraus operators (k, 2, 2)."""
    b, dim = rho.shape[0], 2**n
    view = rho.reshape(b, 2**wire, 2, 2 ** (n - wire - 1), 2**wire, 2, 2 ** (n - wire - 1))
    out = torch.einsum("kac,kbd,xicjpdq->xiajpbq", kraus, kraus.conj(), view)
    return out.reshape(b, dim, dim)
