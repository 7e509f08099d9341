"""The paper's spiral figure (Mari et al. 2020, fig. 3): per store, the data, then each run's
decision function ``tanh(logit_1 - logit_0)`` and held-out accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.common.errors import PipelineError
from pipeline.common.files import atomic_path
from pipeline.heads.checkpoint import load_checkpoint, trained_store
from pipeline.store.hdf5 import load, load_splits, read_meta

log = logging.getLogger("pipeline")

TITLES = {"quantum": "Dressed quantum", "classical": "Entirely classical", "linear": "Linear"}
GRID_MARGIN = 0.5  # beyond the data, as the notebook


@dataclass
class Panel:
    """One trained head, ready to draw."""

    run: Path
    title: str
    store: str
    model: torch.nn.Module
    dtype: torch.dtype
    accuracy: float


def load_run(run_dir: str | Path) -> Panel:
    """Load ``run_dir/model.pt``, checking its feature store is the one it was trained on."""
    run = Path(run_dir)
    model, ckpt = load_checkpoint(run / "model.pt")
    store = ckpt["features"]["path"]
    trained_store(
        run / "model.pt",
        ckpt["features"],
        None,
        advice="write it again (python -m pipeline.datasets spiral with the run's settings)",
    )
    if ckpt["in_features"] != 2:
        raise PipelineError(
            f"{run / 'model.pt'}: expected a head on 2-D points (the spiral benchmark); "
            f"got {ckpt['in_features']} input features"
        )
    dtype = next(model.parameters()).dtype
    val = load(store, "val")
    with torch.no_grad():
        logits = model(torch.as_tensor(val.features, dtype=dtype))
    accuracy = float((logits.argmax(1).numpy() == val.labels).mean())
    head = ckpt["config"]["head"]
    which = "final iterate" if ckpt.get("checkpoint") == "last" else "best epoch"
    title = f"{TITLES.get(head, head)}\n({which}, seed {ckpt['config']['seed']})"
    return Panel(run, title, store, model, dtype, accuracy)


def _row_label(store: str) -> str:
    meta = read_meta(store)
    turns = meta.extra.get("spiral", {}).get("turns")
    return f"turns {turns}" if turns is not None else Path(store).name


def plot(run_dirs: Sequence[str | Path], out: str | Path, *, resolution: int = 300) -> Path:
    """Draw the figure for ``run_dirs`` (``train.out_dir`` folders on 2-D stores) into ``out``."""
    import matplotlib  # matplotlib: only when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise PipelineError("spiral_plot: expected at least one run folder")
    panels = [load_run(r) for r in run_dirs]
    rows: dict[str, list[Panel]] = {}
    for panel in panels:
        rows.setdefault(panel.store, []).append(panel)
    n_cols = 1 + max(len(p) for p in rows.values())
    fig, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(4 * n_cols, 4.4 * len(rows)),
        squeeze=False,
        layout="constrained",
    )
    for r, (store, row) in enumerate(rows.items()):
        _draw_row(axes[r], store, row, resolution)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    log.info("wrote %s (%d rows, %d heads)", out, len(rows), len(panels))
    return out


def _draw_row(axes, store: str, row: Sequence[Panel], resolution: int) -> None:
    """One store's row: the data, then each head's decision regions and test accuracy."""
    from matplotlib.colors import ListedColormap  # matplotlib: only when drawing

    points = ListedColormap(["#FF0000", "#0000FF"])
    parts = load_splits(store, ["train", "val"])
    train, val = parts["train"], parts["val"]
    both = np.concatenate([train.features, val.features])
    lo, hi = both.min(axis=0) - GRID_MARGIN, both.max(axis=0) + GRID_MARGIN
    xs = np.linspace(lo[0], hi[0], resolution)
    ys = np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (resolution^2, 2)

    def scatter(ax) -> None:
        ax.scatter(*train.features.T, c=train.labels, cmap=points, vmin=0, vmax=1,
                   edgecolors="k", linewidths=0.3, s=12, alpha=0.1)  # fmt: skip
        ax.scatter(*val.features.T, c=val.labels, cmap=points, vmin=0, vmax=1,
                   edgecolors="k", linewidths=0.6, s=22)  # fmt: skip
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xticks(())
        ax.set_yticks(())
        ax.set_aspect("equal")

    scatter(axes[0])
    axes[0].set_title(f"Input data ({len(train)} train, {len(val)} test)")
    axes[0].set_ylabel(_row_label(store), fontsize=13)
    for ax, panel in zip(axes[1:], row, strict=False):
        with torch.no_grad():
            logits = panel.model(torch.as_tensor(grid, dtype=panel.dtype)).double().numpy()
        z = np.tanh(logits[:, 1] - logits[:, 0]).reshape(xx.shape)
        ax.contourf(xx, yy, z, levels=np.linspace(-1, 1, 21), cmap="RdBu", alpha=0.8)
        scatter(ax)
        ax.set_title(panel.title)
        ax.text(hi[0] - 0.3, lo[1] + 0.3, f"{panel.accuracy:.3f}", size=15,
                ha="right", va="bottom",
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"})  # fmt: skip
    for ax in axes[len(row) + 1 :]:
        ax.axis("off")
