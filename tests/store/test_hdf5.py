from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from pipeline import features as features_command
from pipeline.common.errors import FeatureStoreError
from pipeline.store import hdf5


def _store(path, n_train=6, n_val=4, dim=8, seed=0, **overrides):
    rng = np.random.default_rng(seed)

    def split(name, n):
        return hdf5.SplitArrays(
            features=rng.standard_normal((n, dim)).astype(np.float32),
            labels=np.arange(n) % 2,
            paths=[f"{name}/{'ab'[i % 2]}/{i}.jpg" for i in range(n)],
        )

    kwargs = dict(
        class_names=["a", "b"],
        source="folder",
        backbone="resnet18",
        weights="none",
        weights_sha256="0" * 64,
        transform="T()",
        dataset_fingerprint="f" * 64,
    )
    kwargs.update(overrides)
    return hdf5.write(
        path, {"train": split("train", n_train), "val": split("val", n_val)}, **kwargs
    )


def test_round_trip(tmp_path):
    meta = _store(tmp_path / "s.h5")
    assert meta.splits == ("train", "val") and meta.feature_dim == 8
    train = hdf5.load(tmp_path / "s.h5", "train")
    assert train.features.dtype == np.float32 and train.features.shape == (6, 8)
    assert train.labels.dtype == np.int64 and list(train.labels) == [0, 1, 0, 1, 0, 1]
    assert train.paths[1] == "train/b/1.jpg"
    assert train.meta.class_names == ("a", "b")
    assert hdf5.verify(tmp_path / "s.h5").splits == ("train", "val")


def test_same_content_gives_identical_bytes(tmp_path):
    _store(tmp_path / "one.h5")
    _store(tmp_path / "two.h5")
    assert (tmp_path / "one.h5").read_bytes() == (tmp_path / "two.h5").read_bytes()
    _store(tmp_path / "three.h5", seed=1)
    assert (tmp_path / "one.h5").read_bytes() != (tmp_path / "three.h5").read_bytes()


def test_incomplete_file_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    for call in (
        lambda: hdf5.load(path, "train"),
        lambda: hdf5.read_meta(path),
        lambda: hdf5.verify(path),
    ):
        with pytest.raises(FeatureStoreError, match="incomplete"):
            call()


def test_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(FeatureStoreError, match="format_version 99; this pipeline reads 1"):
        hdf5.load(path, "train")


def test_missing_file_missing_split_and_non_hdf5(tmp_path):
    with pytest.raises(
        FeatureStoreError, match=r"does not exist; run `python -m pipeline\.extract`"
    ):
        hdf5.load(tmp_path / "nope.h5", "train")
    _store(tmp_path / "s.h5")
    with pytest.raises(FeatureStoreError, match=r"no split 'test'; it has \['train', 'val'\]"):
        hdf5.load(tmp_path / "s.h5", "test")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(FeatureStoreError, match="not a readable HDF5 file"):
        hdf5.load(tmp_path / "junk.h5", "train")


def test_nan_rows_and_bad_labels_are_refused(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    with h5py.File(path, "a") as f:
        f["val/features"][2, 3] = np.nan
        f["train/labels"][0] = 5
    with pytest.raises(FeatureStoreError, match=r"val/features has NaN or inf in 1 rows.*row 2"):
        hdf5.load(path, "val")
    with pytest.raises(FeatureStoreError, match=r"train/labels: expected values in \[0, 1\]"):
        hdf5.load(path, "train")


def test_verify_catches_duplicate_paths(tmp_path):
    path = tmp_path / "s.h5"
    _store(path)
    with h5py.File(path, "a") as f:
        f["val/paths"][1] = f["val/paths"][0]
    with pytest.raises(FeatureStoreError, match="appears more than once"):
        hdf5.verify(path)


#: The least metadata a write takes, for tests of what a write refuses.
_BARE = {
    "class_names": ["a"],
    "source": "s",
    "backbone": "b",
    "weights": "w",
    "weights_sha256": "",
    "transform": "",
    "dataset_fingerprint": "",
}


def test_write_checks_shapes(tmp_path):
    bad = hdf5.SplitArrays(np.zeros((3, 4), np.float32), np.zeros(2, np.int64), ["a"] * 3)
    with pytest.raises(FeatureStoreError, match="3 feature rows, 2 labels and 3 paths"):
        hdf5.write(
            tmp_path / "x.h5",
            {"train": bad},
            **_BARE,
        )
    assert not (tmp_path / "x.h5").exists()


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    _store(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hdf5, "read_meta", boom)  # fails after the temp file is written
    monkeypatch.setattr("pipeline.common.files.os.replace", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _store(path, seed=3)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_cli_info_and_verify(tmp_path, capsys):
    path = tmp_path / "s.h5"
    _store(path)
    assert features_command.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train: 6 rows" in out and "val: 4 rows" in out
    assert "a  3" in out and "b  3" in out and "backbone            resnet18" in out
    assert features_command.main(["verify", str(path)]) == 0
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    assert features_command.main(["verify", str(path)]) == 1
    assert "incomplete" in capsys.readouterr().err


def test_outputs_get_the_usual_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        _store(tmp_path / "s.h5")
    finally:
        os.umask(old)
    assert (tmp_path / "s.h5").stat().st_mode & 0o777 == 0o644


def _complex_store(path, *, seed=0, **overrides):
    rng = np.random.default_rng(seed)

    def split(name, n):
        kets = rng.standard_normal((n, 5)) + 1j * rng.standard_normal((n, 5))  # complex128
        return hdf5.SplitArrays(kets, np.arange(n) % 2, [f"{name}/{i}" for i in range(n)])

    kwargs = dict(
        class_names=["g", "ng"],
        source="qq",
        backbone="cv-circuit-A",
        weights="circuit_A.npy",
        weights_sha256="0" * 64,
        transform="A",
        dataset_fingerprint="f" * 64,
    )
    kwargs.update(overrides)
    return hdf5.write(path, {"train": split("train", 6), "val": split("val", 4)}, **kwargs)


def test_a_float32_store_keeps_its_bytes(tmp_path):
    # The digest of this exact store as the format-3 writer makes it (chunked datasets with
    # Fletcher-32, fixed-length paths): stores must not change silently. An upgrade of
    # h5py/HDF5 may legitimately change it; then check the layout and update.
    rng = np.random.default_rng(7)

    def split(name, n):
        feats = rng.standard_normal((n, 5)).astype(np.float32)
        return hdf5.SplitArrays(feats, np.arange(n) % 3, [f"{name}/{i}" for i in range(n)])

    path = tmp_path / "s.h5"
    meta = hdf5.write(
        path,
        {"train": split("train", 9), "val": split("val", 4)},
        class_names=["a", "b", "c"],
        source="synthetic",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint="fp",
        versions={"python": "3", "h5py": "x"},
        extra={"k": 1},
    )
    assert meta.format_version == 3 and meta.feature_dtype == "float32"
    with h5py.File(path, "r") as f:
        assert f.attrs["feature_dtype"] == "float32"
        assert all(f[f"{s}/{d}"].fletcher32 for s in ("train", "val") for d in hdf5.DATASETS)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "c3346a256c5999918af1cc7974153a4437cb33df86176f4bd2e51eeb19be98ee"


def test_complex_features_are_stored_exactly(tmp_path):
    path = tmp_path / "q.h5"
    meta = _complex_store(path)
    assert (meta.format_version, meta.feature_dtype, meta.feature_dim) == (3, "complex128", 5)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 3 and f.attrs["feature_dtype"] == "complex128"
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))
    train = hdf5.load(path, "train")
    assert train.features.dtype == np.complex128
    assert np.array_equal(train.features, expected)  # bitwise: no cast to float32
    assert hdf5.verify(path).feature_dtype == "complex128"
    _complex_store(tmp_path / "again.h5")
    assert path.read_bytes() == (tmp_path / "again.h5").read_bytes()
    text = hdf5.describe(path)
    assert "format_version 3, feature_dim 5, feature_dtype complex128" in text


def test_declared_feature_dtype_is_checked(tmp_path, write_legacy):
    path = tmp_path / "q.h5"
    _complex_store(path)
    with h5py.File(path, "a") as f:
        f.attrs["feature_dtype"] = "complex64"
    with pytest.raises(FeatureStoreError, match=r"needs a feature_dtype attribute, one of "):
        hdf5.read_meta(path)
    with h5py.File(path, "a") as f:
        del f.attrs["feature_dtype"]
    with pytest.raises(FeatureStoreError, match=r"format_version 3 needs .*got 'none'"):
        hdf5.load(path, "train")
    with h5py.File(path, "a") as f:  # a complex store that declares float32
        f.attrs["feature_dtype"] = "float32"
    with pytest.raises(
        FeatureStoreError, match=r"train/features: expected float32 of shape \(6, 5\).*complex128"
    ):
        hdf5.load(path, "train")
    one = tmp_path / "s.h5"
    write_legacy(one, version=1)
    with h5py.File(one, "a") as f:  # version 1 is float32 and says nothing
        f.attrs["feature_dtype"] = "complex128"
    with pytest.raises(FeatureStoreError, match=r"format_version 1 stores are float32"):
        hdf5.read_meta(one)


def test_complex_nan_and_mixed_splits_are_refused(tmp_path):
    path = tmp_path / "q.h5"
    _complex_store(path)
    with h5py.File(path, "a") as f:
        f["val/features"][1, 2] = complex(0.0, np.inf)
    with pytest.raises(FeatureStoreError, match=r"val/features has NaN or inf in 1 rows"):
        hdf5.load(path, "val")
    real = hdf5.SplitArrays(np.zeros((2, 3), np.float32), np.zeros(2, np.int64), ["a", "b"])
    kets = hdf5.SplitArrays(np.zeros((2, 3), np.complex128), np.zeros(2, np.int64), ["c", "d"])
    with pytest.raises(FeatureStoreError, match="all real or all complex; got train real, val"):
        hdf5.write(
            tmp_path / "x.h5",
            {"train": real, "val": kets},
            **_BARE,
        )
    assert not (tmp_path / "x.h5").exists()


def test_cli_verify_names_the_dtype(tmp_path, capsys):
    _complex_store(tmp_path / "q.h5")
    assert features_command.main(["verify", str(tmp_path / "q.h5")]) == 0
    out = capsys.readouterr().out
    assert "OK (format 3, complex128 features; splits train, val; every chunk" in out
