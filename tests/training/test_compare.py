from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.common.config import CompareConfig, Params, TrainConfig
from pipeline.common.errors import ConfigError, PipelineError
from pipeline.training import compare
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]


def test_summary_of_heads_by_seed(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5")
    cfg = CompareConfig(heads=("quantum", "linear"), seeds=(0, 1), dir=str(tmp_path / "cmp"))
    for head in cfg.heads:
        for seed in cfg.seeds:
            train_head(
                Params(
                    train=TrainConfig(
                        features=str(store),
                        head=head,
                        seed=seed,
                        epochs=2,
                        out_dir=f"{cfg.dir}/runs/{head}-seed{seed}",
                    )
                )
            )
    rows = compare.compare_summary(cfg)
    assert [(r["train.head"], r["n"]) for r in rows] == [("quantum", 2), ("linear", 2)]
    text = (tmp_path / "cmp" / "summary.md").read_text()
    assert "| quantum | 2 |" in text and "0.9673" in text
    assert (tmp_path / "cmp" / "summary.json").is_file()
    # a seed that was never run is an error naming it
    with pytest.raises(PipelineError, match=r"no finished run .* for quantum/seed 7"):
        compare.compare_summary(dataclasses.replace(cfg, seeds=(0, 7)))


@pytest.mark.members
def test_compare_trains_every_head_and_seed_in_one_process_as_single_runs_would(
    synthetic_store, tmp_path
):
    store = synthetic_store(tmp_path / "blobs.h5")
    params = Params(
        train=TrainConfig(features=str(store), epochs=2),
        compare=CompareConfig(heads=("quantum", "linear"), seeds=(0, 1), dir=str(tmp_path / "c")),
    )
    rows = compare.compare(params)
    assert [(r["train.head"], r["n"]) for r in rows] == [("quantum", 2), ("linear", 2)]
    # the summary made from memory is the one --summary-only makes from the written runs
    written = {n: (tmp_path / "c" / n).read_bytes() for n in ("summary.md", "summary.json")}
    assert compare.compare_summary(params.compare) == rows
    assert {n: (tmp_path / "c" / n).read_bytes() for n in written} == written
    for head in ("quantum", "linear"):
        for seed in (0, 1):
            run = compare.run_dir(params.compare, head, seed)
            assert sorted(p.name for p in run.iterdir()) == [
                "history.csv", "metrics.json", "model.pt", "run.json", "val_predictions.csv"
            ]  # fmt: skip
            train_head(
                dataclasses.replace(
                    params,
                    train=dataclasses.replace(
                        params.train, head=head, seed=seed, out_dir=str(tmp_path / "alone")
                    ),
                )
            )
            assert (run / "history.csv").read_text() == (
                tmp_path / "alone" / "history.csv"
            ).read_text()


def test_compare_config_checks():
    with pytest.raises(ConfigError, match=r"compare\.heads: expected a list of quantum"):
        CompareConfig(heads=("quantum", "svm"))
    with pytest.raises(ConfigError, match=r"compare\.seeds: expected distinct seeds"):
        CompareConfig(seeds=(1, 1))


def test_dvc_stages_track_exactly_the_train_keys_they_read():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    train_keys = {f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}
    assert "train" in stages["train_head"]["params"]  # the whole block
    per_run = {p for p in stages["compare"]["params"] if p.startswith("train.")}
    assert per_run == train_keys - {"train.head", "train.seed", "train.out_dir"}
