"""The DVC pipeline end to end: real DVC on a copy of the project, a tiny image folder, offline."""

from __future__ import annotations

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


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
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

    def run(self, *cmd: str, check: bool = True, **env: str) -> str:
        proc = subprocess.run(cmd, cwd=self.root, env=_env(**env), capture_output=True, text=True)
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


def _copy_project(root: Path, image_folder, **params) -> Project:
    """A copy of the project (code, dvc.yaml, params.yaml) with a tiny image folder, offline
    settings and ``params``, committed to a fresh git repository: a fresh clone."""
    for folder in ("pipeline", "circuits"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    image_folder(root / "data" / "tiny")
    p = Project(root)
    p.set_params(
        data={"dir": "data/tiny", "url": "http://127.0.0.1:9/unreachable.zip"},
        extract={"weights": "none", "workers": 0, "batch_size": 4},
        **params,
    )
    p.run("git", "init", "-q")
    p.run("git", "add", "-A")
    p.run("git", "commit", "-qm", "project copy")
    return p


@pytest.fixture(scope="module")
def project(tmp_path_factory, image_folder) -> Project:
    return _copy_project(
        tmp_path_factory.mktemp("dvc-project"),
        image_folder,
        train={"epochs": 1},
        compare={"heads": ["quantum", "linear"], "seeds": [0]},
    )


def test_pipeline_end_to_end(project: Project, readme):
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

    # 1b. the experiment block of docs/dvc.md, then back to the baseline it committed
    _readme_experiments(project, readme)
    project.run("git", "checkout", "--", ".")
    project.dvc("checkout")

    # 2. a second repro (at the baseline again) runs nothing
    assert project.ran("repro") == set()

    # 2b. editing a circuit file re-runs the heads (train.circuit may name it), not extract
    ring = project.root / "circuits" / "ring.py"
    ring.write_text(ring.read_text() + "# edited\n")
    ran = project.ran("repro")
    assert {"train_head", "compare"} <= ran and {"fetch_data", "extract"}.isdisjoint(ran)

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


def _shell_commands(block: str) -> list[str]:
    """The commands of a documented bash block: continuation lines joined, comments left out."""
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _readme_experiments(project: Project, readme) -> None:
    """Run the experiment block of docs/dvc.md as written, on a fresh clone after `dvc repro`:
    every command works in order, --queue and --run-all included, and its `exp show` table
    fits in 120 columns."""
    outputs = {}
    block = readme("## Experiments reuse the features", "bash", page="docs/dvc.md")
    for command in _shell_commands(block):
        outputs[command] = project.run("bash", "-c", command, COLUMNS="120")
    assert "Failed to reproduce" not in "".join(outputs.values())
    (table,) = [out for cmd, out in outputs.items() if cmd.startswith("dvc exp show")]
    lines = table.strip("\n").splitlines()
    assert max(len(line) for line in lines) <= 120 and "…" not in table, table
    header = lines[1].split()
    assert header[:3] == ["Experiment", "best.val_acc", "last.val_acc"], table
    assert {"train.q_depth", "train.lr"} <= set(header), table
    assert "Created" not in header and not any(h.startswith("pipeline/") for h in header)
    rows = [line.split() for line in lines[3:-1]]  # between the borders
    column = {name: i - len(header) for i, name in enumerate(header)}  # from the right
    settings = {(row[column["train.q_depth"]], row[column["train.lr"]]): row for row in rows}
    # the baseline, the workspace experiment and the two queued ones, with their metrics
    assert {("6", "0.0004"), ("3", "0.0004"), ("2", "0.0004"), ("3", "0.001")} <= set(settings)
    for queued in (("2", "0.0004"), ("3", "0.001")):
        assert re.fullmatch(r"[01](\.\d+)?", settings[queued][column["best.val_acc"]]), table
    (metrics,) = [out for cmd, out in outputs.items() if cmd.startswith("dvc metrics show")]
    assert "best.val_acc" in metrics and "last.val_acc" in metrics
    assert "exact_accuracy" in metrics and "accuracy.p=0.01 1000 shots" in metrics
