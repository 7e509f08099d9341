"""The dressed nets: the quantum one (a circuit between two Linear layers) and the paper's
classical comparison. :func:`pipeline.heads.build.build_head` builds any head by name."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline.simulators.qubit import Method, make_circuit, shape

if TYPE_CHECKING:
    from pipeline.simulators.program import Program


class DressedQuantumNet(nn.Module):
    """Linear(in -> n_qubits) -> tanh * pi/2 -> circuit -> Linear(n_qubits -> n_classes).

    Args:
        backend: ``"torch"`` or a PennyLane device name.
        program: a compiled circuit in place of the paper's (``backend`` ``torch``).
        source: the circuit file's record, kept in ``model.pt``.
    """

    def __init__(
        self,
        in_features: int = 512,
        n_qubits: int = 4,
        q_depth: int = 6,
        n_classes: int = 2,
        q_delta: float = 0.01,
        backend: str = "torch",
        *,
        diff_method: str = "best",
        shots: int | None = None,
        seed: int | None = None,
        method: Method = "auto",
        program: Program | None = None,
        source: dict[str, Any] | None = None,
    ):
        super().__init__()
        for name, value, low in (
            ("in_features", in_features, 1),
            ("n_qubits", n_qubits, 1),
            ("q_depth", q_depth, 0),
            ("n_classes", n_classes, 2),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}; got {value!r}")
        if q_delta < 0:
            raise ValueError(f"q_delta: expected a number >= 0; got {q_delta!r}")
        self.circuit_source = source
        self.pre_net = nn.Linear(in_features, n_qubits)
        if program is None:
            self.q_params = nn.Parameter(q_delta * torch.randn(shape(n_qubits, q_depth)))
            self.circuit = make_circuit(
                backend,
                n_qubits,
                q_depth,
                diff_method=diff_method,
                shots=shots,
                seed=seed,
                method=method,
            )
            n_outputs = n_qubits
        else:
            from pipeline.simulators.fused import program_circuit

            if backend != "torch" or program.n_qubits != n_qubits:
                raise ValueError(
                    f"expected a program on {n_qubits} qubits and backend 'torch'; got "
                    f"{program.n_qubits} qubits and {backend!r}"
                )
            self.q_params = nn.Parameter(q_delta * torch.randn(program.weight_shape))
            self.circuit = program_circuit(program)
            n_outputs = program.n_outputs
        self.post_net = nn.Linear(n_outputs, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q_in = torch.tanh(self.pre_net(x)) * (math.pi / 2)  # (B, n_qubits)
        q_out = self.circuit(q_in, self.q_params)  # (B, n_outputs)
        return self.post_net(q_out)  # (B, n_classes)


class ClassicalDressedNet(nn.Module):
    """Linear(in -> n) -> tanh -> Linear(n -> n) -> tanh -> Linear(n -> classes)."""

    def __init__(self, in_features: int = 512, n_hidden: int = 4, n_classes: int = 2):
        super().__init__()
        for name, value, low in (
            ("in_features", in_features, 1),
            ("n_hidden", n_hidden, 1),
            ("n_classes", n_classes, 2),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}; got {value!r}")
        self.pre_net = nn.Linear(in_features, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.post_net = nn.Linear(n_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.pre_net(x))  # (B, n_hidden)
        h = torch.tanh(self.hidden(h))  # (B, n_hidden)
        return self.post_net(h)  # (B, n_classes)
