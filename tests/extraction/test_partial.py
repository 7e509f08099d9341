"""One extraction per output at a time (a lock), and resuming an interrupted one."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.backbones import inference, models
from pipeline.common.config import DataConfig, ExtractConfig
from pipeline.common.errors import FeatureStoreError
from pipeline.extraction import partial
from pipeline.extraction.loop import extract_images
from pipeline.store import hdf5


def _cfg(out: Path, **kw) -> ExtractConfig:
    return ExtractConfig(**{"weights": "none", "out": str(out), "workers": 0, **kw})


_ITER_FEATURES = inference.iter_features


def _interrupt_after(monkeypatch, n_batches: int | None) -> list[int]:
    """Make the backbone stop with Ctrl-C once ``n_batches`` batches (over all splits) are
    done (None: never); returns the lengths of the datasets it is then given."""
    real = _ITER_FEATURES
    seen: list[int] = []
    done = [0]

    def interrupted(model, dataset, **kwargs):
        seen.append(len(dataset))
        for batch in real(model, dataset, **kwargs):
            if done[0] == n_batches:
                raise KeyboardInterrupt
            done[0] += 1
            yield batch

    monkeypatch.setattr(inference, "iter_features", interrupted)
    return seen


def test_an_interrupted_extraction_resumes_and_writes_the_clean_bytes(
    tiny_root, tmp_path, monkeypatch, caplog
):
    data = DataConfig(dir=str(tiny_root))
    clean = tmp_path / "clean" / "a.h5"
    extract_images(data, _cfg(clean, batch_size=2))
    out = tmp_path / "run" / "a.h5"
    side = out.with_name("a.h5.partial")

    # a run of other settings leaves one finished batch behind
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        extract_images(data, _cfg(out, batch_size=2, seed=1))
    assert sorted(p.name for p in side.iterdir()) == ["batch-0000000.npz", "key.json"]

    # ... which the next run (seed 0) removes; it is stopped after 4 of 5 batches
    caplog.set_level(logging.INFO, logger="pipeline")
    _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        extract_images(data, _cfg(out, batch_size=2))
    assert "left by an extraction of other inputs or settings" in caplog.text
    assert not out.exists()  # Ctrl-C: no output, complete or not, and no temporary file
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.h5.lock", "a.h5.partial"]
    assert len(list(side.glob("batch-*.npz"))) == 4

    # the rerun reads those 4 batches (8 of 10 images) back and extracts the last 2
    caplog.clear()
    seen = _interrupt_after(monkeypatch, None)
    result = extract_images(data, _cfg(out, batch_size=2))
    assert "resuming: 8 of 10 images already extracted" in caplog.text
    assert seen == [0, 2]  # train: nothing left; val: its last 2 images
    assert out.read_bytes() == clean.read_bytes()
    assert not side.exists()  # a finished extraction removes its side folder
    assert not result.up_to_date


def test_a_partial_extraction_is_keyed_by_the_settings(tmp_path):
    a = partial.Partial(tmp_path / "x.h5", {"batch_size": 2, "weights": "none"})
    b = partial.Partial(tmp_path / "x.h5", {"batch_size": 3, "weights": "none"})
    assert a.key != b.key and a.dir == b.dir == tmp_path / "x.h5.partial"
    chunk = partial.Chunk("train", 0, 2, np.array([0]), np.ones((1, 3), np.float32), [(1, "bad")])
    a.add(chunk)
    back = partial.Partial(tmp_path / "x.h5", {"weights": "none", "batch_size": 2}).load()
    assert list(back) == ["train"] and back["train"][0].failed == [(1, "bad")]
    np.testing.assert_array_equal(back["train"][0].features, chunk.features)
    assert b.load() == {} and not b.dir.exists()  # other settings: removed


def test_a_second_extraction_waits_then_finds_the_file_up_to_date(
    tiny_root, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "a.h5"
    building, proceed = threading.Event(), threading.Event()
    builds: list[int] = []
    real_build = models.build

    def slow_build(*args, **kwargs):
        builds.append(1)
        building.set()
        assert proceed.wait(120)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build", slow_build)
    caplog.set_level(logging.INFO, logger="pipeline")
    results: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            results[name] = extract_images(DataConfig(dir=str(tiny_root)), _cfg(out))
        except BaseException as exc:  # reported by the asserts below
            results[name] = exc

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert building.wait(120)  # the first holds the lock and is building its model
    second = threading.Thread(target=run, args=("second",))
    second.start()
    deadline = time.monotonic() + 120
    while "waiting for another extraction" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"waiting for another extraction of {out} to finish (lock {out}.lock)" in caplog.text
    proceed.set()
    first.join(300)
    second.join(300)
    assert not results["first"].up_to_date
    assert results["second"].up_to_date  # it waited, then found the file written
    assert builds == [1]
    assert hdf5.verify(out).weights == "none"


def test_a_lock_that_cannot_be_taken_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FeatureStoreError, match=r"cannot take the lock '.*file/a\.h5\.lock'"):
        with partial.locked(blocker / "a.h5"):
            pass


def test_moved_images_are_re_recorded_without_a_backbone(
    forbid_backbone, tiny_data, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "a.h5"
    first = extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    assert first.meta.extra["images"] == {"dir": str(tiny_data), "splits": ["train", "val"]}
    before = hdf5.load(out, "train").features
    moved = shutil.move(tiny_data, tmp_path / "moved")

    forbid_backbone()
    caplog.set_level(logging.INFO, logger="pipeline")
    again = extract_images(DataConfig(dir=str(moved)), _cfg(out))
    assert "same features; recorded the data folder" in caplog.text
    assert again.meta.extra["images"]["dir"] == str(moved)
    assert again.meta.dataset_fingerprint == first.meta.dataset_fingerprint
    np.testing.assert_array_equal(hdf5.load(out, "train").features, before)
    assert extract_images(DataConfig(dir=str(moved)), _cfg(out)).up_to_date


def test_the_lock_clears_what_a_killed_final_write_left(tmp_path):
    out = tmp_path / "x[1].h5"
    stale = tmp_path / ".x[1].h5.0a1b2c3d.tmp"  # atomic_path's temporary file of the store
    stale.write_bytes(b"half a store")
    other = tmp_path / ".y.h5.0a1b2c3d.tmp"  # another output's: not touched
    other.write_bytes(b"")
    with partial.locked(out):
        assert not stale.exists() and other.exists()
