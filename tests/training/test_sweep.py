from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import sweep as sweep_command
from pipeline.common import cluster
from pipeline.common.config import Params, TrainConfig, load_params
from pipeline.common.errors import ClusterError, ConfigError, FeatureStoreError
from pipeline.extraction.loop import extract
from pipeline.sources.spiral import SpiralSource
from pipeline.training import summary, sweep
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]

# Short runs that still learn the blobs: the numbers differ by seed and head.
FAST = {"epochs": 3, "step_size": 2, "batch_size": 8, "lr": 0.01}


def _params(store: Path, **train) -> Params:
    return Params(train=TrainConfig(features=str(store), **{**FAST, **train}))


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _without_wall_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_parse_grid_types_values_like_set():
    grid = sweep.parse_grid(
        [
            "train.seed=0,1,2",
            "train.head=quantum, linear",
            "train.lr=4e-4,0.01",
            "train.shots=null,100",
        ]
    )
    assert grid == {
        "train.seed": [0, 1, 2],
        "train.head": ["quantum", "linear"],
        "train.lr": [0.0004, 0.01],
        "train.shots": [None, 100],
    }
    assert all(type(v) is float for v in grid["train.lr"])


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        (["train.seed"], r"expected section.key=v1,v2"),
        (["train.seed="], r"expected section.key=v1,v2"),
        (["seed=0,1"], r"expected section.key=v1,v2"),
        (["nope.seed=0,1"], r"--grid nope.seed: expected a train setting .*blocks: data"),
        (["train.out_dir=a,b"], r"--grid train.out_dir: expected a train setting"),
        (["train.nope=1"], r"train.nope"),
        (["train.head=quantum,qunatum"], r"train.head: expected one of .*'qunatum'"),
        (["train.epochs=3,x"], r"train.epochs: expected int; got 'x'"),
        (["train.epochs=0"], r"train.epochs: expected an integer >= 1"),
        (["train.seed=0,1,0"], r"value 0 is given twice"),
        (["train.seed=0", "train.seed=1"], r"train.seed: given twice"),
        ([], r"at least one --grid"),
    ],
)
def test_parse_grid_errors(specs, match):
    with pytest.raises(ConfigError, match=match):
        sweep.parse_grid(specs)


def test_a_grid_key_that_changes_nothing_is_refused(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    with pytest.raises(ConfigError, match=r"are the same run: a grid key outside train"):
        sweep.expand(_params(store), sweep.parse_grid(["extract.seed=0,1"]))


def test_a_grid_over_spiral_turns_gives_each_run_its_own_store(tmp_path):
    overrides = [
        f"spiral.out={tmp_path}/spiral-{{spiral.turns}}.h5",
        f"train.features={tmp_path}/spiral-{{spiral.turns}}.h5",
        "spiral.n_per_class=60",
        "spiral.n_val=20",
        "spiral.n_train=60",
        "train.epochs=1",
    ]
    params = load_params(REPO / "params-spiral.yaml", overrides)
    grid = sweep.parse_grid(["spiral.turns=1.52,2.0", "train.head=classical"])
    with pytest.raises(FeatureStoreError, match=r"spiral-1.52.h5' is missing; make it first"):
        sweep.sweep(params, grid, out_dir=tmp_path / "sw")
    for turns in (1.52, 2.0):
        cell = load_params(REPO / "params-spiral.yaml", [*overrides, f"spiral.turns={turns}"])
        extract(SpiralSource(cell.spiral), cell.spiral_out)
    result = sweep.sweep(params, grid, out_dir=tmp_path / "sw")
    assert [c.config.features for c in result.cells] == [
        f"{tmp_path}/spiral-1.52.h5",
        f"{tmp_path}/spiral-2.0.h5",
    ]
    assert result.cells[0].features_sha256 != result.cells[1].features_sha256
    assert [r["spiral.turns"] for r in result.rows] == ["1.52", "2.0"]
    assert "| 1.52 | classical | 1 |" in (tmp_path / "sw" / "summary.md").read_text()


def test_missing_features_fail_before_any_run(tmp_path):
    with pytest.raises(FeatureStoreError, match=r"nope.h5.*does not exist"):
        sweep.sweep(
            _params(tmp_path / "nope.h5"),
            sweep.parse_grid(["train.seed=0,1"]),
            out_dir=tmp_path / "sw",
        )
    assert not (tmp_path / "sw").exists()


def test_results_summary_and_a_cell_equal_to_a_direct_run(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    grid = sweep.parse_grid(["train.seed=0,1,2", "train.head=quantum,linear"])
    result = sweep.sweep(_params(store), grid, out_dir=out)
    assert (result.ran, result.skipped, result.failed) == (6, 0, [])
    assert result.loads == result.workers == 1  # --jobs 1: this process, one load

    rows = _rows(out)
    header = list(rows[0])
    assert header[:4] == ["run_id", "status", "train.seed", "train.head"]
    assert "train.out_dir" not in header and header[-2:] == ["wall_time_s", "error"]
    assert [(r["train.seed"], r["train.head"]) for r in rows] == [
        (s, h) for s in "012" for h in ("quantum", "linear")
    ]
    assert {r["status"] for r in rows} == {"ok"} and len({r["run_id"] for r in rows}) == 6
    assert {r["train.features"] for r in rows} == {str(store)}
    assert {r["train.epochs"] for r in rows} == {"3"} and {r["train.shots"] for r in rows} == {
        "null"
    }
    assert len({r["best_val_loss"] for r in rows}) == 6  # the runs really differ

    # cell (seed 1, quantum) is the same computation as a direct train_head run
    direct = train_head(
        Params(
            train=TrainConfig(features=str(store), out_dir=str(tmp_path / "direct"), seed=1, **FAST)
        )
    )
    cell = rows[2]
    for key, (part, name) in {
        "best_val_acc": ("best", "val_acc"),
        "best_val_loss": ("best", "val_loss"),
        "best_epoch": ("best", "epoch"),
        "last_val_acc": ("last", "val_acc"),
        "last_val_loss": ("last", "val_loss"),
    }.items():
        assert float(cell[key]) == direct.metrics[part][name], key

    # summary: pipeline.training.summary over the seeds, one row per head
    records = [
        {
            "train.seed": int(r["train.seed"]),
            "train.head": r["train.head"],
            **{m: float(r[m]) for m in sweep.METRIC_FIELDS},
        }
        for r in rows
    ]
    expected = summary.summarize(records, over=("train.seed",), settings=["train.head"])
    assert json.loads((out / "summary.json").read_text()) == expected
    md = (out / "summary.md").read_text()
    assert md.startswith("# Sweep over train.seed, train.head\n")
    assert summary.to_markdown(expected) in md
    assert "| quantum | 3 |" in md and "| linear | 3 |" in md


def test_a_random_init_store_puts_the_warning_above_the_table(synthetic_store, tmp_path):
    from pipeline.store import hdf5

    plain = synthetic_store(tmp_path / "blobs.h5")
    meta = hdf5.read_meta(plain)
    random_init = tmp_path / "random-init.h5"
    hdf5.write_like(
        random_init,
        {s: hdf5.load(plain, s) for s in meta.splits},
        meta,
        extra={**meta.extra, "weights_kind": "none"},
    )
    grid = sweep.parse_grid(["train.seed=0,1"])
    sweep.sweep(_params(plain, head="linear"), grid, out_dir=tmp_path / "plain")
    sweep.sweep(_params(random_init, head="linear"), grid, out_dir=tmp_path / "ri")
    assert "RANDOM-INIT" not in (tmp_path / "plain" / "summary.md").read_text()
    lines = (tmp_path / "ri" / "summary.md").read_text().splitlines()
    assert lines[0] == "# Sweep over train.seed"
    assert lines[2] == f"**{hdf5.RANDOM_INIT_WARNING}**"  # before the table, not under it
    assert lines[4].startswith("| ")


@pytest.mark.slow
def test_jobs_1_jobs_2_and_a_local_dask_cluster_agree(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", dim=8)
    grid = sweep.parse_grid(["train.seed=0,1", "train.head=quantum,classical,linear"])
    params = _params(store)
    local = sweep.sweep(params, grid, out_dir=tmp_path / "j1", jobs=1)
    loky = sweep.sweep(params, grid, out_dir=tmp_path / "j2", jobs=2)
    dask = sweep.sweep(params, grid, out_dir=tmp_path / "dask", dask_workers=2)
    reference = _without_wall_time(_rows(tmp_path / "j1"))
    assert len(reference) == 6 and {r["status"] for r in reference} == {"ok"}
    assert _without_wall_time(_rows(tmp_path / "j2")) == reference
    assert _without_wall_time(_rows(tmp_path / "dask")) == reference
    for result in (local, loky, dask):
        assert result.ran == 6
        # each worker process read the features once, whatever number of runs it did
        assert 1 <= result.loads == result.workers <= 2
    assert (tmp_path / "dask" / "summary.md").read_text() == (
        tmp_path / "j1" / "summary.md"
    ).read_text()


def test_failed_runs_are_recorded_and_the_others_kept(synthetic_store, tmp_path, capsys):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    # shots are for PennyLane devices: the torch backend refuses them when the head is built
    grid = sweep.parse_grid(["train.shots=null,100", "train.seed=0,1"])
    result = sweep.sweep(_params(store), grid, out_dir=out)
    rows = _rows(out)
    assert [(r["train.shots"], r["train.seed"], r["status"]) for r in rows] == [
        ("null", "0", "ok"),
        ("null", "1", "ok"),
        ("100", "0", "failed"),
        ("100", "1", "failed"),
    ]
    for row in rows[2:]:
        assert row["error"].startswith("ConfigError: train.shots: the torch backend is exact")
        assert row["best_val_acc"] == "" and float(row["wall_time_s"]) >= 0
    assert all(float(r["best_val_acc"]) > 0 and r["error"] == "" for r in rows[:2])
    assert result.failed == [
        ({"train.shots": 100, "train.seed": 0}, rows[2]["error"]),
        ({"train.shots": 100, "train.seed": 1}, rows[3]["error"]),
    ]
    md = (out / "summary.md").read_text()
    assert "| None | 2 |" in md and "| 100 |" not in md  # summary.to_markdown: str()
    assert "Failed runs (2, not in the table):" in md
    assert "- train.shots=100, train.seed=0: ConfigError: train.shots" in md

    # the command line: the failures are logged with their settings and the exit code says so
    params_file = tmp_path / "params.yaml"
    params_file.write_text("train: {epochs: 3, step_size: 2, batch_size: 8, lr: 0.01}\n")
    code = sweep_command.main(
        [
            "--params",
            str(params_file),
            "--set",
            f"train.features={store}",
            "--grid",
            "train.shots=null,100",
            "--grid",
            "train.seed=0,1",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "2 already in results.csv" in err and "2 to run" in err  # failed runs are retried
    assert "run train.shots=100, train.seed=0 failed: ConfigError: train.shots" in err
    assert "2 of 4 runs failed" in err
    assert _rows(out) == rows[:2] + [
        {**r, "wall_time_s": n["wall_time_s"]}
        for r, n in zip(rows[2:], _rows(out)[2:], strict=True)
    ]


def test_rerun_skips_finished_runs_unless_forced(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    params = _params(store)
    first = sweep.sweep(params, sweep.parse_grid(["train.seed=0,1"]), out_dir=out)
    assert (first.ran, first.skipped) == (2, 0)
    before = (out / "results.csv").read_bytes()

    again = sweep.sweep(params, sweep.parse_grid(["train.seed=0,1"]), out_dir=out)
    assert (again.ran, again.skipped) == (0, 2)
    assert (out / "results.csv").read_bytes() == before  # the same rows, wall times included

    more = sweep.sweep(params, sweep.parse_grid(["train.seed=0,1,2"]), out_dir=out)
    assert (more.ran, more.skipped) == (1, 2)
    assert [r["train.seed"] for r in _rows(out)] == ["0", "1", "2"]

    # other base settings are other runs; the earlier rows stay, after this grid's
    other = sweep.sweep(_params(store, epochs=2), sweep.parse_grid(["train.seed=0,1"]), out_dir=out)
    assert (other.ran, other.skipped) == (2, 0)
    assert [(r["train.epochs"], r["train.seed"]) for r in _rows(out)] == [
        ("2", "0"),
        ("2", "1"),
        ("3", "0"),
        ("3", "1"),
        ("3", "2"),
    ]

    # new features (same path, other content) are other runs too
    synthetic_store(store, seed=1)
    changed = sweep.sweep(params, sweep.parse_grid(["train.seed=0"]), out_dir=out)
    assert (changed.ran, changed.skipped) == (1, 0)

    forced = sweep.sweep(params, sweep.parse_grid(["train.seed=0"]), out_dir=out, force=True)
    assert (forced.ran, forced.skipped) == (1, 0)
    assert len(_rows(out)) == 6


@pytest.mark.parametrize(
    ("error", "raised"), [(KeyboardInterrupt, KeyboardInterrupt), (RuntimeError, ClusterError)]
)
def test_an_interrupted_sweep_keeps_its_finished_runs(
    synthetic_store, tmp_path, monkeypatch, error, raised
):
    store = synthetic_store(tmp_path / "blobs.h5")
    out = tmp_path / "sw"
    grid = sweep.parse_grid(["train.head=quantum,linear", "train.seed=0,1"])  # two stacks
    real = sweep.run_group

    def dies_at_the_second_stack(cells, save_dir=None):
        if cells[0].config.head == "linear":
            raise error("injected")  # e.g. Ctrl-C, or a worker process that died
        return real(cells, save_dir)

    monkeypatch.setattr(sweep, "run_group", dies_at_the_second_stack)
    with pytest.raises(raised, match="injected"):
        sweep.sweep(_params(store), grid, out_dir=out)
    rows = [(r["train.head"], r["train.seed"], r["status"]) for r in _rows(out)]
    assert rows == [("quantum", "0", "ok"), ("quantum", "1", "ok")]

    monkeypatch.undo()
    resumed = sweep.sweep(_params(store), grid, out_dir=out)
    assert (resumed.ran, resumed.skipped) == (2, 2)
    assert [r["train.head"] for r in _rows(out)] == ["quantum", "quantum", "linear", "linear"]


def test_cli_options(tmp_path):
    with pytest.raises(SystemExit):
        sweep_command.main(["--grid", "train.seed=0", "--jobs", "2", "--dask-workers", "2"])
    with pytest.raises(SystemExit):
        sweep_command.main(["--grid", "train.seed=0", "--jobs", "0"])
    with pytest.raises(SystemExit):
        sweep_command.main(["--grid", "train.seed=0", "--dask-workers", "0"])
    with pytest.raises(SystemExit):
        sweep_command.main([])  # --grid is required


def test_unreachable_scheduler_is_a_clear_error():
    with (
        pytest.raises(ClusterError, match=r"cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'"),
        cluster.connect("tcp://127.0.0.1:9", timeout=1),
    ):
        pass


def test_a_foreign_results_csv_is_refused(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match=r"results.csv has no run_id column"):
        sweep.sweep(_params(store), sweep.parse_grid(["train.seed=0"]), out_dir=tmp_path / "sw")


def test_the_commands_import_neither_torch_nor_dask_up_front():
    code = (
        "import sys, pipeline.sweep, pipeline.extract, pipeline.features, pipeline.common.cluster, "
        "pipeline.report, pipeline.datasets, pipeline.fetch_data; "
        "print(sorted(m for m in ('torch', 'dask', 'distributed', 'joblib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
