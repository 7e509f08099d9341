"""How a trained head holds up under finite shots and noise: scores per setting, and a plot."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common import files
from pipeline.common.errors import PipelineError
from pipeline.reports.figures import FAINT, WRONG, default_style, figure, png_bytes

#: norm.ppf(0.975): the two-sided 95 % normal quantile.
Z95 = 1.959963984540054

ROBUSTNESS_FIGSIZE = (10.0, 5.0)  # inches, the legend on the right included


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (95 % for the default ``z``).

    Unlike the Wald interval it stays in [0, 1] and is not empty at k = 0 or n; equals
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise PipelineError(f"wilson_interval: expected an integer {name}; got {value!r}")
    if n < 1 or not 0 <= k <= n or not z > 0:
        raise PipelineError(
            f"wilson_interval: expected n >= 1, 0 <= k <= n and z > 0; got k={k}, n={n}, z={z}"
        )
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True, kw_only=True)
class RobustnessRow:
    """The scores of one setting; ``shots=None`` is the exact (infinite-shot) value."""

    shots: int | None
    depolarizing: float = 0.0
    amplitude_damping: float = 0.0
    readout_error: float = 0.0
    n: int  # samples scored
    correct: int
    accuracy: float
    ci_low: float  # 95 % Wilson interval of the accuracy
    ci_high: float
    agreement: float  # fraction of argmax predictions equal to the exact noiseless ones
    mean_abs_logit_shift: float  # mean over all entries of |logits - exact logits|

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def noise(self) -> tuple[float, float, float]:
        """(depolarizing, amplitude_damping, readout_error): the line the row belongs to."""
        return (self.depolarizing, self.amplitude_damping, self.readout_error)


def _array(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object:
        raise PipelineError(f"{name}: expected numbers; got {array.dtype}")
    return array


def score_setting(
    exact_logits: Any,
    labels: Any,
    logits: Any,
    *,
    shots: int | None = None,
    depolarizing: float = 0.0,
    amplitude_damping: float = 0.0,
    readout_error: float = 0.0,
) -> RobustnessRow:
    """Score one setting's logits (N, C) against the labels and the exact noiseless logits.

    Returns accuracy with its Wilson interval, agreement of the argmax with the exact noiseless
    predictions, and the mean absolute logit shift.
    """
    exact = _array(exact_logits, "exact_logits")
    ours = _array(logits, "logits")
    y = _array(labels, "labels")
    if exact.ndim != 2 or exact.shape[0] < 1 or exact.shape[1] < 2:
        raise PipelineError(f"expected exact logits of shape (N, C), C >= 2; got {exact.shape}")
    if ours.shape != exact.shape:
        raise PipelineError(f"expected logits of shape {exact.shape}; got {ours.shape}")
    if y.shape != exact.shape[:1] or not np.issubdtype(y.dtype, np.integer):
        raise PipelineError(f"expected integer labels of shape {exact.shape[:1]}; got {y.shape}")
    if y.min() < 0 or y.max() >= exact.shape[1]:
        raise PipelineError(f"expected labels in [0, {exact.shape[1]}); got {y.min()}..{y.max()}")
    predicted = ours.argmax(axis=1)  # (N,)
    n, correct = len(y), int((predicted == y).sum())
    low, high = wilson_interval(correct, n)
    return RobustnessRow(
        shots=shots,
        depolarizing=float(depolarizing),
        amplitude_damping=float(amplitude_damping),
        readout_error=float(readout_error),
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci_low=low,
        ci_high=high,
        agreement=float((predicted == exact.argmax(axis=1)).mean()),
        mean_abs_logit_shift=float(np.abs(ours.astype(np.float64) - exact).mean()),
    )


def _rows(rows: Sequence[RobustnessRow | Mapping[str, Any]]) -> list[RobustnessRow]:
    out = [row if isinstance(row, RobustnessRow) else RobustnessRow(**row) for row in rows]
    if not out:
        raise PipelineError("plot_robustness: expected at least one row; got none")
    return out


def _label(noise: tuple[float, float, float]) -> str:
    depolarizing, damping, readout = noise
    extras = [f"damping \N{GREEK SMALL LETTER GAMMA} = {damping:g}"] if damping else []
    extras += [f"readout q = {readout:g}"] if readout else []
    label = f"depolarizing p = {depolarizing:g}"
    return label + "\n  " + ", ".join(extras) if extras else label


def draw_robustness(
    rows: Sequence[RobustnessRow | Mapping[str, Any]],
    exact_accuracy: float,
    dpi: int = 100,
    note: str | None = None,
):
    """The figure of :func:`plot_robustness`."""
    rows = _rows(rows)
    finite = sorted({r.shots for r in rows if r.shots is not None})
    x_exact = finite[-1] * 10.0 if finite else 1.0  # one decade right of the largest count
    groups = sorted({r.noise for r in rows})
    fig = figure(ROBUSTNESS_FIGSIZE, dpi, layout="constrained")
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.axhline(exact_accuracy, color=FAINT, linestyle="--", linewidth=1.2, zorder=1)
    ax.annotate(
        f"exact noiseless {exact_accuracy:.1%}",
        (0.01, exact_accuracy),
        xycoords=("axes fraction", "data"),
        xytext=(0, 4),
        textcoords="offset points",
        fontsize=9,
        color=FAINT,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
    )
    for i, noise in enumerate(groups):
        color = f"C{i % 10}"
        line = sorted(
            (r for r in rows if r.noise == noise and r.shots is not None), key=lambda r: r.shots
        )
        if line:
            xs = [r.shots for r in line]
            lows, highs = [r.ci_low for r in line], [r.ci_high for r in line]
            ax.fill_between(xs, lows, highs, color=color, alpha=0.08, linewidth=0)
            for edge in (lows, highs):  # edges keep overlapping bands apart
                ax.plot(xs, edge, color=color, linewidth=0.7, alpha=0.5)
            ax.plot(xs, [r.accuracy for r in line], marker="o", color=color, label=_label(noise))
        for r in (r for r in rows if r.noise == noise and r.shots is None):
            # side by side around the "exact" tick, so the error bars do not overlap
            x = x_exact * 10 ** (0.06 * (i - (len(groups) - 1) / 2))
            if line:
                ax.plot([xs[-1], x], [line[-1].accuracy, r.accuracy], ":", color=color)
            err = [[r.accuracy - r.ci_low], [r.ci_high - r.accuracy]]
            label = None if line else _label(noise)
            ax.errorbar([x], [r.accuracy], yerr=err, fmt="D", color=color, capsize=4, label=label)
    _axes(ax, rows, finite, x_exact, exact_accuracy)
    if note:  # e.g. the random-init warning: above the title, in red
        fig.suptitle(textwrap.fill(note, 80), fontsize=8, color=WRONG)
    return fig


def _axes(ax, rows: list[RobustnessRow], finite: list[int], x_exact: float, exact: float):
    """Ticks at every shot count and at "exact", a break before it, limits, labels, legend."""
    from matplotlib.ticker import NullLocator, PercentFormatter  # lazily, as the figure

    ticks = [*finite, x_exact]
    ax.set_xticks(ticks, [f"{s:,}" for s in finite] + ["exact\n(no shots)"])
    ax.xaxis.set_minor_locator(NullLocator())
    if finite:
        ax.axvline(math.sqrt(finite[-1] * x_exact), color=FAINT, linewidth=0.8, linestyle=":")
    ax.set_xlim(ticks[0] / 10**0.4, x_exact * 10**0.4)
    low = min([exact, *(r.ci_low for r in rows)])
    high = max([exact, *(r.ci_high for r in rows)])
    pad = max(0.02, 0.08 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad) + 0.005)
    ax.set_xlabel("shots per sample")
    ax.set_ylabel("accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))  # as many decimals as ticks need
    ax.grid(alpha=0.3)
    ax.figure.legend(loc="outside right upper", fontsize=9, title="gate noise")
    n = sorted({r.n for r in rows})
    samples = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
    ax.set_title(
        "Accuracy under finite shots and gate noise\n"
        f"{samples} samples; bands and bars: 95 % Wilson intervals",
        fontsize=11,
    )


def robustness_png(
    rows: Sequence[RobustnessRow | Mapping[str, Any]],
    exact_accuracy: float,
    dpi: int = 100,
    note: str | None = None,
) -> bytes:
    """The PNG bytes of :func:`plot_robustness`."""
    with default_style():
        return png_bytes(draw_robustness(rows, exact_accuracy, dpi, note), dpi)


def plot_robustness(
    rows: Sequence[RobustnessRow | Mapping[str, Any]],
    exact_accuracy: float,
    out_png: str | Path,
    dpi: int = 100,
    note: str | None = None,
) -> Path:
    """Accuracy against shots, one line per noise level, written atomically as a PNG.

    Each level's exact setting is a diamond at an "exact" tick right of the largest shot count,
    the limit its line tends to; bands are 95 % Wilson intervals.
    """
    files.write_bytes(out_png, robustness_png(rows, exact_accuracy, dpi, note))
    return Path(out_png)
