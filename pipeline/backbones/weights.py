"""What ``extract.weights`` names, told apart without importing torch or torchvision.

* ``none``: a seeded random initialisation (tests and timing only);
* an existing file: a state dict (``torch.save(model.state_dict(), path)``);
* anything else: a member of the backbone's torchvision weights enum (``IMAGENET1K_V1``),
  checked against the enum when the backbone is built (:func:`pipeline.backbones.models.build`).

The one classifier for the up-to-date check of stage one, the backbone builder and the
feature store's record (``extra["weights_kind"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

WeightsKind = Literal["none", "file", "torchvision"]


def kind(weights: str) -> WeightsKind:
    """``none``, ``file`` (an existing path) or ``torchvision`` (a weights enum name).

    Example:
        >>> kind("IMAGENET1K_V1"), kind("none")
        ('torchvision', 'none')
    """
    if weights == "none":
        return "none"
    return "file" if Path(weights).is_file() else "torchvision"


def describe(backbone: str, weights_kind: str, weights: str, sha256: str, seed: int | None) -> str:
    """Words for a backbone's weights, as logs and error messages give them.

    Example:
        >>> describe("resnet18", "file", "/w/resnet18.pth", "ab12...", None)
        'resnet18 weights from the file /w/resnet18.pth (sha256 ab12...)'
    """
    if weights_kind == "none":
        return (
            f"{backbone} with random-init weights, seed {seed} "
            f"(extract.weights: none; state-dict sha256 {sha256})"
        )
    if weights_kind == "file":
        return f"{backbone} weights from the file {weights} (sha256 {sha256})"
    return f"{backbone} torchvision weights {weights} (file sha256 {sha256})"


def required(recorded: Mapping[str, Any]) -> str:
    """Words for the weights a head needs, from the feature store's provenance it recorded.

    Example:
        >>> required({"backbone": "resnet18", "weights": "IMAGENET1K_V1",
        ...           "weights_sha256": "f37072fd...", "extra": {"weights_kind": "torchvision"}})
        'resnet18 torchvision weights IMAGENET1K_V1 (file sha256 f37072fd...)'
    """
    extra = recorded.get("extra") or {}
    return describe(
        str(recorded.get("backbone")),
        str(extra.get("weights_kind")),
        str(recorded.get("weights")),
        str(recorded.get("weights_sha256", "")),
        extra.get("weights_seed"),
    )
