"""The ``evaluate`` grid of settings and the trained head with its val features."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pipeline.common import folders
from pipeline.common.config import EvaluateConfig
from pipeline.common.errors import FeatureStoreError
from pipeline.heads.checkpoint import load_checkpoint, trained_store
from pipeline.heads.dressed import DressedQuantumNet
from pipeline.heads.record import REQUIRED_KEYS, require_keys
from pipeline.simulators.noise import NoiseModel
from pipeline.store import hdf5

CHECKPOINT_KEYS = (*REQUIRED_KEYS, "checkpoint")


@dataclass(frozen=True)
class Setting:
    """One point of the grid: shots per sample (None: exact) and the noise."""

    shots: int | None
    noise: NoiseModel

    @property
    def exact_noiseless(self) -> bool:
        return self.shots is None and self.noise.noiseless

    @property
    def label(self) -> str:
        """E.g. ``p=0.01 1000 shots``; damping and readout only when not 0."""
        parts = [f"p={self.noise.depolarizing:g}"]
        if self.noise.amplitude_damping:
            parts.append(f"gamma={self.noise.amplitude_damping:g}")
        if self.noise.readout_error:
            parts.append(f"q={self.noise.readout_error:g}")
        parts.append("exact" if self.shots is None else f"{self.shots} shots")
        return " ".join(parts)

    def seed(self, base: int) -> int:
        """A hash of ``base`` and the setting: independent of the rest of the grid."""
        noise = self.noise
        key = json.dumps(
            [base, self.shots, noise.depolarizing, noise.amplitude_damping, noise.readout_error]
        )
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def settings(cfg: EvaluateConfig) -> list[Setting]:
    """Every combination, noise outer (depolarizing, damping, readout), shots inner."""
    noises = itertools.product(cfg.depolarizing, cfg.amplitude_damping, cfg.readout_error)
    return [
        Setting(shots, NoiseModel(p, gamma, q)) for p, gamma, q in noises for shots in cfg.shots
    ]


@dataclass(frozen=True)
class Head:
    """A trained head rebuilt from its ``model.pt``."""

    path: Path
    model: nn.Module
    ckpt: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.ckpt["config"].get("head", "?"))

    @property
    def quantum(self) -> bool:
        """Whether it has a qubit circuit that the settings can replace."""
        return isinstance(self.model, DressedQuantumNet)

    @property
    def which(self) -> str:
        """``best`` or ``last``: the epoch ``model.pt`` holds."""
        return str(self.ckpt["checkpoint"])


def load_head(path: str | Path) -> Head:
    """Rebuild the head of ``model.pt``; refuse anything that is not a head checkpoint."""
    path = Path(path)
    metrics = folders.metrics_beside(path)
    model, ckpt = load_checkpoint(path)
    require_keys(path, ckpt, CHECKPOINT_KEYS)
    folders.check_pair(path, metrics)
    return Head(path, model, ckpt)


def load_val(head: Head, features: str | Path | None = None) -> hdf5.FeatureSplit:
    """The val split of the features ``head`` was trained on.

    Raises:
        FeatureStoreError: missing, no val rows, or a sha256 other than ``model.pt`` records.
    """
    path = trained_store(
        head.path,
        head.ckpt["features"],
        features,
        advice="extract it again or pass --features FILE",
    )
    split = hdf5.load(path, "val")
    if len(split) == 0:
        raise FeatureStoreError(f"features file {str(path)!r}: expected val rows; got none")
    return split
