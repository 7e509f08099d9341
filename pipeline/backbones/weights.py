"""What ``extract.weights`` names: ``none``, a state-dict file or a torchvision enum member."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

WeightsKind = Literal["none", "file", "torchvision"]


def kind(weights: str) -> WeightsKind:
    """``none``, ``file`` (an existing path) or ``torchvision`` (a weights enum name)."""
    if weights == "none":
        return "none"
    return "file" if Path(weights).is_file() else "torchvision"


def describe(backbone: str, weights_kind: str, weights: str, sha256: str, seed: int | None) -> str:
    """Words for a backbone's weights, as logs and error messages give them."""
    if weights_kind == "none":
        return (
            f"{backbone} with random-init weights, seed {seed} "
            f"(extract.weights: none; state-dict sha256 {sha256})"
        )
    if weights_kind == "file":
        return f"{backbone} weights from the file {weights} (sha256 {sha256})"
    return f"{backbone} torchvision weights {weights} (file sha256 {sha256})"


def required(recorded: Mapping[str, Any]) -> str:
    """Words for the weights a head needs, from the feature store's provenance it recorded."""
    extra = recorded.get("extra") or {}
    return describe(
        str(recorded.get("backbone")),
        str(extra.get("weights_kind")),
        str(recorded.get("weights")),
        str(recorded.get("weights_sha256", "")),
        extra.get("weights_seed"),
    )
