"""A sweep's folder between its runs: each finished run's row kept at once, so a killed sweep
loses no run, and models without an ok row removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.common import files

log = logging.getLogger("pipeline")

ROWS_DIR = ".rows"
RUNS_DIR = "runs"
MODEL = "model.pt"


def model_path(out: str | Path, run_id: str) -> Path:
    """Where a sweep with ``--save-models`` writes the model of run ``run_id``."""
    return Path(out) / RUNS_DIR / run_id / MODEL


def write_pending(out: str | Path, row: Mapping[str, str]) -> None:
    """Keep one finished run's row until the sweep folds it into ``results.csv``."""
    files.write_text(Path(out) / ROWS_DIR / f"{row['run_id']}.json", json.dumps(dict(row)))


def read_pending(out: str | Path) -> list[dict[str, str]]:
    """The pending rows under ``out``; unreadable ones and temporary files are removed."""
    folder = Path(out) / ROWS_DIR
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            ok = isinstance(row, dict) and row.get("run_id") == path.stem
        except (OSError, ValueError):
            ok = False
        if ok and all(isinstance(v, str) for v in row.values()):
            rows.append(row)
        else:
            log.warning("removing %s: not a row of this sweep", path)
            path.unlink()
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        path.unlink()
    return rows


def remove_pending(out: str | Path, run_ids: Iterable[str]) -> None:
    """Remove the pending rows of ``run_ids`` (now in ``results.csv``)."""
    for run_id in run_ids:
        (Path(out) / ROWS_DIR / f"{run_id}.json").unlink(missing_ok=True)


def remove_rows_dir(out: str | Path) -> None:
    """Remove the folder of pending rows once it is empty (no worker is running)."""
    with contextlib.suppress(OSError):
        (Path(out) / ROWS_DIR).rmdir()


def remove_orphans(out: str | Path, ok_ids: set[str]) -> int:
    """Remove models whose run has no ok row, and temporary files; return how many models."""
    runs = Path(out) / RUNS_DIR
    removed = 0
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink()
        if folder.name not in ok_ids:
            removed += (folder / MODEL).exists()
            shutil.rmtree(folder)
    if removed:
        log.info(
            "removed %d models under %s without a row in results.csv (left by a sweep that "
            "stopped); their runs are trained again",
            removed,
            runs,
        )
    return removed


def missing_models(out: str | Path, run_ids: Iterable[str]) -> set[str]:
    """The runs among ``run_ids`` whose model is not on disk."""
    return {i for i in run_ids if not model_path(out, i).is_file()}
