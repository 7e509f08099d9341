"""The words for a backbone's weights, in the log and in error messages."""

from __future__ import annotations

import pytest

from pipeline.backbones.weights import describe, kind


@pytest.mark.parametrize(
    ("kind", "weights", "seed", "expected"),
    [
        (
            "none",
            "none",
            0,
            "resnet18 with random-init weights, seed 0 (extract.weights: none; state-dict "
            "sha256 ab12)",
        ),
        ("file", "/w/r18.pth", None, "resnet18 weights from the file /w/r18.pth (sha256 ab12)"),
        (
            "torchvision",
            "IMAGENET1K_V1",
            None,
            "resnet18 torchvision weights IMAGENET1K_V1 (file sha256 ab12)",
        ),
    ],
)
def test_the_weights_read_well_in_the_log(kind, weights, seed, expected):
    text = describe("resnet18", kind, weights, "ab12", seed)
    assert text == expected and "none weights none" not in text


def test_weights_kinds(tmp_path):
    state = tmp_path / "r18.pth"
    state.write_bytes(b"x")
    assert (kind("none"), kind(str(state)), kind("IMAGENET1K_V1")) == (
        "none",
        "file",
        "torchvision",
    )
