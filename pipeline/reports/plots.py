"""Plots of a trained run folder: validation prediction grid, curves, confusion matrix.

Reads a folder written by ``pipeline.train_head`` (:mod:`pipeline.reports.run_folder`), without
torch, and writes ``predictions.png``, ``curves.png`` and ``confusion.png`` into ``<run>/plots/``
with matplotlib's Agg renderer. Images for the grid are found by fingerprint
(:func:`pipeline.reports.run_folder.find_images`); when missing, the grid is skipped with one
warning. PNGs have fixed pixel sizes and no time stamp, so the same run gives the same bytes.
"""

from __future__ import annotations

import logging
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.common import files
from pipeline.common.config import Params, ReportConfig
from pipeline.common.errors import BadImageError, DataError
from pipeline.reports.figures import FAINT, RIGHT, WRONG, default_style, figure, png_bytes
from pipeline.reports.run_folder import Run, find_images, load_run
from pipeline.sources.images import load_rgb
from pipeline.store.hdf5 import RANDOM_INIT_WARNING

log = logging.getLogger("pipeline")

PLOTS = ("predictions.png", "curves.png", "confusion.png")
TILE_SIZE = (2.4, 2.6)  # inches per grid image, its two title lines and file name included
GRID_HEADER = 1.0  # inches above the grid for the figure's title
GRID_MIN_WIDTH = 7.2  # inches: room for the title when the grid has few columns
CURVES_FIGSIZE = (11.0, 4.4)  # inches


@dataclass
class ReportResult:
    """The plots written, and the ones skipped with the reason."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- layout


def select(n_total: int, n: int, seed: int) -> list[int]:
    """A fixed, seeded choice of ``min(n, n_total)`` row indices, in increasing order."""
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_total, size=min(n, n_total), replace=False))


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` images: as square as possible, wider than tall."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_figsize(n: int) -> tuple[float, float]:
    """Size in inches of ``predictions.png`` for ``n`` images."""
    rows, cols = grid_shape(n)
    return max(cols * TILE_SIZE[0], GRID_MIN_WIDTH), rows * TILE_SIZE[1] + GRID_HEADER


def confusion_figsize(n_classes: int) -> tuple[float, float]:
    """Size in inches of ``confusion.png`` for ``n_classes`` classes."""
    return max(5.6, 0.8 * n_classes + 3.2), max(4.8, 0.8 * n_classes + 2.4)


# ----------------------------------------------------------------------------- drawing


def _thumbnail(path: Path, max_px: int) -> np.ndarray:
    image = load_rgb(path, at_least=max_px)
    image.thumbnail((max_px, max_px))
    return np.asarray(image)


def _short(name: str, limit: int) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def draw_predictions(run: Run, data_dir: str | Path, cfg: ReportConfig):
    """The grid of validation images with predicted and true labels (a matplotlib Figure)."""
    chosen = select(len(run.predictions), cfg.n_images, cfg.seed)
    rows, cols = grid_shape(len(chosen))
    width, height = grid_figsize(len(chosen))
    fig = figure((width, height), cfg.dpi)
    # Fixed gaps in inches between the image cells: two title lines above, a file name below.
    gap_w, gap_h, top, bottom, side = 0.15, 0.72, 0.48, 0.22, 0.2
    grid_w, grid_h = cols * TILE_SIZE[0] - 2 * side, rows * TILE_SIZE[1] - top - bottom
    cell_w, cell_h = (grid_w - (cols - 1) * gap_w) / cols, (grid_h - (rows - 1) * gap_h) / rows
    left = (width - grid_w) / 2
    spec = fig.add_gridspec(
        rows,
        cols,
        left=left / width,
        right=(left + grid_w) / width,
        top=1 - (GRID_HEADER + top) / height,
        bottom=bottom / height,
        hspace=gap_h / cell_h,
        wspace=gap_w / cell_w,
    )
    max_px = round(TILE_SIZE[0] * cfg.dpi * 1.5)
    wrong = 0
    for slot, index in enumerate(chosen):
        ax = fig.add_subplot(spec[slot // cols, slot % cols])
        wrong += not _draw_tile(ax, run.predictions[index], Path(data_dir), max_px)
    best = run.metrics["best"]
    n_val = len(run.predictions)
    fig.text(
        0.5,
        1 - 0.22 / height,
        f"Validation predictions of the {run.head} head (best epoch {run.best_epoch})",
        ha="center",
        va="top",
        fontsize=14,
        fontweight="bold",
    )
    fig.text(
        0.5,
        1 - 0.55 / height,
        f"{len(chosen)} of {n_val} images (seed {cfg.seed}), {wrong} wrong (red, ✗); "
        f"val accuracy {best['val_acc']:.1%} over all {n_val}",
        ha="center",
        va="top",
        fontsize=10,
    )
    if run.random_init:
        note = textwrap.fill(RANDOM_INIT_WARNING, 100)
        fig.text(0.5, 1 - 0.78 / height, note, ha="center", va="top", fontsize=7, color=WRONG)
    return fig


def _draw_tile(ax, row: dict[str, str], data_dir: Path, max_px: int) -> bool:
    """One validation image with its predicted and true class; True when it is right."""
    ax.set_xticks([])
    ax.set_yticks([])
    path = data_dir / row["path"]
    try:
        ax.imshow(_thumbnail(path, max_px))
    except BadImageError as exc:
        missing = not path.exists()
        log.warning("predictions.png: %s", f"no file {path}" if missing else exc)
        ax.set_facecolor("#eeeeee")
        text = "image not found" if missing else "image not readable"
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, transform=ax.transAxes)
        ax.set_aspect("equal")
    correct = row["predicted"] == row["actual"]
    color = RIGHT if correct else WRONG
    ax.set_title(
        f"{'✓' if correct else '✗'} {_short(row['predicted'], 16)} "
        f"{float(row['probability']):.2f}\ntrue: {_short(row['actual'], 16)}",
        fontsize=10,
        color=color,
        fontweight="normal" if correct else "bold",
        pad=4,
    )
    ax.set_xlabel(_short(Path(row["path"]).name, 30), fontsize=7, color=FAINT, labelpad=2)
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(1.0 if correct else 4.0)
    return correct


def draw_curves(run: Run, cfg: ReportConfig):
    """Loss and accuracy per epoch, train against val, with the best epoch marked."""
    from matplotlib.ticker import MaxNLocator  # matplotlib: only when drawing

    fig = figure(CURVES_FIGSIZE, cfg.dpi, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [int(r["epoch"]) for r in run.history]
    best = next((r for r in run.history if int(r["epoch"]) == run.best_epoch), run.history[-1])
    marker = dict(marker="o", markersize=3 if len(epochs) <= 60 else 0)
    lr_steps = [
        int(b["epoch"])
        for a, b in zip(run.history, run.history[1:], strict=False)
        if not math.isclose(a["lr"], b["lr"])
    ]
    for ax, key, title, ylabel in (
        (ax_loss, "loss", "Loss", "cross entropy"),
        (ax_acc, "acc", "Accuracy", "fraction correct"),
    ):
        ax.plot(epochs, [r[f"train_{key}"] for r in run.history], label="train", **marker)
        ax.plot(epochs, [r[f"val_{key}"] for r in run.history], label="val", **marker)
        for i, epoch in enumerate(lr_steps):
            ax.axvline(
                epoch - 0.5,
                color=FAINT,
                linestyle=":",
                linewidth=0.8,
                label="learning rate step" if i == 0 else None,
            )
        ax.axvline(
            run.best_epoch,
            color=FAINT,
            linestyle="--",
            linewidth=1.2,
            label=f"best epoch {run.best_epoch}",
        )
        ax.plot([run.best_epoch], [best[f"val_{key}"]], marker="*", markersize=14, color="C1")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.annotate(
        f"val {best['val_acc']:.1%}",
        (run.best_epoch, best["val_acc"]),
        xytext=(6, -14),
        textcoords="offset points",
        fontsize=9,
        color="C1",
    )
    title = f"Training of the {run.head} head: {len(epochs)} epochs"
    if run.random_init:
        title += "\n" + textwrap.fill(RANDOM_INIT_WARNING, 120)
    fig.suptitle(title, fontsize=13 if not run.random_init else 10)
    return fig


def draw_confusion(run: Run, cfg: ReportConfig):
    """The best epoch's confusion matrix on val: counts, row shares and class names."""
    confusion = np.asarray(run.metrics["best"]["confusion"], dtype=np.int64)
    k = len(run.class_names)
    fig = figure(confusion_figsize(k), cfg.dpi, layout="constrained")
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues", vmin=0, vmax=max(int(confusion.max()), 1))
    totals = confusion.sum(axis=1)
    size = 14 if k <= 4 else 11 if k <= 8 else 9
    for i in range(k):
        for j in range(k):
            count = int(confusion[i, j])
            share = count / totals[i] if totals[i] else 0.0
            dark = count > confusion.max() / 2
            ax.text(
                j,
                i,
                f"{count}\n{share:.0%}",
                ha="center",
                va="center",
                fontsize=size,
                color="white" if dark else "black",
                linespacing=1.3,
            )
    labels = [_short(c, 14) for c in run.class_names]
    ax.set_xticks(range(k), labels, rotation=30 if k > 3 else 0, ha="right" if k > 3 else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted", fontsize=11)
    ax.set_ylabel("actual", fontsize=11)
    n = int(confusion.sum())
    correct = int(np.trace(confusion))
    ax.set_title(
        f"accuracy {correct / max(n, 1):.1%} ({correct} of {n}); "
        "each cell: count, % of its actual class",
        fontsize=9,
    )
    fig.suptitle(f"Confusion matrix, val, best epoch {run.best_epoch}", fontsize=12)
    return fig


# ----------------------------------------------------------------------------- the command


def _grid_images(run: Run, data_dir: str | Path | None) -> tuple[Path | None, str | None]:
    """(the folder of the run's images, None), or (None, why the grid cannot be drawn)."""
    if not run.predictions:
        return None, "val_predictions.csv has no rows"
    try:
        return find_images(run, data_dir), None
    except DataError as exc:
        return None, str(exc)


def report(
    params: Params, out_dir: str | Path | None = None, data_dir: str | Path | None = None
) -> ReportResult:
    """Draw the plots into ``<out_dir>/plots`` (default ``params.out_dir``).

    ``data_dir``: where the run's images are now, if not where their features recorded.

    Raises:
        PipelineError: the run folder or one of its files is missing or malformed.
    """
    run = load_run(out_dir if out_dir is not None else params.out_dir)
    cfg = params.report
    plots = run.path / "plots"
    result = ReportResult()
    if run.random_init:
        log.warning("%s", RANDOM_INIT_WARNING)
    with default_style():
        images, reason = _grid_images(run, data_dir)
        if images is not None:
            log.info("predictions.png: the images of the run's features are in %s", images)
            figures = {"predictions.png": draw_predictions(run, images, cfg)}
        else:
            log.warning("skipping predictions.png: %s", reason)
            result.skipped["predictions.png"] = reason
            stale = plots / "predictions.png"
            if stale.exists():
                stale.unlink()
                log.info("removed the old %s", stale)
            figures = {}
        figures["curves.png"] = draw_curves(run, cfg)
        figures["confusion.png"] = draw_confusion(run, cfg)
        for name, fig in figures.items():
            # zlib level 1: far faster than the default 6, for slightly larger files
            files.write_bytes(plots / name, png_bytes(fig, cfg.dpi, compress_level=1))
            result.written.append(plots / name)
    log.info("wrote %s", ", ".join(str(p) for p in result.written))
    return result
