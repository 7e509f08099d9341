"""Stores of the formats before checksums (1 and 2), written as the writer of those formats
wrote them: contiguous datasets without filters and variable-length UTF-8 paths."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest


def _write_legacy(path: Path, version: int = 1, n_train: int = 6, n_val: int = 4, dim: int = 8):
    rng = np.random.default_rng(0)
    attrs = {
        "format_version": version,
        "class_names": json.dumps(["a", "b"]),
        "source": "folder",
        "backbone": "resnet18",
        "weights": "none",
        "weights_sha256": "0" * 64,
        "transform": "T()",
        "feature_dim": dim,
        "splits": json.dumps(["train", "val"]),
        "dataset_fingerprint": "f" * 64,
        "skipped": "[]",
        "versions": json.dumps({"python": "3"}),
        "extra": "{}",
    }
    if version == 2:
        attrs["feature_dtype"] = "float32"
    with h5py.File(path, "w", libver="earliest") as f:
        for name, n in (("train", n_train), ("val", n_val)):
            group = f.create_group(name)
            group.create_dataset("features", data=rng.standard_normal((n, dim)).astype(np.float32))
            group.create_dataset("labels", data=np.arange(n, dtype=np.int64) % 2)
            group.create_dataset(
                "paths",
                data=np.array([f"{name}/{i}.jpg" for i in range(n)], dtype=object),
                dtype=h5py.string_dtype("utf-8"),
            )
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["complete"] = True
    return path


@pytest.fixture
def write_legacy():
    """``write_legacy(path, version=1)``: a store of format 1 or 2, without checksums."""
    return _write_legacy
