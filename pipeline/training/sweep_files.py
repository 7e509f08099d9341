"""A sweep's files: ``results.csv`` (its rows and header), ``summary.md``/``summary.json``, and
between runs each finished run's row kept at once, so a killed sweep loses no run, and models
without an ok row removed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common import files
from pipeline.common.config import TrainConfig, to_dict, value_text
from pipeline.common.errors import PipelineError
from pipeline.store.hdf5 import RANDOM_INIT_WARNING
from pipeline.training import summary
from pipeline.training.grid import NOT_SWEPT, Cell, keys

log = logging.getLogger("pipeline")

ROWS_DIR = ".rows"
RUNS_DIR = "runs"
MODEL = "model.pt"
METRIC_FIELDS = ("best_val_acc", "best_val_loss", "best_epoch", "last_val_acc", "last_val_loss")
#: The summary's mean ± std is over these grid keys.
OVER = ("train.seed",)
#: The summary's entry for a grid key that a run's head does not read.
NOT_READ = "n/a"


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


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back for one run."""

    index: int
    status: str  # "ok" or "failed"
    metrics: dict[str, Any] = field(default_factory=dict)  # METRIC_FIELDS
    wall_time_s: float = 0.0
    error: str = ""
    loaded: bool = False  # its task read the feature file (the first task of its process)
    worker: str = ""  # host:pid


def columns(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The header of ``results.csv``: grid keys first, then the other ``train`` keys."""
    varied = keys(grid)
    others = [
        f"train.{f.name}"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in NOT_SWEPT and f"train.{f.name}" not in varied
    ]
    return [
        "run_id",
        "status",
        *varied,
        *others,
        "features_sha256",
        *METRIC_FIELDS,
        "wall_time_s",
        "error",
    ]


def result_row(cell: Cell, outcome: Outcome) -> dict[str, str]:
    settings = {k: value_text(v) for k, v in cell.settings.items()}  # grid keys of other blocks
    settings |= {f"train.{k}": value_text(v) for k, v in to_dict(cell.config).items()}
    return {
        "run_id": cell.run_id,
        "status": outcome.status,
        **settings,
        "features_sha256": cell.features_sha256,
        **{
            k: value_text(outcome.metrics[k]) if k in outcome.metrics else "" for k in METRIC_FIELDS
        },
        "wall_time_s": f"{outcome.wall_time_s:.3f}",
        "error": outcome.error,
    }


def read_results(path: Path) -> dict[str, dict[str, str]]:
    """The rows of an existing ``results.csv`` by ``run_id`` (empty if there is none)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "run_id" not in reader.fieldnames:
            raise PipelineError(
                f"{path} has no run_id column; expected a results.csv written by "
                "pipeline.sweep (move it away, or choose another --out)"
            )
        return {row["run_id"]: row for row in reader}


def write_results(path: Path, header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=header, restval="", extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(path, buf.getvalue())


def write_summary(
    grid: Mapping[str, Sequence[Any]],
    cells: Sequence[Cell],
    rows_by_id: Mapping[str, Mapping[str, str]],
    out: Path,
    failed: Sequence[tuple[dict[str, Any], str]],
) -> None:
    """summary.md and summary.json: :func:`pipeline.training.summary.summarize` of the ok runs."""
    records = []
    for cell in cells:
        row = rows_by_id[cell.run_id]
        if row["status"] == "ok":
            settings = {k: cell.settings.get(k, NOT_READ) for k in keys(grid)}
            records.append({**settings, **{m: float(row[m]) for m in METRIC_FIELDS}})
    group_by = [k for k in keys(grid) if k not in OVER]
    table = summary.summarize(records, over=OVER, settings=group_by)
    paths = sorted({c.config.features for c in cells})
    note = [
        f"{len(records)} of {len(cells)} runs; mean ± sample std over "
        f"{', '.join(OVER)}; features {', '.join(paths)}; per-run results in results.csv."
    ]
    if any(len(c.settings) < len(keys(grid)) for c in cells):
        note.append(
            f"{NOT_READ}: a grid key the run's head does not read (one run for all its values)."
        )
    if failed:
        note.append("")
        note.append(f"Failed runs ({len(failed)}, not in the table):")
        note += [
            f"- {', '.join(f'{k}={value_text(v)}' for k, v in s.items())}: {e}" for s, e in failed
        ]
    summary.write(
        table,
        out,
        title="Sweep over " + ", ".join(keys(grid)),
        note="\n".join(note),
        warning=RANDOM_INIT_WARNING if any(c.random_init for c in cells) else "",
    )
