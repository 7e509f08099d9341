"""The head that ``train.head`` names (quantum, classical, linear or cv), built and initialised."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.common.config import CIRCUIT_DEFAULTS, TrainConfig
from pipeline.heads import inputs
from pipeline.heads.dressed import ClassicalDressedNet, DressedQuantumNet
from pipeline.heads.photonic import CVHead
from pipeline.store.hdf5 import StoreMeta


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
