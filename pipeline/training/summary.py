"""Mean ± std over seeds: the one table that compares settings across runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.common import files

DEFAULT_METRICS = ("best_val_acc", "last_val_acc")
#: Columns that hold results, never settings.
RESULT_COLUMNS = (
    "best_val_acc",
    "best_val_loss",
    "best_epoch",
    "last_val_acc",
    "last_val_loss",
    "wall_time_s",
)


def run_record(settings: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings and the headline numbers of its ``metrics.json`` as one row."""
    return {
        **settings,
        "best_val_acc": metrics["best"]["val_acc"],
        "best_val_loss": metrics["best"]["val_loss"],
        "best_epoch": metrics["best"]["epoch"],
        "last_val_acc": metrics["last"]["val_acc"],
        "last_val_loss": metrics["last"]["val_loss"],
    }


def summarize(
    runs: Iterable[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    over: Sequence[str] = ("train.seed",),
    settings: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Group runs by ``settings`` (default: every column not a metric, result or in ``over``).

    Returns one dict per group, in first-seen order: the settings, ``n``, and per metric
    ``{"mean": ..., "std": ...}`` (sample std; 0 for one run).
    """
    runs = list(runs)
    if settings is None:
        skip = set(metrics) | set(over) | set(RESULT_COLUMNS)
        settings = []
        for run in runs:
            settings += [k for k in run if k not in skip and k not in settings]
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run.get(k) for k in settings), []).append(run)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(settings, key, strict=True))
        row["n"] = len(members)
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric) is not None]
            row[metric] = {
                "mean": statistics.fmean(values) if values else math.nan,
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            }
        rows.append(row)
    return rows


def to_markdown(
    rows: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    digits: int = 4,
) -> str:
    """A Markdown table: one line per group, ``mean ± std`` per metric."""
    if not rows:
        return "_no runs_\n"
    settings = [k for k in rows[0] if k not in metrics and k != "n"]
    header = [*settings, "n", *(f"{m} (mean ± std)" for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[k]) for k in settings] + [str(row["n"])]
        cells += [f"{row[m]['mean']:.{digits}f} ± {row[m]['std']:.{digits}f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    title: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    note: str = "",
    warning: str = "",
) -> tuple[Path, Path]:
    """Write ``summary.md`` (``warning`` in bold on top) and ``summary.json`` atomically."""
    out = Path(out_dir)
    md = f"# {title}\n\n" + (f"**{warning}**\n\n" if warning else "")
    md += to_markdown(rows, metrics=metrics) + (f"\n{note}\n" if note else "")
    js = files.json_text(list(rows))
    files.write_all({out / "summary.md": md.encode(), out / "summary.json": js.encode()})
    return out / "summary.md", out / "summary.json"
