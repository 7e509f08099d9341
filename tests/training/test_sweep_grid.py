"""A sweep's grid: keys tied together, and combinations a head cannot tell apart run once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipeline import sweep as sweep_command
from pipeline.common.config import Params, TrainConfig
from pipeline.common.errors import ConfigError
from pipeline.training import sweep
from pipeline.training.grid import combinations

FAST = {"epochs": 2, "step_size": 2, "batch_size": 8, "lr": 0.01}
TIED = "train.embedding,train.reupload=[paper,false],[iqp,true]"


def _params(store: Path, **train) -> Params:
    return Params(train=TrainConfig(features=str(store), **{**FAST, **train}))


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tied_keys_are_typed_and_vary_together():
    grid = sweep.parse_grid(
        ["train.seed=0,1", " train.embedding, train.reupload=[iqp, true],[paper,false]"]
    )
    assert grid == {
        "train.seed": [0, 1],
        "train.embedding,train.reupload": [("iqp", True), ("paper", False)],
    }
    assert [type(v[1]) for v in grid["train.embedding,train.reupload"]] == [bool, bool]
    assert list(combinations(grid)) == [
        {"train.seed": s, "train.embedding": e, "train.reupload": r}
        for s in (0, 1)
        for e, r in (("iqp", True), ("paper", False))
    ]


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        (
            ["train.embedding,train.reupload=paper,false"],
            r"expected one list of 2 values .*got 'paper'",
        ),
        (["train.embedding,train.reupload=[paper]"], r"one list of 2 values .*got \[paper\]"),
        (["train.embedding,train.reupload=[paper,false,1]"], r"one list of 2 values"),
        (["train.embedding,train.reupload=[paper,maybe]"], r"train.reupload: expected bool"),
        (["train.embedding,train.reupload=[papr,false]"], r"train.embedding: expected .*iqp"),
        (["train.embedding,train.nope=[paper,1]"], r"--grid train.nope: expected a train setting"),
        (["train.seed,train.seed=[0,1]"], r"--grid train.seed: given twice"),
        (["train.seed=0", "train.seed,train.head=[1,linear]"], r"train.seed: given twice"),
        ([f"{TIED},[iqp,true]"], r"value \[iqp, true\] is given twice"),
        (["train.embedding,train.reupload=[paper"], r"cannot parse"),
    ],
)
def test_tied_key_errors(specs, match):
    with pytest.raises(ConfigError, match=match):
        sweep.parse_grid(specs)


def test_combinations_a_head_does_not_read_are_one_run(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    params = _params(store, circuit="basic_entangler")
    grid = sweep.parse_grid(
        [
            "train.head=quantum,classical,linear",
            "train.circuit=paper,strongly_entangling",
            TIED,
            "train.seed=0,1",
        ]
    )
    cells = sweep.expand(params, grid)
    assert [(c.config.head, c.settings.get("train.circuit")) for c in cells[::2]] == [
        ("quantum", "paper"),
        ("quantum", "paper"),
        ("quantum", "strongly_entangling"),
        ("quantum", "strongly_entangling"),
        ("classical", None),
        ("linear", None),
    ]
    assert [c.index for c in cells] == list(range(12)) and len({c.run_id for c in cells}) == 12
    classical = [c for c in cells if c.config.head == "classical"]
    assert classical[0].settings == {"train.head": "classical", "train.seed": 0}
    # the keys it ignores keep the params' values: the run of a grid without them
    assert (classical[0].config.circuit, classical[0].config.reupload) == ("basic_entangler", False)
    alone = sweep.expand(params, sweep.parse_grid(["train.head=classical", "train.seed=0,1"]))
    assert [c.run_id for c in alone] == [c.run_id for c in classical]


def test_a_grid_key_no_run_reads_is_refused(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    grid = sweep.parse_grid(["train.head=classical,linear", "train.circuit=paper,basic_entangler"])
    with pytest.raises(ConfigError, match=r"--grid train.circuit: no run reads it .*classical"):
        sweep.expand(_params(store), grid)


def test_the_summary_shows_n_a_for_keys_a_head_does_not_read(synthetic_store, tmp_path, capsys):
    store = synthetic_store(tmp_path / "blobs.h5", dim=4)
    out = tmp_path / "sw"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps({"train": {**FAST, "features": str(store)}}) + "\n")
    argv = ["--params", str(params_file), "--grid", "train.head=quantum,linear", "--grid", TIED]
    argv += ["--grid", "train.seed=0,1", "--out", str(out)]
    assert sweep_command.main(argv) == 0
    assert (
        "2 of the grid's 8 combinations differ from another only in keys" in capsys.readouterr().err
    )

    rows = _rows(out)
    assert list(rows[0])[2:6] == ["train.head", "train.embedding", "train.reupload", "train.seed"]
    assert [(r["train.head"], r["train.embedding"], r["train.reupload"]) for r in rows[::2]] == [
        ("quantum", "paper", "false"),
        ("quantum", "iqp", "true"),
        ("linear", "paper", "false"),  # the config's values, as train_head would record them
    ]
    assert {r["status"] for r in rows} == {"ok"}
    table = json.loads((out / "summary.json").read_text())
    assert [
        (r["train.head"], r["train.embedding"], r["train.reupload"], r["n"]) for r in table
    ] == [
        ("quantum", "paper", False, 2),
        ("quantum", "iqp", True, 2),
        ("linear", "n/a", "n/a", 2),
    ]
    iqp = [float(r["last_val_acc"]) for r in rows[2:4]]
    assert table[1]["last_val_acc"]["mean"] == pytest.approx(sum(iqp) / 2)
    md = (out / "summary.md").read_text()
    assert md.startswith("# Sweep over train.head, train.embedding, train.reupload, train.seed\n")
    assert "| linear | n/a | n/a | 2 |" in md and "n/a: a grid key the run's head" in md
