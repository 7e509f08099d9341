"""Benchmark the user's loop: one DVC experiment against one head (run by hand).

    python benchmarks/experiment.py [--data ../shared/data/hymenoptera_data] [--repeats 3]

Copies the project's pipeline (``pipeline/``, ``circuits/``, ``dvc.yaml``, ``params.yaml``, the
DVC config) and the real image set into a temporary git repository, with ``extract.weights:
none`` (no download; timing does not depend on the weights' values), runs ``dvc repro`` and
commits it, as docs/dvc.md says. Then, ``--repeats`` times (``q_depth`` 3, 4, ...):

* one 30-epoch ``python -m pipeline.train_head`` process with that depth (the head the
  experiment trains), its output outside the project;
* ``dvc exp run -S train.q_depth=<depth>``: the whole default pipeline (the head, its report
  and evaluation, and the compare stage);
* their ratio, and the seconds of each stage's process inside the experiment (recorded by a
  ``sitecustomize`` hook on ``PYTHONPATH``, from interpreter start to exit); the rest is DVC.
  Wall and CPU seconds both: on a shared host the CPU seconds (of a process and all its
  descendants) depend less on what else runs.

After each experiment, its floor as a multiple of the head: DVC's own seconds in it plus three
``import torch`` (train_head, compare and evaluate each import it in their own process); and
``dvc exp run`` with nothing to run. Last, the seconds of ``python -m pipeline.<command>
--help`` for every command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config"]
#: Appends ``{"command": ..., "seconds": ...}`` to $STAGE_LOG when a pipeline command exits.
HOOK = """
import atexit, json, os, sys, time
_start = time.perf_counter()
def _record():
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    if os.path.basename(os.path.dirname(sys.argv[0] or ".")) == "pipeline":
        with open(os.environ["STAGE_LOG"], "a") as fh:
            fh.write(json.dumps({"command": name[:-3], "seconds": time.perf_counter() - _start,
                                 "cpu": time.process_time(), "argv": sys.argv[1:]}) + "\\n")
if os.environ.get("STAGE_LOG"):
    atexit.register(_record)
"""


class Project:
    def __init__(self, root: Path, hooks: Path):
        self.root, self.log = root, hooks / "stages.jsonl"
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        git = {f"GIT_{who}_{what}": v for who in ("AUTHOR", "COMMITTER")
               for what, v in (("NAME", "b"), ("EMAIL", "b@x"))}  # fmt: skip
        self.env = {**os.environ, **git, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(hooks),
                    "STAGE_LOG": str(self.log), "PATH": path}  # fmt: skip
        (hooks / "sitecustomize.py").write_text(HOOK)

    def run(self, *cmd: str) -> tuple[float, str, list[dict]]:
        """(wall seconds, output, the pipeline processes it ran with their seconds); the CPU
        seconds of the command and all its descendants in ``self.cpu``."""
        self.log.write_text("")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        stages = [json.loads(line) for line in self.log.read_text().splitlines()]
        return seconds, proc.stdout + proc.stderr, stages

    def dvc(self, *args: str) -> tuple[float, str, list[dict]]:
        return self.run(sys.executable, "-m", "dvc", *args)


def project(root: Path, data: Path, hooks: Path) -> Project:
    """A copy of the project with the real images in data/ and random-init weights."""
    for folder in ("pipeline", "circuits"):  # circuits: a dependency of train_head and compare
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__py*"))
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(data, root / "data" / "hymenoptera_data")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["extract"]["weights"] = "none"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = Project(root, hooks)
    p.run("git", "init", "-q")
    p.run("git", "add", "-A")
    p.run("git", "commit", "-qm", "project")
    return p


def _stages(out: str, processes: list[dict]) -> str:
    """``stage wall/cpu`` seconds of each stage that ran."""
    ran = re.findall(r"Running stage '([^']+)'", out)
    by_name = {p["command"]: p for p in processes}
    nan = {"seconds": float("nan"), "cpu": float("nan")}
    return ", ".join(
        f"{s} {by_name.get(s, nan)['seconds']:.1f}/{by_name.get(s, nan)['cpu']:.1f}" for s in ran
    )


def _floor(p: Project, head: float, head_cpu: float, dvc: float, dvc_cpu: float) -> str:
    """What the experiment costs besides its stages' own work, as multiples of one head: DVC's
    own seconds in it, and the ``import torch`` that three of its four stages (train_head,
    compare, evaluate) each pay in their own process; and ``dvc exp run`` with nothing to run."""
    noop, _, _ = p.dvc("exp", "run")
    noop_cpu = p.cpu
    imp, _, _ = p.run(sys.executable, "-c", "import torch")
    imp_cpu = p.cpu
    floor, floor_cpu = (dvc + 3 * imp) / head, (dvc_cpu + 3 * imp_cpu) / head_cpu
    return (f"  floor: import torch {imp:.1f} s ({imp_cpu:.1f} s CPU); (DVC + 3 imports) / one "
            f"head {floor:.2f} wall, {floor_cpu:.2f} CPU; dvc exp run with nothing to run "
            f"{noop:.1f} s ({noop_cpu:.1f} s CPU)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/hymenoptera_data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, hooks, heads = Path(tmp) / "project", Path(tmp) / "hooks", Path(tmp) / "heads"
        hooks.mkdir()
        p = project(root, args.data, hooks)
        seconds, out, processes = p.dvc("repro")
        print(f"first dvc repro: {seconds:.1f} s ({_stages(out, processes)})")
        p.run("git", "add", "-A")
        p.run("git", "commit", "-qm", "baseline")
        ratios = []
        for i in range(args.repeats):
            depth = 3 + i
            one = ["--set", f"train.q_depth={depth}", "--set", f"train.out_dir={heads}"]
            head, _, _ = p.run(sys.executable, "-m", "pipeline.train_head", *one)
            head_cpu = p.cpu
            seconds, out, processes = p.dvc("exp", "run", "-S", f"train.q_depth={depth}")
            dvc_seconds = seconds - sum(s["seconds"] for s in processes)
            dvc_cpu = p.cpu - sum(s["cpu"] for s in processes)
            ratios.append((seconds / head, p.cpu / head_cpu))
            print(f"q_depth={depth}: train_head {head:.1f} s ({head_cpu:.1f} s CPU); dvc exp run "
                  f"{seconds:.1f} s ({p.cpu:.1f} s CPU); ratio {seconds / head:.2f} (CPU "
                  f"{p.cpu / head_cpu:.2f}); stages, wall/CPU s: {_stages(out, processes)}, "
                  f"DVC {dvc_seconds:.1f}/{dvc_cpu:.1f}")  # fmt: skip
            print(_floor(p, head, head_cpu, dvc_seconds, dvc_cpu))
        wall, cpu = [r[0] for r in ratios], [r[1] for r in ratios]
        print(f"ratio over {len(ratios)} experiments: wall {min(wall):.2f} to {max(wall):.2f}, "
              f"CPU {min(cpu):.2f} to {max(cpu):.2f}")  # fmt: skip
        commands = sorted(f.stem for f in (REPO / "pipeline").glob("*.py") if f.stem != "__init__")
        helps = {c: p.run(sys.executable, "-m", f"pipeline.{c}", "--help")[0] for c in commands}
        print("--help: " + ", ".join(f"{c} {s:.2f} s" for c, s in helps.items()))


if __name__ == "__main__":
    main()
