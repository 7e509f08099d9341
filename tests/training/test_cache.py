"""The head cache: compare and sweep reuse heads trained before, byte for byte, and never a
damaged entry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path

import pytest

from pipeline import compare as compare_command
from pipeline.common.config import CompareConfig, Params, TrainConfig
from pipeline.training import cache, compare, ensemble, sweep
from pipeline.training.outputs import RUN_FILES

HEADS = ("quantum", "classical", "linear")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def trained(monkeypatch) -> list[list[str]]:
    """The heads each fit_ensemble call trains, as ``head/seed`` (compare and sweep)."""
    calls: list[list[str]] = []
    real = ensemble.fit_ensemble

    def spy(cfgs, data, **kwargs):
        calls.append([f"{c.head}/{c.seed}" for c in cfgs])
        return real(cfgs, data, **kwargs)

    monkeypatch.setattr(compare, "fit_ensemble", spy)
    monkeypatch.setattr(ensemble, "fit_ensemble", spy)
    return calls


def _params(store: Path, folder: Path, **train) -> Params:
    return Params(
        train=TrainConfig(**{"features": str(store), "epochs": 2, "q_depth": 2, **train}),
        compare=CompareConfig(heads=HEADS, seeds=(0, 1), dir=str(folder)),
    )


def _run_files(folder: Path) -> dict[str, bytes]:
    """Every file of every run under ``folder``/runs; metrics.json without its timing."""
    found = {}
    for path in sorted((folder / "runs").glob("*/*")):
        data = path.read_bytes()
        if path.name == "metrics.json":
            metrics = json.loads(data)
            assert set(metrics["timing"]) == {"wall_time_s", "train_seconds_per_epoch",
                                              "stacked_heads"}  # fmt: skip
            data = json.dumps({k: v for k, v in metrics.items() if k != "timing"}).encode()
        found[f"{path.parent.name}/{path.name}"] = data
    return found


def test_reused_heads_are_the_bytes_of_fresh_ones(synthetic_store, tmp_path, trained):
    store = synthetic_store(tmp_path / "blobs.h5")
    root = tmp_path / "cache"
    compare.compare(_params(store, tmp_path / "depth2"), cache_dir=root)
    assert sorted(trained[0]) == sorted(f"{h}/{s}" for h in HEADS for s in (0, 1))
    # a new circuit depth: only the quantum heads train; the others come from the cache
    rows = compare.compare(_params(store, tmp_path / "reused", q_depth=1), cache_dir=root)
    assert trained[1] == ["quantum/0", "quantum/1"]
    fresh_rows = compare.compare(_params(store, tmp_path / "fresh", q_depth=1))  # no cache
    assert trained[2] == trained[0]
    assert rows == fresh_rows
    reused, fresh = _run_files(tmp_path / "reused"), _run_files(tmp_path / "fresh")
    assert len(reused) == len(HEADS) * 2 * len(RUN_FILES)
    assert reused == fresh  # model.pt and run.json record q_depth 1, as a fresh run's do
    assert (
        json.loads((tmp_path / "reused/runs/linear-seed0/run.json").read_text())["config"][
            "q_depth"
        ]
        == 1
    )
    for run in ("linear-seed0", "classical-seed1"):  # a copy: even the timing is the original's
        original = json.loads((tmp_path / "depth2" / "runs" / run / "metrics.json").read_bytes())
        copied = json.loads((tmp_path / "reused" / "runs" / run / "metrics.json").read_bytes())
        model = (tmp_path / "reused" / "runs" / run / "model.pt").read_bytes()
        assert copied.pop("model_sha256") == hashlib.sha256(model).hexdigest()  # its own model
        assert original.pop("model_sha256") != hashlib.sha256(model).hexdigest()
        assert copied == original
    # the same settings again: nothing trains
    compare.compare(_params(store, tmp_path / "again", q_depth=1), cache_dir=root)
    assert len(trained) == 3
    assert _run_files(tmp_path / "again") == fresh


def test_sweep_reuses_the_heads_compare_trained(synthetic_store, tmp_path, trained):
    store = synthetic_store(tmp_path / "blobs.h5")
    root = tmp_path / "cache"
    params = _params(store, tmp_path / "cmp")
    compare.compare(params, cache_dir=root)
    grid = sweep.parse_grid(["train.head=linear,classical", "train.seed=0,1,2"])
    result = sweep.sweep(params, grid, out_dir=tmp_path / "sw", cache_dir=root, save_models=True)
    assert trained[1:] == [["linear/2"], ["classical/2"]]  # seeds 0 and 1 were in compare
    assert result.ran == 2 and result.failed == []
    fresh = sweep.sweep(params, grid, out_dir=tmp_path / "fresh", save_models=True)
    assert len(trained) == 5  # no cache: all six again, in two stacks
    metrics = [*sweep.METRIC_FIELDS, "run_id", "status", "features_sha256"]
    assert [{k: r[k] for k in metrics} for r in result.rows] == [
        {k: r[k] for k in metrics} for r in fresh.rows
    ]
    for row in fresh.rows:  # the models a sweep writes: the same bytes, reused or not
        name = Path("runs") / row["run_id"] / "model.pt"
        assert (tmp_path / "sw" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()
    # and compare, in turn, finds the sweep's seed-2 runs
    wider = dataclasses.replace(params.compare, heads=("linear",), seeds=(0, 1, 2))
    compare.compare(dataclasses.replace(params, compare=wider), cache_dir=root)
    assert len(trained) == 5


def _entry(root: Path) -> Path:
    (entry,) = [p for p in root.glob("*/*") if p.is_dir()]
    return entry


@pytest.mark.parametrize("damage", ["flip a byte", "cut short", "lose a file", "lose entry.json"])
def test_a_damaged_entry_is_trained_again_never_used(
    synthetic_store, tmp_path, trained, caplog, damage
):
    store = synthetic_store(tmp_path / "blobs.h5")
    root = tmp_path / "cache"
    params = dataclasses.replace(
        _params(store, tmp_path / "a"), compare=CompareConfig(heads=("linear",), seeds=(0,),
                                                              dir=str(tmp_path / "a"))
    )  # fmt: skip
    compare.compare(params, cache_dir=root)
    entry = _entry(root)
    sound = {p.name: p.read_bytes() for p in entry.iterdir()}
    if damage == "flip a byte":
        data = bytearray(sound["history.csv"])
        data[-3] ^= 1
        (entry / "history.csv").write_bytes(bytes(data))
    elif damage == "cut short":
        (entry / "model.pt").write_bytes(sound["model.pt"][:100])
    elif damage == "lose a file":
        (entry / "val_predictions.csv").unlink()
    else:
        (entry / "entry.json").unlink()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        compare.compare(dataclasses.replace(params, compare=dataclasses.replace(
            params.compare, dir=str(tmp_path / "b"))), cache_dir=root)  # fmt: skip
    assert len(trained) == 2  # trained again
    assert f"head cache entry {entry} is " in caplog.text and "training it again" in caplog.text
    replaced = cache.HeadCache(root).get(entry.name)  # a sound entry again, of the new run
    assert replaced == {n: (tmp_path / "b/runs/linear-seed0" / n).read_bytes() for n in cache.FILES}
    for name in ("model.pt", "history.csv", "val_predictions.csv"):
        assert replaced[name] == sound[name]
    assert (tmp_path / "b/runs/linear-seed0/history.csv").read_bytes() == sound["history.csv"]
    assert [p.name for p in entry.parent.iterdir() if p.name.startswith(".")] == []


def test_the_key_holds_what_trains_a_head_and_nothing_else():
    sha, other = "a" * 64, "b" * 64
    key = cache.head_key
    base = TrainConfig(head="linear")
    # a linear head reads no circuit settings, no qubits; and features/out_dir only name files
    for change in ({"q_depth": 3}, {"n_qubits": 2}, {"backend": "default.qubit"},
                   {"out_dir": "x"}, {"features": "y.h5"}):  # fmt: skip
        assert key(dataclasses.replace(base, **change), sha) == key(base, sha), change
    for change in ({"lr": 0.01}, {"seed": 1}, {"epochs": 3}, {"head": "classical"},
                   {"checkpoint": "last"}, {"threads": 2}, {"dtype": "float32"}):  # fmt: skip
        assert key(dataclasses.replace(base, **change), sha) != key(base, sha), change
    assert key(base, other) != key(base, sha)
    quantum = TrainConfig(head="quantum")
    assert key(dataclasses.replace(quantum, q_depth=3), sha) != key(quantum, sha)
    assert key(dataclasses.replace(quantum, cv_layers=5), sha) == key(quantum, sha)
    for change in ({"circuit": "strongly_entangling"}, {"embedding": "iqp"}, {"reupload": True}):
        assert key(dataclasses.replace(quantum, **change), sha) != key(quantum, sha), change
        assert key(dataclasses.replace(base, **change), sha) == key(base, sha), change
    classical = TrainConfig(head="classical")
    assert key(dataclasses.replace(classical, n_qubits=2), sha) != key(classical, sha)
    assert key(dataclasses.replace(classical, q_delta=0.5), sha) == key(classical, sha)


def test_an_edited_circuit_file_is_a_new_head(synthetic_store, tmp_path, monkeypatch, trained):
    store = synthetic_store(tmp_path / "blobs.h5")
    (tmp_path / "circuits").mkdir()
    ring = tmp_path / "circuits" / "ring.py"
    shutil.copy(REPO / "circuits" / "ring.py", ring)
    monkeypatch.chdir(tmp_path)
    spec = "circuits/ring.py:ring"
    base = TrainConfig(head="quantum", circuit=spec)
    before = cache.head_key(base, "a" * 64)
    assert before != cache.head_key(TrainConfig(head="quantum"), "a" * 64)
    root = tmp_path / "cache"

    def run(folder: str) -> None:
        params = _params(store, tmp_path / folder, circuit=spec)
        one = dataclasses.replace(params.compare, heads=("quantum",), seeds=(0,))
        compare.compare(dataclasses.replace(params, compare=one), cache_dir=root)

    run("a")
    run("b")  # the same file: reused
    assert trained == [["quantum/0"]]
    ring.write_text(ring.read_text() + "\n# edited\n")
    assert cache.head_key(base, "a" * 64) != before
    run("c")  # an edited file: trained again, not the stale head
    assert trained == [["quantum/0"], ["quantum/0"]]
    record = json.loads((tmp_path / "c/runs/quantum-seed0/run.json").read_text())
    assert record["circuit"]["text"] == ring.read_text()


def test_the_key_holds_the_code_and_the_host(monkeypatch):
    base = TrainConfig(head="linear")
    before = cache.head_key(base, "a" * 64)
    monkeypatch.setattr(cache, "code_digest", lambda: "other code")
    assert cache.head_key(base, "a" * 64) != before
    monkeypatch.undo()
    monkeypatch.setattr(cache, "environment", lambda: {"host": "elsewhere"})
    assert cache.head_key(base, "a" * 64) != before


def test_concurrent_writers_leave_one_sound_entry(tmp_path):
    blobs = {name: name.encode() * 1000 for name in cache.FILES}
    key = "ab" + "c" * 62
    results = []

    def write():
        results.append(cache.HeadCache(tmp_path).put(key, blobs, TrainConfig()))

    threads = [threading.Thread(target=write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert cache.HeadCache(tmp_path).get(key) == blobs
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == [key, key + ".lock"]


def test_an_unwritable_cache_is_one_warning(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    blocked = cache.HeadCache(tmp_path / "file" / "cache")
    blobs = {name: b"x" for name in cache.FILES}
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert blocked.put("ab" * 32, blobs, TrainConfig()) is False
    assert "head cache" in caplog.text and "not written" in caplog.text
    assert blocked.get("ab" * 32) is None


def test_the_command_uses_the_project_cache_unless_no_cache(
    synthetic_store, tmp_path, monkeypatch, trained
):
    store = synthetic_store(tmp_path / "blobs.h5")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(
        f"train:\n  features: {store}\n  epochs: 1\n"
        "compare:\n  heads: [linear]\n  seeds: [0]\n  dir: cmp\n"
    )
    assert compare_command.main(["--params", str(params)]) == 0
    assert len(trained) == 1 and _entry(tmp_path / ".cache" / "heads").is_dir()
    assert compare_command.main(["--params", str(params)]) == 0
    assert len(trained) == 1  # from .cache/heads
    assert compare_command.main(["--params", str(params), "--no-cache"]) == 0
    assert len(trained) == 2
    # under DVC: the cache of the project DVC runs (a queued experiment runs elsewhere)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))
    assert cache.default_root() == tmp_path / "project" / ".cache" / "heads"
