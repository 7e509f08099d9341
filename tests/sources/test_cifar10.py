"""The CIFAR-10 source on a tiny file set in CIFAR-10's python pickle layout (never a download)."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.common.config import DataConfig, ExtractConfig, load_params
from pipeline.common.errors import ConfigError, DataError
from pipeline.extraction.loop import extract_images as extract
from pipeline.sources import cifar10
from pipeline.sources.catalog import fetch
from pipeline.store import hdf5

REPO = Path(__file__).resolve().parents[2]
LABEL_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _batch(path: Path, labels: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    entry = {
        "batch_label": path.name,
        "labels": labels,
        "data": data,
        "filenames": [f"img_{seed}_{i}.png" for i in range(len(labels))],
    }
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)


def make_cifar(root: Path) -> Path:
    """``root/cifar-10-batches-py``: 5 train batches of 10 images (one per class, shifted
    per batch) and a test batch of 20 (two per class), plus batches.meta."""
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for b in range(1, 6):
        _batch(folder / f"data_batch_{b}", [(i + b) % 10 for i in range(10)], seed=b)
    _batch(folder / "test_batch", [i % 10 for i in range(20)], seed=0)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": LABEL_NAMES, "num_vis": 3072}, fh, protocol=2)
    return root


def _raw(folder: Path, name: str) -> dict:
    with open(folder / name, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    return make_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def cat_dog_store(cifar_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cifar-features") / "cat-dog.h5"
    data = DataConfig(source="cifar10", dir=str(cifar_root), classes=("cat", "dog"))
    result = extract(data, ExtractConfig(weights="none", out=str(out), workers=0))
    assert not result.up_to_date
    return out


def test_split_reader_keeps_the_classes_in_their_order(cifar_root):
    folder = cifar_root / cifar10.FOLDER
    part = cifar10.load_split(folder, "train", ["dog", "cat"])
    assert len(part.labels) == 10 and part.images.shape == (10, 32, 32, 3)
    raw_labels = {f"data_batch_{b}/{i}": (i + b) % 10 for b in range(1, 6) for i in range(10)}
    for image_id, label in zip(part.ids, part.labels, strict=True):
        assert raw_labels[image_id] == {0: 5, 1: 3}[int(label)]  # dog -> 0, cat -> 1
    # the image is the row's red, green and blue planes
    batch, index = part.ids[0].split("/")
    row = _raw(folder, batch)["data"][int(index)]
    np.testing.assert_array_equal(part.images[0][..., 0], row[:1024].reshape(32, 32))
    np.testing.assert_array_equal(part.images[0][..., 2], row[2048:].reshape(32, 32))
    val = cifar10.load_split(folder, "val", ["cat", "dog"])
    assert val.ids == ["test_batch/3", "test_batch/5", "test_batch/13", "test_batch/15"]
    assert val.labels.tolist() == [0, 1, 0, 1]


def test_store_has_the_right_classes_labels_and_counts(cat_dog_store, cifar_root):
    meta = hdf5.verify(cat_dog_store)
    assert meta.source == "cifar10" and meta.class_names == ("cat", "dog")
    assert meta.feature_dim == 512 and meta.backbone == "resnet18"
    assert meta.extra["cifar10"]["classes"] == ["cat", "dog"]
    train = hdf5.load(cat_dog_store, "train")
    val = hdf5.load(cat_dog_store, "val")
    assert train.features.shape == (10, 512) and val.features.shape == (4, 512)
    assert np.bincount(train.labels).tolist() == [5, 5]
    folder = cifar_root / cifar10.FOLDER
    for split in (train, val):
        for path, label in zip(split.paths, split.labels, strict=True):
            batch, index = path.split("/")
            assert LABEL_NAMES[_raw(folder, batch)["labels"][int(index)]] == meta.class_names[label]
    assert not np.allclose(train.features[0], train.features[1])  # one row per image


def test_features_equal_those_of_the_same_images_as_files(cat_dog_store, cifar_root, tmp_path):
    """The array source applies the same transform and model as the folder source."""
    folder = cifar_root / cifar10.FOLDER
    val = cifar10.load_split(folder, "val", ["cat", "dog"])
    names = ["cat", "dog"]
    for split in ("train", "val"):
        for i, (image, label) in enumerate(zip(val.images, val.labels, strict=True)):
            path = tmp_path / "png" / split / names[label] / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "RGB").save(path)
    out = tmp_path / "png.h5"
    extract(DataConfig(dir=str(tmp_path / "png")), ExtractConfig(weights="none", out=str(out)))
    as_files = hdf5.load(out, "val")
    ours = hdf5.load(cat_dog_store, "val")
    order = [val.labels.tolist().index(0), val.labels.tolist().index(1)]  # first cat, first dog
    np.testing.assert_allclose(
        as_files.features[[0, 2]], ours.features[order], rtol=1e-5, atol=1e-5
    )


def test_up_to_date_check(cat_dog_store, cifar_root, tmp_path, caplog):
    base = dict(source="cifar10", dir=str(cifar_root), classes=("cat", "dog"))
    cfg = ExtractConfig(weights="none", out=str(cat_dog_store), workers=0)
    assert extract(DataConfig(**base), cfg).up_to_date
    # another order of the same classes means other labels: extract again (into a copy)
    copy = tmp_path / "copy.h5"
    copy.write_bytes(cat_dog_store.read_bytes())
    cfg_copy = ExtractConfig(weights="none", out=str(copy), workers=0)
    result = extract(DataConfig(**{**base, "classes": ("dog", "cat")}), cfg_copy)
    assert not result.up_to_date and "classes ['cat', 'dog'] -> ['dog', 'cat']" in caplog.text
    assert result.meta.class_names == ("dog", "cat")
    # changed pickle contents: the fingerprint differs
    changed = make_cifar(tmp_path / "changed")
    _batch(changed / cifar10.FOLDER / "test_batch", [i % 10 for i in range(20)], seed=99)
    result = extract(DataConfig(**{**base, "dir": str(changed)}), cfg_copy)
    assert not result.up_to_date and "dataset fingerprint" in caplog.text


def test_refusals(cifar_root, tmp_path):
    data = DataConfig(source="cifar10", dir=str(cifar_root), classes=("cat", "wolf"))
    with pytest.raises(ConfigError, match=r"'wolf' not a CIFAR-10 class; expected .*automobile"):
        extract(data, ExtractConfig(weights="none", out=str(tmp_path / "x.h5")))
    missing = DataConfig(source="cifar10", dir=str(tmp_path / "none"), classes=("cat", "dog"))
    with pytest.raises(DataError, match=r"CIFAR-10 files missing .*data_batch_1.*fetch_data"):
        extract(missing, ExtractConfig(weights="none", out=str(tmp_path / "x.h5")))
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ConfigError, match=r"data.classes: expected a list of at least 2 distinct"):
        DataConfig(source="cifar10", classes=("cat",))
    with pytest.raises(ConfigError, match=r"data.splits: expected train and/or val"):
        DataConfig(source="cifar10", classes=("cat", "dog"), splits=("train", "test"))


def _published_as(monkeypatch, folder: Path) -> None:
    """Take the files of ``folder`` as the published ones (the tests never download)."""
    md5 = {
        name: hashlib.md5((folder / name).read_bytes(), usedforsecurity=False).hexdigest()
        for name in cifar10.PUBLISHED_MD5
    }
    monkeypatch.setattr(cifar10, "PUBLISHED_MD5", md5)


def test_fetch_downloads_only_when_missing(cifar_root, tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if train:
                make_cifar(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    _published_as(monkeypatch, cifar_root / cifar10.FOLDER)
    data = DataConfig(source="cifar10", dir=str(cifar_root), classes=("cat", "dog"))
    assert fetch(data) == cifar_root and calls == []
    target = tmp_path / "new"
    data = DataConfig(source="cifar10", dir=str(target), classes=("cat", "dog"))
    assert fetch(data) == target
    assert calls == [(str(target), True, True), (str(target), False, True)]


def test_published_digests_are_torchvisions():
    from torchvision.datasets import CIFAR10

    listed = dict(CIFAR10.train_list + CIFAR10.test_list)
    listed[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    assert listed == cifar10.PUBLISHED_MD5


def test_fetch_refuses_a_planted_folder(cifar_root, tmp_path, monkeypatch):
    _published_as(monkeypatch, cifar_root / cifar10.FOLDER)
    planted = tmp_path / "planted"
    shutil.copytree(cifar_root, planted)
    folder = planted / cifar10.FOLDER
    entry = _raw(folder, "data_batch_3")
    entry["labels"] = [(t + 1) % 10 for t in entry["labels"]]
    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    data = DataConfig(source="cifar10", dir=str(planted), classes=("cat", "dog"))
    with pytest.raises(DataError, match=r"data_batch_3 differ from the published .*fetch_data"):
        fetch(data)


class _RunsCode:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("name", ["batches.meta", "data_batch_1", "test_batch"])
def test_a_pickle_that_runs_code_is_refused_before_it_runs(cifar_root, tmp_path, name):
    planted = tmp_path / "planted"
    shutil.copytree(cifar_root, planted)
    marker = tmp_path / "ran"
    entry = {"labels": [0], "data": _RunsCode(f"touch {marker}")}
    if name == "batches.meta":
        entry = {"label_names": _RunsCode(f"touch {marker}")}
    with open(planted / cifar10.FOLDER / name, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    data = DataConfig(source="cifar10", dir=str(planted), classes=("cat", "dog"))
    out = tmp_path / "f.h5"
    with pytest.raises(DataError, match=r"global (posix|os)\.system is not allowed"):
        extract(data, ExtractConfig(weights="none", out=str(out), workers=0))
    with pytest.raises(DataError, match=r"differ from the published"):
        fetch(data)  # refused by digest, without unpickling
    assert not marker.exists() and not out.exists()


def test_other_globals_and_codecs_are_refused(tmp_path):
    for payload, pattern in [
        (b"cbuiltins\neval\n(S'1'\ntR.", r"builtins\.eval is not allowed"),
        (b"c_codecs\nencode\n(S'x'\nS'zlib'\ntR.", r"_codecs.encode with 'zlib'"),
        (b"cnumpy\nload\n(S'x'\ntR.", r"numpy\.load is not allowed"),
    ]:
        path = tmp_path / "f"
        path.write_bytes(payload)
        with pytest.raises(DataError, match=pattern):
            cifar10._unpickle(path)


def test_presets_hold_the_papers_settings():
    cats = load_params(REPO / "params-cifar10-cat-dog.yaml")
    assert cats.data.source == "cifar10" and cats.data.classes == ("cat", "dog")
    t = cats.train
    assert (t.q_depth, t.lr, t.batch_size, t.epochs, t.gamma) == (5, 0.001, 8, 3, 1.0)
    planes = load_params(REPO / "params-cifar10-airplane-automobile.yaml")
    assert planes.data.classes == ("airplane", "automobile")
    t = planes.train
    assert (t.q_depth, t.lr, t.batch_size, t.epochs, t.step_size, t.gamma) == (
        4, 0.0007, 8, 3, 3, 0.1,
    )  # fmt: skip
