"""Malformed stores: every attribute and dataset of a small valid store mutated (wrong type,
wrong shape, absurd size, missing, extra), alone and in seeded random pairs. Every reader
either loads the store or raises the project's named error, never another exception, and
never allocates more than a small bound."""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.common.errors import PipelineError
from pipeline.store import hdf5
from pipeline.training.data import load_data

SPLITS = ("train", "val")
#: Address space the readers may add: far below any allocation taken from a hostile
#: declared shape (the smallest here is 9.5 GiB), far above what a 20 KB store needs.
HEADROOM_BYTES = 256 << 20

READERS: dict[str, Callable[[Path], object]] = {
    "verify": hdf5.verify,
    "info": hdf5.describe,
    "train reader": load_data,
}

#: Values of the wrong type, shape or size for an attribute.
ATTR_VALUES = [
    7,
    -1,
    10**12,
    2.5,
    float("nan"),
    True,
    False,
    "false",
    "one",
    "sixteen",
    "",
    "not json {",
    "NaN",
    "7",
    "[1, 2]",
    '{"a": 1}',
    '["a", "a"]',
    "[]",
    '[""]',
    '["../x"]',
    "[" * 5000,
    b"\xff\xfe",
    np.arange(3),
    np.array(["a", "b"], dtype=h5py.string_dtype()),
    h5py.Empty("f4"),
]


def _valid(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def split(name: str, n: int) -> hdf5.SplitArrays:
        return hdf5.SplitArrays(
            rng.standard_normal((n, 4)).astype(np.float32),
            np.arange(n) % 2,
            [f"{name}/{i}.jpg" for i in range(n)],
        )

    hdf5.write(
        path,
        {"train": split("train", 6), "val": split("val", 4)},
        class_names=["a", "b"],
        source="folder",
        backbone="resnet18",
        weights="none",
        weights_sha256="0" * 64,
        transform="T()",
        dataset_fingerprint="f" * 64,
        extra={"note": "x"},
    )
    return path


def _attr_mutations() -> list[tuple[str, Callable]]:
    keys = [*hdf5.REQUIRED_ATTRS, "extra", "feature_dtype", "complete"]
    out: list[tuple[str, Callable]] = []
    for key in keys:

        def delete(f, key=key):
            del f.attrs[key]

        out.append((f"attr {key}: missing", delete))
        for i, value in enumerate(ATTR_VALUES):

            def put(f, key=key, value=value):
                f.attrs[key] = value

            out.append((f"attr {key}: value {i}", put))
    out.append(("attr extra.shard", lambda f: f.attrs.__setitem__("extra", '{"shard": 3}')))
    out.append(("attr unknown", lambda f: f.attrs.__setitem__("surprise", "x")))
    return out


def _replace(f, name: str, **kwargs) -> None:
    del f[name]
    f.create_dataset(name, **kwargs)


def _absurd_rows(f) -> None:
    """A split that consistently declares 10**12 rows, with no data written."""
    rows = 10**12
    _replace(f, "train/features", shape=(rows, 4), dtype="f4", chunks=(1024, 4), fletcher32=True)
    _replace(f, "train/labels", shape=(rows,), dtype="i8", chunks=(1024,), fletcher32=True)
    dtype = h5py.string_dtype("utf-8", 16)
    _replace(f, "train/paths", shape=(rows,), dtype=dtype, chunks=(1024,), fletcher32=True)


def _dataset_mutations() -> list[tuple[str, Callable]]:
    out: list[tuple[str, Callable]] = []
    for split in SPLITS:
        n = 6 if split == "train" else 4
        for ds in ("features", "labels", "paths"):
            name = f"{split}/{ds}"
            cases = {
                "missing": lambda f, name=name: f.__delitem__(name),
                "a group": lambda f, name=name: (f.__delitem__(name), f.create_group(name)),
                "float64": lambda f, name=name, n=n: _replace(f, name, data=np.zeros((n, 4))),
                "int32 rows": lambda f, name=name, n=n: _replace(f, name, data=np.zeros(n, "i4")),
                "strings": lambda f, name=name, n=n: _replace(f, name, data=np.array([b"x"] * n)),
                "scalar": lambda f, name=name: _replace(f, name, data=np.float32(1)),
                "empty dataspace": lambda f, name=name: _replace(f, name, data=h5py.Empty("f4")),
                "one row less": lambda f, name=name: _replace(f, name, data=f[name][1:]),
                "no rows": lambda f, name=name: _replace(f, name, data=f[name][:0]),
                "an extra axis": lambda f, name=name: _replace(f, name, data=f[name][()][None]),
                "no checksum": lambda f, name=name: _replace(f, name, data=f[name][()]),
                "20e6 x 128": lambda f, name=name: _replace(
                    f, name, shape=(20_000_000, 128), dtype="f4", chunks=(1024, 128)
                ),
                "1e12 x 16": lambda f, name=name: _replace(
                    f, name, shape=(10**12, 16), dtype="f4", chunks=(1024, 16), fletcher32=True
                ),
                "1e12 labels": lambda f, name=name: _replace(
                    f, name, shape=(10**12,), dtype="i8", chunks=(1024,), fletcher32=True
                ),
                "vlen paths": lambda f, name=name, n=n: _replace(
                    f, name, data=np.array(["p"] * n, dtype=object), dtype=h5py.string_dtype()
                ),
            }
            out += [(f"{name}: {what}", fn) for what, fn in cases.items()]
        out.append(
            (
                f"{split}: a dataset",
                lambda f, s=split: (f.__delitem__(s), f.create_dataset(s, data=1)),
            )
        )
        out.append((f"{split}: extra dataset", lambda f, s=split: f[s].create_dataset("x", data=1)))
    out.append(("train: 1e12 rows everywhere", _absurd_rows))
    out.append(("extra group", lambda f: f.create_group("test")))
    out.append(("labels out of range", lambda f: f["val/labels"].__setitem__(0, 9)))
    out.append(("NaN feature", lambda f: f["val/features"].__setitem__((0, 0), np.nan)))
    out.append(("paths not UTF-8", lambda f: f["val/paths"].__setitem__(0, b"\xff\xfe")))
    return out


MUTATIONS = _attr_mutations() + _dataset_mutations()


def _check_readers(path: Path, label: str) -> int:
    """Run every reader on ``path``; return how many loaded it."""
    loaded = 0
    for reader_name, reader in READERS.items():
        try:
            reader(path)
            loaded += 1
        except PipelineError:
            pass
        except Exception as exc:  # the failure this test exists to catch (MemoryError too)
            pytest.fail(f"{label}: {reader_name} raised {type(exc).__name__}: {exc}")
    return loaded


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    return _valid(tmp_path_factory.mktemp("fuzz") / "valid.h5")


@pytest.fixture
def traced():
    """Cap the address space at its current size plus :data:`HEADROOM_BYTES`: a reader that
    allocates from a declared shape gets a MemoryError, which the test reports."""
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs /proc/self/statm (Linux) to cap the address space")
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (pages * os.sysconf("SC_PAGE_SIZE") + HEADROOM_BYTES, hard)
    )
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_the_valid_store_loads_in_every_reader(valid, traced):
    assert _check_readers(valid, "valid") == len(READERS)


def _mutated(valid: Path, tmp_path: Path, steps) -> Path:
    path = tmp_path / "m.h5"
    shutil.copyfile(valid, path)
    with h5py.File(path, "a") as f:
        for _, step in steps:
            step(f)
    return path


def test_every_single_mutation_is_loaded_or_named(valid, tmp_path, traced):
    refused = []
    for label, step in MUTATIONS:
        if _check_readers(_mutated(valid, tmp_path, [(label, step)]), label) < len(READERS):
            refused.append(label)
    # the harmless ones load (an unknown attribute); the absurd sizes are refused
    assert "attr unknown" not in refused
    for label in ("train/features: 1e12 x 16", "val/labels: 1e12 labels", "attr complete: value 7"):
        assert label in refused


def test_seeded_pairs_of_mutations(valid, tmp_path, traced):
    rng = np.random.default_rng(20261202)
    for _ in range(80):
        i, j = rng.choice(len(MUTATIONS), size=2, replace=False)
        steps = [MUTATIONS[i], MUTATIONS[j]]
        label = " + ".join(s[0] for s in steps)
        try:
            path = _mutated(valid, tmp_path, steps)
        except (KeyError, ValueError, TypeError, OSError):
            continue  # the second step needed what the first removed
        _check_readers(path, label)


@pytest.mark.parametrize(
    ("label", "pattern"),
    [
        ("attr complete: value 7", r"attribute 'complete': expected the boolean true; got 'false'"),
        (
            "train: 1e12 rows everywhere",
            r"train/features: declares \(1000000000000, 4\) .*more than the whole file",
        ),
        (
            "attr feature_dim: value 8",
            r"'feature_dim': expected an integer in \[1, \d+\]; got 'one'",
        ),
        ("attr class_names: value 11", r"'class_names': expected JSON .*not json"),
        ("attr splits: value 14", r"'splits': expected a JSON list of strings; got \[1, 2\]"),
    ],
)
def test_messages_name_the_key_and_what_was_expected(valid, tmp_path, label, pattern):
    steps = dict(MUTATIONS)
    path = _mutated(valid, tmp_path, [(label, steps[label])])
    with pytest.raises(PipelineError, match=pattern):
        load_data(path)
