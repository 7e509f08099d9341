"""The heads: the dressed quantum circuit, the paper's classical baselines, and ``cv``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pipeline.common.config import CIRCUIT_DEFAULTS, TrainConfig
from pipeline.heads import inputs
from pipeline.heads.photonic import CVHead
from pipeline.simulators.qubit import Method, make_circuit, shape
from pipeline.store.hdf5 import StoreMeta

if TYPE_CHECKING:
    from pipeline.simulators.program import Program


class DressedQuantumNet(nn.Module):
    """Linear(in -> n_qubits) -> tanh * pi/2 -> circuit -> Linear(n_qubits -> n_classes).

    Args:
        backend: ``"torch"`` or a PennyLane device name.
        program: a compiled circuit in place of the paper's (``backend`` ``torch``).
        source: the circuit file's record, kept in ``model.pt``.

    Example:
        >>> DressedQuantumNet(in_features=2, n_qubits=5, q_depth=5)(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
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
            from pipeline.simulators.program import ProgramCircuit

            if backend != "torch" or program.n_qubits != n_qubits:
                raise ValueError(
                    f"expected a program on {n_qubits} qubits and backend 'torch'; got "
                    f"{program.n_qubits} qubits and {backend!r}"
                )
            self.q_params = nn.Parameter(q_delta * torch.randn(program.weight_shape))
            self.circuit = ProgramCircuit(program)
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


def build_head(
    cfg: TrainConfig,
    in_features: int,
    n_classes: int,
    *,
    store: StoreMeta | None = None,
    circuit: dict[str, Any] | None = None,
) -> nn.Module:
    """The head named by ``cfg.head``, its parameters drawn from the current torch RNG.

    Args:
        cfg: with ``init_std`` set, every parameter is redrawn from N(0, init_std).
        in_features: width of the features (``cv``: the kets' cutoff).
        store: the store's metadata; a head that does not fit it is refused.
        circuit: a ``model.pt``'s circuit record: rebuild from the text it was trained with.
    """
    if store is not None:
        inputs.check(cfg, store)
    model = _build(cfg, in_features, n_classes, circuit)
    if cfg.init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, cfg.init_std)
    return model


def _build(cfg: TrainConfig, in_features: int, n_classes: int, circuit) -> nn.Module:
    if cfg.head == "quantum":
        program = source = None
        if {k: getattr(cfg, k) for k in CIRCUIT_DEFAULTS} != CIRCUIT_DEFAULTS:
            from pipeline.circuits.source import circuit_program  # PennyLane: only for these

            program, found = circuit_program(cfg, circuit)
            source = found.record() if found is not None else None
        return DressedQuantumNet(
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
    if cfg.head == "classical":
        return ClassicalDressedNet(in_features, cfg.n_qubits, n_classes)
    if cfg.head == "linear":
        return nn.Linear(in_features, n_classes)
    if cfg.head == "cv":
        return CVHead(n_layers=cfg.cv_layers, cutoff=in_features)
    raise ValueError(f"train.head: expected quantum, classical, linear or cv; got {cfg.head!r}")
