"""Commands import only what they use: ``--help`` of every command and ``report``'s real work
run without torch, each in a fresh process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = sorted(p.stem for p in (REPO / "pipeline").glob("*.py") if p.stem != "__init__")
#: Runs ``python -m pipeline.<argv[1]> <argv[2:]>`` in this process, then prints the heavy
#: modules it imported.
RUN_AND_LIST = """
import contextlib, io, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module(f"pipeline.{sys.argv[0]}", run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
heavy = ("torch", "torchvision", "pennylane", "dask", "distributed")
print(code, *sorted(m for m in heavy if m in sys.modules))
"""


def _heavy_imports(command: str, *args: str, cwd: Path = REPO) -> tuple[int, set[str]]:
    """(exit code, heavy modules loaded) of a command run in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, command, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    code, *modules = proc.stdout.split()
    return int(code), set(modules)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_imports_no_torch(command):
    assert _heavy_imports(command, "--help") == (0, set())


def test_report_draws_without_torch_and_the_check_sees_torch_when_it_is_used(
    tiny_run, tiny_root, tmp_path
):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  dir: {tiny_root}\ntrain:\n  out_dir: {run}\n")
    assert _heavy_imports("report", "--params", str(params)) == (0, set())
    assert sorted(p.name for p in (run / "plots").iterdir()) == [
        "confusion.png", "curves.png", "predictions.png"
    ]  # fmt: skip
    # a folder of an older version, without run.json: model.pt is read, and torch with it
    (run / "run.json").unlink()
    code, modules = _heavy_imports("report", "--params", str(params))
    assert code == 0 and "torch" in modules
