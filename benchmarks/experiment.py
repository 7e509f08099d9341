"""Benchmark the user's loop: one DVC experiment after a full ``dvc repro`` (run by hand).

    python benchmarks/experiment.py [--data ../shared/data/hymenoptera_data] [--repeats 2]

Copies the project's pipeline (``pipeline/``, ``dvc.yaml``, ``params.yaml``, the DVC config) and
the real image set into a temporary git repository, with ``extract.weights: none`` (no
download; timing does not depend on the weights' values), runs ``dvc repro`` and commits it,
as docs/dvc.md says, then times ``dvc exp run -S train.q_depth=3`` (the
whole default pipeline: the head, its report and evaluation, and the compare stage's 15 heads)
and prints which stages ran.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config"]


def _run(cwd: Path, *cmd: str) -> tuple[float, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:"
           f"{os.environ.get('PATH', '')}", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout + proc.stderr


def project(root: Path, data: Path) -> None:
    """A copy of the project with the real images in data/ and random-init weights."""
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__py*"))
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(data, root / "data" / "hymenoptera_data")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["extract"]["weights"] = "none"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(root, "git", "init", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "project")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/hymenoptera_data")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, args.data)
        seconds, out = _run(root, sys.executable, "-m", "dvc", "repro")
        print(f"first dvc repro: {seconds:.1f} s ({', '.join(_stages(out))})")
        _run(root, "git", "add", "-A")
        _run(root, "git", "commit", "-qm", "baseline")
        for i in range(args.repeats):
            depth = 3 + i
            seconds, out = _run(root, sys.executable, "-m", "dvc", "exp", "run", "-S",
                                f"train.q_depth={depth}")  # fmt: skip
            print(f"dvc exp run -S train.q_depth={depth}: {seconds:.1f} s "
                  f"({', '.join(_stages(out))})")  # fmt: skip


def _stages(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


if __name__ == "__main__":
    main()
