"""The README's Python API example runs as written (on a small store and head)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs(readme, tiny_run, tiny_store, tmp_path, monkeypatch, capsys):
    code = readme("## Python API", "python")
    shutil.copytree(tiny_run, tmp_path / "runs" / "head")
    (tmp_path / "features").mkdir()
    shutil.copy(tiny_store, tmp_path / "features" / "hymenoptera-resnet18.h5")
    monkeypatch.chdir(tmp_path)  # the example's paths are the pipeline's defaults
    exec(compile(code, "README.md (Python API)", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\['ants', 'bees'\] val accuracy [01]\.\d{3}", out[0])
    assert out[1].startswith("val/ants/g_rgb.png -> ")
    assert out[2] == "torch.Size([8, 2])"
