"""Robustness scores and plot: Wilson intervals, one row per setting, a reproducible PNG."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.common.errors import PipelineError
from pipeline.inference.robustness import (
    ROBUSTNESS_FIGSIZE,
    RobustnessRow,
    plot_robustness,
    score_setting,
    wilson_interval,
)

REPO = Path(__file__).resolve().parents[2]


def test_wilson_interval_known_values():
    # 5 of 10: the textbook 95 % Wilson interval 0.2366 .. 0.7634
    low, high = wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    # k = 0 has the closed form [0, z^2 / (n + z^2)], and k = n mirrors it
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2), abs=1e-15))
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(10 / (10 + z2), abs=1e-15)
    # a wider z gives a wider interval around the same centre
    wide = wilson_interval(5, 10, z=3.0)
    assert wide[0] < 0.2366 and wide[1] > 0.7634
    assert sum(wide) == pytest.approx(1.0)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 17), (81, 263), (120, 153), (999, 1000)])
def test_wilson_interval_equals_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(-1, 10), (11, 10), (0, 0), (1.5, 3), (True, 3)])
def test_wilson_interval_rejects_bad_counts(k, n):
    with pytest.raises(PipelineError, match="wilson_interval: expected"):
        wilson_interval(k, n)


def test_score_setting_by_hand():
    exact = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])  # exact predictions 0, 1, 0, 1: 3 of 4 right
    noisy = torch.tensor([[1.0, 0.5], [0.5, 0.0], [0.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    row = score_setting(exact, labels, noisy, shots=100, depolarizing=0.01)
    # noisy predictions 0, 0, 1, 1: correct on samples 0, 2, 3; same as exact on 0 and 3
    assert (row.n, row.correct, row.accuracy) == (4, 3, 0.75)
    assert (row.ci_low, row.ci_high) == wilson_interval(3, 4)
    assert row.agreement == 0.5
    shift = (1 + 0.5 + 0.5 + 1 + 1 + 1 + 0 + 1) / 8
    assert row.mean_abs_logit_shift == pytest.approx(shift, abs=1e-15)
    assert (row.shots, row.depolarizing, row.amplitude_damping) == (100, 0.01, 0.0)
    same = score_setting(exact.numpy(), labels.numpy(), exact.numpy())
    assert (same.agreement, same.mean_abs_logit_shift, same.shots) == (1.0, 0.0, None)
    assert RobustnessRow(**row.as_dict()) == row


@pytest.mark.parametrize(
    ("exact", "labels", "logits", "match"),
    [
        (np.zeros((3, 2)), np.zeros(3, int), np.zeros((3, 3)), r"logits of shape \(3, 2\)"),
        (np.zeros((3, 2)), np.zeros(2, int), np.zeros((3, 2)), "integer labels of shape"),
        (np.zeros((3, 2)), np.zeros(3), np.zeros((3, 2)), "integer labels"),
        (np.zeros((3, 2)), np.array([0, 2, 1]), np.zeros((3, 2)), r"labels in \[0, 2\)"),
        (np.zeros((3, 1)), np.zeros(3, int), np.zeros((3, 1)), "C >= 2"),
        (np.zeros((0, 2)), np.zeros(0, int), np.zeros((0, 2)), r"\(N, C\)"),
    ],
)
def test_score_setting_checks_shapes(exact, labels, logits, match):
    with pytest.raises(PipelineError, match=match):
        score_setting(exact, labels, logits)


def _rows():
    rng = np.random.default_rng(0)
    exact = rng.standard_normal((60, 2))
    labels = exact.argmax(1)
    labels[:6] = 1 - labels[:6]  # 90 % exact accuracy
    rows = []
    for p, scale in ((0.0, 0.0), (0.01, 0.3), (0.05, 1.0)):
        for shots in (None, 100, 1000, 10000):
            noise = 0.0 if shots is None else scale * 3 / math.sqrt(shots)
            logits = exact + rng.standard_normal(exact.shape) * (noise + 0.5 * scale)
            rows.append(score_setting(exact, labels, logits, shots=shots, depolarizing=p))
    return rows


def test_plot_is_a_reproducible_png_of_fixed_size(tmp_path):
    rows = _rows()
    out = plot_robustness(rows, 0.9, tmp_path / "plots" / "robustness.png", dpi=40)
    assert out == tmp_path / "plots" / "robustness.png"
    with Image.open(out) as image:
        assert image.size == (round(ROBUSTNESS_FIGSIZE[0] * 40), round(ROBUSTNESS_FIGSIZE[1] * 40))
        assert "Software" not in image.info
    again = plot_robustness(
        [r.as_dict() for r in reversed(rows)], 0.9, tmp_path / "again.png", dpi=40
    )
    assert again.read_bytes() == out.read_bytes()  # same rows, any order: same bytes
    other = plot_robustness(rows[:4], 0.9, tmp_path / "other.png", dpi=40)
    assert other.read_bytes() != out.read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "again.png",
        "other.png",
        "plots",
        "robustness.png",
    ]  # no temporary files left


def test_plot_exact_only_and_other_channels(tmp_path):
    rows = [
        RobustnessRow(**{**row.as_dict(), "amplitude_damping": 0.02, "readout_error": 0.01})
        for row in _rows()
        if row.shots is None
    ]
    out = plot_robustness(rows, 0.9, tmp_path / "exact.png", dpi=30)
    with Image.open(out) as image:
        assert image.size == (300, 150)


def test_plot_needs_rows(tmp_path):
    with pytest.raises(PipelineError, match="at least one row"):
        plot_robustness([], 0.9, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_scoring_does_not_import_matplotlib():
    code = (
        "import sys; from pipeline.inference import robustness;"
        "robustness.score_setting([[0.0, 1.0]], [1], [[1.0, 0.0]]);"
        "assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
