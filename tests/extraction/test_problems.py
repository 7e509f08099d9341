"""Every problem of a data folder in one error, before any model is built; empty splits refused
by stage one and by the training reader; JSON outputs are strict JSON."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from pipeline.common import files
from pipeline.common.config import DataConfig, ExtractConfig
from pipeline.common.errors import DataError, FeatureStoreError
from pipeline.extraction.loop import extract_images
from pipeline.store import hdf5
from pipeline.training.data import load_data


def _cfg(out, **kw) -> ExtractConfig:
    return ExtractConfig(**{"weights": "none", "out": str(out), "workers": 0, **kw})


def test_empty_class_folders_and_bad_images_come_in_one_error(
    forbid_backbone, tiny_data, tmp_path, truncated_jpeg
):
    shutil.rmtree(tiny_data / "val" / "bees")
    (tiny_data / "val" / "bees").mkdir()
    truncated_jpeg(tiny_data)
    forbid_backbone()
    with pytest.raises(DataError) as info:
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5"))
    text = str(info.value)
    assert "1 class folder without images" in text
    assert "class 'bees' of split 'val' has no images" in text
    assert "1 image cannot be decoded" in text and "extract.on_bad_image" in text
    assert not (tmp_path / "a.h5").exists()


def test_an_empty_class_is_refused_with_skip_too(forbid_backbone, tiny_data, tmp_path):
    shutil.rmtree(tiny_data / "train" / "ants")
    (tiny_data / "train" / "ants").mkdir()
    forbid_backbone()
    with pytest.raises(DataError, match=r"class 'ants' of split 'train' has no images"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", on_bad_image="skip"))


def _store(path, n_val: int):
    rng = np.random.default_rng(0)

    def split(name, n):
        return hdf5.SplitArrays(
            rng.standard_normal((n, 4)).astype(np.float32),
            np.arange(n) % 2,
            [f"{name}/{i}" for i in range(n)],
        )

    hdf5.write(
        path,
        {"train": split("train", 6), "val": split("val", n_val)},
        class_names=["a", "b"],
        source="synthetic",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint="x",
    )
    return path


def test_the_training_reader_refuses_an_empty_val_split(tmp_path):
    path = _store(tmp_path / "s.h5", n_val=0)
    assert len(hdf5.load(path, "val")) == 0  # a store may hold one (a shard's)
    with pytest.raises(FeatureStoreError, match=r"split 'val' has no rows; expected rows in"):
        load_data(path)
    assert len(load_data(_store(tmp_path / "t.h5", n_val=2)).val) == 2


def test_json_outputs_are_strict_and_keep_their_bytes():
    value = {"best_val_acc": float("nan"), "loss": [1.5, float("inf"), -float("inf")], "n": 3}
    text = files.json_text(value)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {
        "best_val_acc": None,
        "loss": [1.5, None, None],
        "n": 3,
    }
    plain = {"a": [1, 2.5, "x", None, True], "b": {"c": math.pi}}
    assert files.json_text(plain) == json.dumps(plain, indent=2) + "\n"
