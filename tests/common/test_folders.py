"""Output folders: a run folder swaps in as one, even when killed at random points; two
writers; and readers that refuse a model.pt and metrics.json of different runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline.common import folders
from pipeline.common.config import CompareConfig, TrainConfig
from pipeline.common.files import file_sha256
from pipeline.training.compare import collect_runs

FILES = ("model.pt", "metrics.json", "history.csv", "val_predictions.csv")
FORK = multiprocessing.get_context("fork")


def _write(label: str):
    def write(tmp: Path) -> None:
        for name in FILES:  # several writes: a kill can fall between any two
            (tmp / name).write_text(label * 2000)

    return write


def _label(folder: Path) -> str:
    """The one label of every file in ``folder``; fails on a mix or a missing file."""
    labels = {(folder / n).read_text()[:1] for n in FILES}
    assert len(labels) == 1, f"mixed run folder: {labels}"
    return labels.pop()


def _strays(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.endswith((".new", ".old", ".tmp")))


def _swap_forever(out: Path, exchange: bool) -> None:
    if not exchange:
        folders._exchange = lambda a, b: False  # the two-rename swap of other systems
    for i in range(10**9):
        folders.replace_folder(out, _write("AB"[i % 2]))


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_a_swap_killed_at_random_points_leaves_the_old_or_the_new_folder(tmp_path, exchange):
    out = tmp_path / "run"
    folders.replace_folder(out, _write("A"))
    (out / "plots").mkdir()
    (out / "plots" / "curves.png").write_text("a later stage's output")
    rng = random.Random(0)
    seen = set()
    for _ in range(30):
        child = FORK.Process(target=_swap_forever, args=(out, exchange))
        child.start()
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        if not out.exists():  # killed between the two renames: the old folder is beside it
            assert not exchange and any(n.endswith(".old") for n in _strays(tmp_path))
        folders.recover(out)  # what the next write does first
        assert _strays(tmp_path) == []
        seen.add(_label(out))
        assert (out / "plots" / "curves.png").read_text() == "a later stage's output"
    assert seen == {"A", "B"}


def test_a_failed_write_leaves_the_old_folder_and_nothing_beside_it(tmp_path):
    out = tmp_path / "run"
    folders.replace_folder(out, _write("A"))

    def fails(tmp: Path) -> None:
        (tmp / "model.pt").write_text("new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as info:
        folders.replace_folder(out, fails)
    assert info.value.filename == str(out)  # the folder asked for, not the temporary one
    assert _label(out) == "A" and _strays(tmp_path) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        folders.replace_folder(tmp_path / "file", _write("A"))


def test_a_link_to_a_run_folder_stays_a_link(tmp_path):
    real = tmp_path / "real"
    folders.replace_folder(real, _write("A"))
    (tmp_path / "link").symlink_to(real)
    folders.replace_folder(tmp_path / "link", _write("B"))
    assert (tmp_path / "link").is_symlink() and _label(real) == "B"
    assert _strays(tmp_path) == []


def test_the_current_folder_is_never_replaced(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    monkeypatch.chdir(project / "sub")
    for folder in (".", "..", str(project)):
        with pytest.raises(folders.PipelineError, match="an output folder of its own"):
            folders.replace_folder(folder, _write("A"))
    assert sorted(p.name for p in project.iterdir()) == ["sub"]


def _hold(path: Path, ready, release) -> None:
    with folders.locked(path, "sweep"):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_or_waits(tmp_path):
    out = tmp_path / "sw"
    ready, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold, args=(out, ready, release))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(folders.FolderBusyError, match=r"another sweep is writing .*sw"):
            with folders.locked(out, "sweep"):
                pass
        release.set()
        with folders.locked(out, "sweep", wait=True):  # waits for the holder to finish
            with pytest.raises(folders.FolderBusyError):  # and holds it now
                with folders.locked(out, "compare"):
                    pass
    finally:
        release.set()
        child.join()


# --------------------------------------------------------------------------- real run folders


@pytest.fixture
def two_runs(synthetic_store, tmp_path):
    """Two trained runs on one store (seeds 0 and 1): their TrainResults."""
    from pipeline.training.data import load_data
    from pipeline.training.loop import fit

    store = synthetic_store(tmp_path / "blobs.h5")
    data = load_data(store)
    cfg = TrainConfig(features=str(store), epochs=2, batch_size=8, head="linear")
    return [fit(TrainConfig(**{**cfg.__dict__, "seed": s}), data) for s in (0, 1)]


def _save_forever(out: Path, results) -> None:
    from pipeline.training.outputs import save

    for i in range(10**9):
        save(results[i % 2], out)


def test_train_head_outputs_killed_at_random_points_are_one_run(tmp_path, two_runs):
    from pipeline.reports.run_folder import load_run
    from pipeline.training.outputs import save

    out = tmp_path / "head"
    save(two_runs[0], out)
    expected = {s: json.loads((out / "metrics.json").read_text()) for s in (0,)}
    save(two_runs[1], out)
    expected[1] = json.loads((out / "metrics.json").read_text())
    (tmp_path / "blobs.h5").unlink()  # only run folders beside the run folder
    rng = random.Random(1)
    seeds = set()
    for _ in range(15):
        child = FORK.Process(target=_save_forever, args=(out, two_runs))
        child.start()
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        run = load_run(out)  # whole: no MixedRunError, every file of one run
        seed = run.metrics["model_sha256"] == expected[1]["model_sha256"]
        assert {k: v for k, v in run.metrics.items() if k != "timing"} == {
            k: v for k, v in expected[int(seed)].items() if k != "timing"
        }
        assert run.metrics["model_sha256"] == file_sha256(out / "model.pt")
        seeds.add(int(seed))
        save(two_runs[0], out)  # the next run cleans up what the killed one left
        assert _strays(tmp_path) == []
    assert seeds == {0, 1}


def test_two_writers_and_a_reader(tmp_path, two_runs):
    from pipeline.reports.run_folder import load_run
    from pipeline.training.outputs import save

    out = tmp_path / "head"
    save(two_runs[0], out)
    writers = [FORK.Process(target=_save_forever, args=(out, two_runs[i:] + two_runs[:i]))
               for i in (0, 1)]  # fmt: skip
    for w in writers:
        w.start()
    reads = mixed = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            run = load_run(out)
        except folders.MixedRunError:
            mixed += 1  # named, never silent
            continue
        reads += 1
        names = {r["path"] for r in run.predictions}
        assert len(names) == 32
    for w in writers:
        os.kill(w.pid, signal.SIGKILL)
        w.join()
    assert reads > 0
    save(two_runs[1], out)
    assert load_run(out).metrics["model_sha256"] == file_sha256(out / "model.pt")
    assert _strays(tmp_path) == []


def test_readers_refuse_a_model_and_metrics_of_two_runs(tmp_path, two_runs):
    from pipeline.inference.evaluate import load_head
    from pipeline.inference.predict import predict
    from pipeline.reports.run_folder import load_run
    from pipeline.training.outputs import save

    a, b = tmp_path / "runs" / "linear-seed0", tmp_path / "runs" / "linear-seed1"
    save(two_runs[0], a)
    save(two_runs[1], b)
    shutil.copy(b / "model.pt", a / "model.pt")  # the kill of an older writer, by hand
    with pytest.raises(folders.MixedRunError, match=r"linear-seed0/model.pt and .* different"):
        load_run(a)
    with pytest.raises(folders.MixedRunError):
        load_head(a / "model.pt")
    image = tmp_path / "bee.png"
    Image.new("RGB", (8, 8)).save(image)
    with pytest.raises(folders.MixedRunError):
        predict(a / "model.pt", [image])
    cfg = CompareConfig(dir=str(tmp_path), heads=("linear",), seeds=(0, 1))
    with pytest.raises(folders.MixedRunError):
        collect_runs(cfg)
    # a run folder of an older version (no digest, no run.json) still reads
    metrics = json.loads((a / "metrics.json").read_text())
    del metrics["model_sha256"]
    (a / "metrics.json").write_text(json.dumps(metrics))
    (a / "run.json").unlink()
    assert load_run(a).best_epoch >= 1
