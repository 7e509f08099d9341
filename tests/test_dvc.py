"""The DVC pipeline end to end: real DVC on a copy of the project, a tiny image folder, offline."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.store import hdf5

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
]

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DVC_NO_ANALYTICS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    env.pop("PYTHONPATH", None)
    return env


class Project:
    def __init__(self, root: Path):
        self.root = root

    def run(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(cmd, cwd=self.root, env=_env(), capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
        return out

    def dvc(self, *args: str) -> str:
        return self.run(sys.executable, "-m", "dvc", *args)

    def ran(self, *args: str) -> set[str]:
        """Run a dvc command; return the names of the stages it ran."""
        return set(re.findall(r"Running stage '([^']+)'", self.dvc(*args)))

    def set_params(self, **blocks) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for block, values in blocks.items():
            params[block].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory, image_folder) -> Project:
    root = tmp_path_factory.mktemp("dvc-project")
    shutil.copytree(
        REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    image_folder(root / "data" / "tiny")
    p = Project(root)
    p.set_params(
        data={"dir": "data/tiny", "url": "http://127.0.0.1:9/unreachable.zip"},
        extract={"weights": "none", "workers": 0, "batch_size": 4},
        train={"epochs": 2},
        compare={"heads": ["quantum", "linear"], "seeds": [0]},
    )
    p.run("git", "init", "-q")
    p.run("git", "add", "-A")
    p.run("git", "commit", "-qm", "project copy")
    return p


def test_pipeline_end_to_end(project: Project):
    stages = {
        "fetch_data",
        "extract",
        "train_head",
        "report",
        "compare",
        "evaluate",
    }
    # 1. everything runs; fetch_data finds the data folder already there (no download)
    assert project.ran("repro") == stages
    store = project.root / "features" / "hymenoptera-resnet18.h5"
    assert hdf5.verify(store).weights == "none"
    summary = (project.root / "runs" / "compare" / "summary.md").read_text()
    assert "| quantum |" in summary and "| linear |" in summary and "RANDOM-INIT" in summary

    plots = json.loads(project.dvc("plots", "show", "--json"))["data"]
    assert {"loss", "accuracy", "confusion"} <= set(plots)
    assert any(k.endswith("plots/predictions.png") for k in plots)
    assert any(k.endswith("plots/robustness.png") for k in plots)
    robustness = (project.root / "runs" / "head" / "robustness.csv").read_text().splitlines()
    assert len(robustness) == 1 + 16  # the default grid: 4 shot settings x 4 noise levels

    # 2. a second repro runs nothing
    assert project.ran("repro") == set()

    # 3. a train.* change re-runs the heads, never fetch_data or extract
    project.set_params(train={"lr": 0.001})
    ran = project.ran("repro")
    assert "train_head" in ran and {"fetch_data", "extract"}.isdisjoint(ran)
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert lock["stages"]["train_head"]["params"]["params.yaml"]["train"]["lr"] == 0.001
    # train.head is set per run by compare: changing it re-runs train_head (and its report) alone
    project.set_params(train={"head": "linear"})
    assert project.ran("repro") == {"train_head", "report", "evaluate"}

    # 4. an extract.* change that leaves the features byte-identical re-runs only extract
    before = store.read_bytes()
    project.set_params(extract={"batch_size": 3})
    assert project.ran("repro") == {"extract"}
    assert store.read_bytes() == before
    # ... and one that changes them re-runs extract and then the heads
    project.set_params(extract={"seed": 1})
    ran = project.ran("repro")
    assert {"extract", "train_head", "compare"} <= ran and "fetch_data" not in ran
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "settled")

    # 5. an experiment reuses the features
    out = project.dvc("exp", "run", "-S", "train.epochs=1")
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert "train_head" in ran and "extract" not in ran
    metrics = json.loads((project.root / "runs" / "head" / "metrics.json").read_text())
    assert metrics["last"]["epoch"] == 1

    # 6. metrics show prints the val accuracy; exp show lists the experiment
    shown = project.dvc("metrics", "show")
    assert "best.val_acc" in shown and "last.val_acc" in shown
    assert "exact_accuracy" in shown and "accuracy.p=0.01 1000 shots" in shown
    header, *rows = csv.reader(io.StringIO(project.dvc("exp", "show", "--csv")))
    assert {"best.val_acc", "train.epochs"} <= set(header)
    epochs = [row[header.index("train.epochs")] for row in rows]
    assert "1" in epochs and "2" in epochs  # the experiment and the baseline
