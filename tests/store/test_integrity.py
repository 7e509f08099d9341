"""A store knows its content: bytes changed in place anywhere in its arrays are a named error
from the checking reader, from `features verify` and from the training reader."""

from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from pipeline import features as features_command
from pipeline.common.errors import FeatureStoreError
from pipeline.store import hdf5
from pipeline.training.data import load_data


def _store(path, n_train=300, n_val=40, dim=16):
    rng = np.random.default_rng(0)

    def split(name, n):
        return hdf5.SplitArrays(
            features=rng.standard_normal((n, dim)).astype(np.float32),
            labels=np.arange(n) % 2,
            paths=[f"{name}/{'ab'[i % 2]}/{i}.jpg" for i in range(n)],
        )

    hdf5.write(
        path,
        {"train": split("train", n_train), "val": split("val", n_val)},
        class_names=["a", "b"],
        source="folder",
        backbone="resnet18",
        weights="none",
        weights_sha256="0" * 64,
        transform="T()",
        dataset_fingerprint="f" * 64,
    )
    return path


def _data_spans(path, name: str) -> list[tuple[int, int]]:
    """(file offset, size) of each stored chunk of dataset ``name`` (data and checksum)."""
    with h5py.File(path, "r") as f:
        dsid = f[name].id
        chunks = [dsid.get_chunk_info(i) for i in range(dsid.get_num_chunks())]
    return [(c.byte_offset, c.size - 4) for c in chunks]  # the last 4 bytes: the checksum


def _patch(path, edits: dict[int, bytes]) -> None:
    """Overwrite bytes of the file in place, as a bad disk or a careless tool would."""
    with open(path, "r+b") as fh:
        for offset, data in edits.items():
            fh.seek(offset)
            fh.write(data)


def _flip_exponents(path, name: str, count: int, seed: int = 0) -> None:
    """Set the top exponent bits of ``count`` float32 values of ``name`` (values up to 1e38)."""
    spans = _data_spans(path, name)
    offsets = [o + i for o, size in spans for i in range(3, size, 4)]  # high byte, little-endian
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(offsets), size=count, replace=False)
    with open(path, "rb") as fh:
        data = fh.read()
    _patch(path, {offsets[i]: bytes([data[offsets[i]] ^ 0x3F]) for i in chosen})


def _assert_named_error(path, dataset: str) -> None:
    pattern = rf"{path.name}.*{dataset}: cannot be read \(a checksum does not match.*extract"
    with pytest.raises(FeatureStoreError, match=pattern):
        hdf5.verify(path)
    with pytest.raises(FeatureStoreError, match=pattern):
        load_data(path)
    split = dataset.split("/")[0]
    with pytest.raises(FeatureStoreError, match=pattern):
        hdf5.load(path, split)


def test_flipped_exponent_bits_in_the_features_are_caught(tmp_path, capsys):
    path = _store(tmp_path / "s.h5")
    _flip_exponents(path, "train/features", 200)
    _assert_named_error(path, "train/features")
    assert features_command.main(["verify", str(path)]) == 1
    err = capsys.readouterr().err
    assert "train/features" in err and "checksum" in err and "Traceback" not in err


def test_one_changed_byte_in_any_chunk_is_caught(tmp_path):
    path = _store(tmp_path / "s.h5", n_train=5000)
    spans = _data_spans(path, "train/features")
    assert len(spans) > 1  # several chunks: the last one is checked too
    clean = path.read_bytes()
    for offset, size in (spans[0], spans[-1]):
        data = bytearray(clean)
        data[offset + size // 2] ^= 0x01  # the lowest mantissa bit of one value
        path.write_bytes(bytes(data))
        _assert_named_error(path, "train/features")


def test_forty_flipped_labels_are_caught(tmp_path):
    path = _store(tmp_path / "s.h5")
    ((offset, size),) = _data_spans(path, "train/labels")
    with open(path, "rb") as fh:
        fh.seek(offset)
        labels = np.frombuffer(fh.read(size), dtype="<i8").copy()
    labels[:40] = 1 - labels[:40]  # still in range: only the checksum can tell
    _patch(path, {offset: labels.tobytes()})
    _assert_named_error(path, "train/labels")


def test_a_changed_path_is_caught(tmp_path):
    path = _store(tmp_path / "s.h5")
    ((offset, size),) = _data_spans(path, "val/paths")
    with open(path, "rb") as fh:
        fh.seek(offset)
        raw = fh.read(size)
    assert raw.startswith(b"val/a/0.jpg")
    _patch(path, {offset: b"val/b"})
    _assert_named_error(path, "val/paths")


def test_a_dataset_rewritten_without_checksums_is_refused(tmp_path):
    path = _store(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        labels = f["val/labels"][()]
        del f["val/labels"]
        f["val"].create_dataset("labels", data=labels)
    with pytest.raises(FeatureStoreError, match=r"val/labels: .*Fletcher-32 checksums; this"):
        hdf5.verify(path)


def test_unallocated_chunks_are_refused(tmp_path):
    path = _store(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        del f["val/features"]
        f["val"].create_dataset(
            "features", shape=(40, 16), dtype="f4", chunks=(8, 16), fletcher32=True
        )  # never written: reads would give zeros
    with pytest.raises(FeatureStoreError, match=r"val/features: holds 0 bytes of its 2560"):
        hdf5.load(path, "val")


@pytest.mark.parametrize("version", [1, 2])
def test_old_stores_load_with_a_note(tmp_path, write_legacy, version, caplog, capsys):
    path = write_legacy(tmp_path / "old.h5", version=version)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        data = load_data(path)
    assert data.meta.format_version == version and not data.meta.checksummed
    assert data.train.features.shape == (6, 8) and data.val.paths[0] == "val/0.jpg"
    assert f"(format_version {version}) carries no checksums" in caplog.text
    assert features_command.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no checksums" in out and "extract it again to add them" in out


def test_new_stores_say_their_checksums_match(tmp_path, capsys, caplog):
    path = _store(tmp_path / "s.h5")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        hdf5.load(path, "train")
    assert "checksums" not in caplog.text
    assert features_command.main(["verify", str(path)]) == 0
    assert "every chunk's checksum matches" in capsys.readouterr().out
