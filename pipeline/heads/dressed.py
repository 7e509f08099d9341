"""The dressed nets, the quantum one (a circuit between two Linear layers) and the paper's
classical comparison, and the linear head. :func:`pipeline.heads.build.build_head` builds any
head by name."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline.common.config import CIRCUIT_DEFAULTS, TrainConfig
from pipeline.heads.base import Head, linear
from pipeline.simulators.program import ProgramCircuit
from pipeline.simulators.qubit import (
    Method,
    PennyLaneCircuit,
    TorchCircuit,
    make_circuit,
    shape,
)

if TYPE_CHECKING:
    from pipeline.simulators.program import Program


class DressedQuantumNet(Head):
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

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, in_features: int, n_classes: int, circuit: dict[str, Any] | None
    ) -> DressedQuantumNet:
        """The head of ``cfg``; ``circuit``: a ``model.pt``'s circuit record to rebuild from."""
        program = source = None
        if {k: getattr(cfg, k) for k in CIRCUIT_DEFAULTS} != CIRCUIT_DEFAULTS:
            from pipeline.circuits.source import circuit_program  # PennyLane: only for these

            program, found = circuit_program(cfg, circuit)
            source = found.record() if found is not None else None
        return cls(
            in_features=in_features,
            n_qubits=cfg.n_qubits,
            q_depth=cfg.q_depth,
            n_classes=n_classes,
            q_delta=cfg.q_delta,
            backend=cfg.backend,
            diff_method=cfg.diff_method,
            shots=cfg.shots,
            seed=cfg.seed,
            program=program,
            source=source,
        )

    def serial_reason(self) -> str | None:
        circuit = self.circuit
        if isinstance(circuit, ProgramCircuit):
            return None
        if isinstance(circuit, PennyLaneCircuit):
            return f"backend {circuit.device_name!r} is a PennyLane device"
        if not isinstance(circuit, TorchCircuit):
            return f"{type(circuit).__name__} takes one circuit at a time"
        return None

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(linear(x, params["pre_net.weight"], params["pre_net.bias"]))  # (M, B, n)
        h, weights = h * (math.pi / 2), params["q_params"]
        if self.serial_reason() is None:
            h = self.circuit(h, weights)  # (M, B, n_outputs)
        else:  # a circuit that takes one member's (B, n) at a time
            h = torch.stack([self.circuit(h[m], weights[m]) for m in range(len(weights))])
        return linear(h, params["post_net.weight"], params["post_net.bias"])  # (M, B, C)


class ClassicalDressedNet(Head):
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

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, in_features: int, n_classes: int, circuit: dict[str, Any] | None
    ) -> ClassicalDressedNet:
        """The head of ``cfg`` (``circuit`` is not read)."""
        return cls(in_features, cfg.n_qubits, n_classes)

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(linear(x, params["pre_net.weight"], params["pre_net.bias"]))  # (M, B, n)
        h = torch.tanh(linear(h, params["hidden.weight"], params["hidden.bias"]))  # (M, B, n)
        return linear(h, params["post_net.weight"], params["post_net.bias"])  # (M, B, C)


class LinearHead(Head, nn.Linear):
    """One Linear layer, features -> logits (the parameters of ``nn.Linear``)."""

    @classmethod
    def from_config(
        cls, cfg: TrainConfig, in_features: int, n_classes: int, circuit: dict[str, Any] | None
    ) -> LinearHead:
        """The head of ``cfg`` (``circuit`` is not read)."""
        return cls(in_features, n_classes)

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return linear(x, params["weight"], params["bias"])  # (M, B, C)
