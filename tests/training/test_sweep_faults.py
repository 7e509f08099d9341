"""A sweep's folder under faults: a second sweep on it, a kill between a run's files, models
asked for later or deleted, and a full disk."""

from __future__ import annotations

import csv
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from pipeline import sweep as sweep_command
from pipeline.common import folders
from pipeline.common.config import Params, TrainConfig
from pipeline.training import sweep, sweep_files

FORK = multiprocessing.get_context("fork")
FAST = {"epochs": 2, "batch_size": 8, "lr": 0.01}
GRID = ["train.seed=0,1,2,3", "train.head=linear,classical"]  # two stacks of four


def _params(store: Path) -> Params:
    return Params(train=TrainConfig(features=str(store), **FAST))


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return {r["run_id"]: r for r in csv.DictReader(fh)}


def _models(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "runs").glob("*/model.pt")}


def _no_wall_time(rows):
    return {i: {k: v for k, v in r.items() if k != "wall_time_s"} for i, r in rows.items()}


def _hold(path: Path, ready, release) -> None:
    with folders.locked(path, "sweep"):
        ready.set()
        release.wait(30)


def test_a_second_sweep_on_the_same_folder_is_refused(synthetic_store, tmp_path, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    ready, release = FORK.Event(), FORK.Event()
    first = FORK.Process(target=_hold, args=(out, ready, release))  # a sweep at work
    first.start()
    try:
        assert ready.wait(30)
        code = sweep_command.main(
            ["--grid", "train.seed=0", "--out", str(out), "--set", f"train.features={store}"]
        )
    finally:
        release.set()
        first.join()
    err = capsys.readouterr().err
    assert code == 1 and f"another sweep is writing {out}" in err and "Traceback" not in err
    assert not (out / "results.csv").exists()


def _killed_sweep(store: Path, out: Path, when: str, after: int) -> None:
    """A sweep that SIGKILLs itself after the ``after``-th row, or model (before its row)."""
    from pipeline.training import outputs

    module, name = (sweep_files, "write_pending") if when == "row" else (outputs, "save_model")
    real, done = getattr(module, name), []

    def then_die(*args):
        result = real(*args)
        done.append(1)
        if len(done) == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(module, name, then_die)
    sweep.sweep(_params(store), sweep.parse_grid(GRID), out_dir=out, save_models=True)


@pytest.mark.parametrize("when", ["row", "model"])
def test_a_killed_sweep_keeps_every_finished_run(synthetic_store, tmp_path, when):
    store = synthetic_store(tmp_path / "blobs.h5")
    clean = sweep.sweep(
        _params(store), sweep.parse_grid(GRID), out_dir=tmp_path / "clean", save_models=True
    )
    out = tmp_path / "sw"
    child = FORK.Process(target=_killed_sweep, args=(store, out, when, 3))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    kept = {p.stem for p in (out / sweep_files.ROWS_DIR).glob("*.json")}
    # killed in the first stack: three rows kept as their members finished (not one in
    # results.csv yet); killed between a model and its row: that model has no row
    assert len(kept) == (3 if when == "row" else 2)
    orphans = _models(out) - kept
    assert len(_models(out)) == 3 and len(orphans) == (0 if when == "row" else 1)

    resumed = sweep.sweep(_params(store), sweep.parse_grid(GRID), out_dir=out, save_models=True)
    assert (resumed.ran, resumed.skipped) == (8 - len(kept), len(kept))
    assert _no_wall_time(_rows(out)) == _no_wall_time(_rows(tmp_path / "clean"))
    assert _models(out) == set(_rows(out)) and len(clean.rows) == 8
    assert not (out / sweep_files.ROWS_DIR).exists() and not list(out.rglob(".*.tmp"))


def test_a_rerun_makes_the_models_that_are_missing(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    grid = sweep.parse_grid(["train.seed=0,1", "train.head=linear"])
    sweep.sweep(_params(store), grid, out_dir=out)
    first = _rows(out)
    assert not (out / "runs").exists()
    again = sweep.sweep(_params(store), grid, out_dir=out, save_models=True)
    assert again.ran == 2 and _models(out) == set(first)
    assert _no_wall_time(_rows(out)) == _no_wall_time(first)  # the same numbers

    gone = sorted(first)[0]
    sweep_files.model_path(out, gone).unlink()  # deleted by hand
    stray = out / "runs" / "0123456789abcdef"  # a model left without a row
    stray.mkdir()
    (stray / "model.pt").write_bytes(b"left by a crash")
    third = sweep.sweep(_params(store), grid, out_dir=out, save_models=True)
    assert (third.ran, third.skipped) == (1, 1)
    assert _models(out) == set(first) and not stray.exists()
    assert sweep.sweep(_params(store), grid, out_dir=out, save_models=True).ran == 0


def test_a_full_disk_stops_the_sweep_with_what_it_kept(
    synthetic_store, tmp_path, small_disk, capsys
):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = small_disk / "sw"
    code = sweep_command.main(
        ["--grid", "train.seed=0,1,2,3", "--out", str(out), "--save-models",
         "--set", f"train.features={store}", "--set", "train.head=linear",
         "--set", "train.epochs=1"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    line = next(x for x in err.splitlines() if " ERROR " in x)
    assert "the sweep stopped:" in line and "No space left on device" in line
    assert "run the same command again" in line
    on_disk = set(_rows(out)) if (out / "results.csv").is_file() else set()
    on_disk |= {p.stem for p in (out / sweep_files.ROWS_DIR).glob("*.json")}
    assert f"{len(on_disk)} of its 4 runs to do are recorded in" in line  # what is true
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]
