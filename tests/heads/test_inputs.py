"""Which heads fit which features, and the cv head built and rebuilt like any other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.common.config import TrainConfig
from pipeline.common.errors import ConfigError
from pipeline.heads import inputs
from pipeline.heads.build import build_head
from pipeline.heads.photonic import CVHead
from pipeline.store.hdf5 import StoreMeta


def _meta(dtype: str, dim: int, n_classes: int = 2) -> StoreMeta:
    return StoreMeta(
        path="features/x.h5",
        format_version=1 if dtype == "float32" else 2,
        class_names=tuple(f"c{i}" for i in range(n_classes)),
        source="qq" if dtype != "float32" else "folder",
        backbone="b",
        weights="w",
        weights_sha256="",
        transform="",
        feature_dim=dim,
        splits=("train", "val"),
        dataset_fingerprint="",
        skipped=(),
        versions={},
        feature_dtype=dtype,
    )


def test_each_head_fits_its_kind_of_features():
    for head in ("quantum", "classical", "linear"):
        inputs.check(TrainConfig(head=head), _meta("float32", 512))
        with pytest.raises(
            ConfigError,
            match=rf"train.head '{head}' needs real features; features/x.h5 holds complex128 "
            r"features of width 15 \(source 'qq', 2 classes\): use train.head cv",
        ):
            inputs.check(TrainConfig(head=head), _meta("complex128", 15))
    inputs.check(TrainConfig(head="cv"), _meta("complex128", 15))
    with pytest.raises(
        ConfigError,
        match=r"train.head 'cv' \(train.cv_layers 2\) needs a store of complex kets.*"
        r"features/x.h5 holds float32 features of width 16 \(source 'folder', 7 classes\)",
    ):
        inputs.check(TrainConfig(head="cv", cv_layers=2), _meta("float32", 16, 7))
    with pytest.raises(ConfigError, match=r"tells 2 classes apart.*holds complex128 .*3 classes"):
        inputs.check(TrainConfig(head="cv"), _meta("complex128", 15, 3))


def test_as_tensor_keeps_real_features_and_splits_kets():
    real = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = inputs.as_tensor(real, "cpu", torch.float64)
    assert torch.equal(got, torch.as_tensor(real).to("cpu", torch.float64))  # as before
    kets = np.array([[0.6j, -0.8], [0.5, 0.25 + 0.125j]])
    pairs = inputs.as_tensor(kets, "cpu", torch.float64)
    assert pairs.tolist() == [[0.0, -0.8, 0.6, 0.0], [0.5, 0.25, 0.0, 0.125]]
    head = CVHead(n_layers=1, cutoff=2)
    torch.testing.assert_close(head(pairs), head(torch.as_tensor(kets)), rtol=0, atol=0)


def test_build_head_cv_and_refusal():
    torch.manual_seed(3)
    head = build_head(TrainConfig(head="cv", cv_layers=2), 15, 2, store=_meta("complex128", 15))
    assert isinstance(head, CVHead) and head.params.shape == (2, 6) and head.cutoff == 15
    torch.manual_seed(3)
    assert torch.equal(CVHead(n_layers=2, cutoff=15).params, head.params)  # the notebook's init
    with pytest.raises(ConfigError, match="needs real features"):
        build_head(TrainConfig(head="linear"), 15, 2, store=_meta("complex128", 15))
    assert build_head(TrainConfig(head="linear"), 15, 2).in_features == 15  # no store: no check
