from __future__ import annotations

import json

import pytest

from pipeline.training import summary


def _runs():
    return [
        {"train.head": h, "train.seed": s, "best_val_acc": a, "last_val_acc": a - 0.1}
        for h, accs in (("quantum", [0.9, 0.8, 0.7]), ("linear", [0.5]))
        for s, a in enumerate(accs)
    ]


def test_groups_by_everything_but_the_seed():
    rows = summary.summarize(_runs())
    assert [r["train.head"] for r in rows] == ["quantum", "linear"]
    q = rows[0]
    assert q["n"] == 3 and "train.seed" not in q
    assert q["best_val_acc"]["mean"] == pytest.approx(0.8)
    assert q["best_val_acc"]["std"] == pytest.approx(0.1)  # sample std, ddof = 1
    assert q["last_val_acc"]["mean"] == pytest.approx(0.7)
    assert rows[1]["best_val_acc"] == {"mean": 0.5, "std": 0.0}


def test_result_columns_are_never_grouping_settings():
    runs = [
        summary.run_record(
            {"train.head": "quantum", "train.seed": s},
            {
                "best": {"val_acc": a, "val_loss": 1 - a, "epoch": s + 3},
                "last": {"val_acc": a, "val_loss": 1 - a},
            },
        )
        for s, a in enumerate([0.9, 0.7])
    ]
    rows = summary.summarize([{**r, "wall_time_s": 1.0 + r["train.seed"]} for r in runs])
    assert len(rows) == 1 and rows[0]["n"] == 2
    assert set(rows[0]) == {"train.head", "n", "best_val_acc", "last_val_acc"}


def test_markdown_and_json(tmp_path):
    rows = summary.summarize(_runs())
    md, js = summary.write(rows, tmp_path, title="Heads")
    text = md.read_text()
    assert text.startswith("# Heads\n")
    assert "| quantum | 3 | 0.8000 ± 0.1000 | 0.7000 ± 0.1000 |" in text
    assert json.loads(js.read_text())[1]["train.head"] == "linear"


def test_run_record_flattens_metrics_json():
    metrics = {
        "best": {"val_acc": 0.9, "val_loss": 0.3, "epoch": 4},
        "last": {"val_acc": 0.8, "val_loss": 0.4},
    }
    row = summary.run_record({"train.head": "quantum"}, metrics)
    assert row == {
        "train.head": "quantum",
        "best_val_acc": 0.9,
        "best_val_loss": 0.3,
        "best_epoch": 4,
        "last_val_acc": 0.8,
        "last_val_loss": 0.4,
    }
