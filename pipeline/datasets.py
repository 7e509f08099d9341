"""Generated data sets written as feature stores: the paper's two-spiral benchmark.

    python -m pipeline.datasets spiral [--params params-spiral.yaml] [--set spiral.turns=2.0]

Mari et al. (2020), example 1 (``dressed_circuit.ipynb``): a dressed quantum circuit and a
classical net of the same shape classify two interleaved 2-D spirals. The points are
written in the stage-one format (:mod:`pipeline.features`: same reader, same metadata), with
``source: spiral``, ``backbone: none``, ``feature_dim: 2``, splits ``train`` and ``val``, so
stage two (:mod:`pipeline.train_head`) trains on them like on any cached features.

The protocol, as in the paper's notebook:

* per class ``n_per_class`` (2200) points: u, a, b ~ U[0, 1), drawn ``n_per_class`` each, in
  that order, from one generator seeded ``data_seed`` (21); t = 2π · turns · √u; class 0 is
  (-t·cos t + noise·a, t·sin t + noise·b); class 1 is the point reflection (-x, -y) of class 0,
  noise included; ``turns`` is 1.52 (data set 1) or 2.0 (data set 2), ``noise`` 0.7.
* each axis is divided by its standard deviation over all points (``StandardScaler``; the
  mean is zero by the reflection symmetry and is not subtracted, which keeps the symmetry
  exact);
* ``val`` is the first ``n_val`` (200) points of a shuffle seeded ``split_seed`` (42) and
  ``train`` the next ``n_train`` (2000): exactly the notebook's ``train_test_split(X, y,
  test_size=200, random_state=42)``, whose training loop only ever reads the first 2000 of
  its 4200 training points.

The generator is numpy's legacy ``RandomState`` (MT19937 with ``rand``), which the notebook
used (``np.random.RandomState(21)``), not ``default_rng``: with it the stored points are the
paper's own, and NumPy keeps its stream fixed across versions.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli, features
from pipeline.config import SpiralConfig, add_params_arguments, load_params
from pipeline.errors import FeatureStoreError

log = logging.getLogger("pipeline")

#: Bumped when the generator's output for the same settings changes.
SPIRAL_PROTOCOL = 1
SPIRAL_CLASSES = ("0", "1")
SPIRAL_TRANSFORM = (
    "two spirals (Mari et al. 2020, dressed_circuit.ipynb): numpy RandomState(data_seed) draws "
    "u, a, b ~ U[0,1); t = 2*pi*turns*sqrt(u); class 0 = (-t cos t + noise a, t sin t + noise b), "
    "class 1 = -(class 0); each axis divided by its std over all points"
)


@dataclass(frozen=True)
class Spiral:
    """All generated points and the split, before writing."""

    points: np.ndarray  # (2 n_per_class, 2) float64, standardised; class 0 first
    labels: np.ndarray  # (2 n_per_class,) int64
    scale: np.ndarray  # (2,) the standard deviations the raw points were divided by
    val_index: np.ndarray  # (n_val,) rows of points
    train_index: np.ndarray  # (n_train,) rows of points


def generate(cfg: SpiralConfig) -> Spiral:
    """The paper's two spirals and its train/val split (see the module docstring).

    Args:
        cfg: the ``spiral`` block (``out`` is not read).

    Returns:
        A :class:`Spiral`; the same ``cfg`` gives the same arrays.

    Example:
        >>> s = generate(SpiralConfig())
        >>> s.points.shape, len(s.train_index), len(s.val_index)
        ((4400, 2), 2000, 200)
    """
    n = cfg.n_per_class
    # The notebook's generator: np.random.RandomState(21) (numpy's legacy MT19937 stream, fixed
    # by NumPy's compatibility policy) and rand(), u, a and b drawn in that order.
    rng = np.random.RandomState(cfg.data_seed)
    u = rng.rand(n)
    a = rng.rand(n)
    b = rng.rand(n)
    t = np.sqrt(u) * cfg.turns * (2 * np.pi)
    class0 = np.stack([-np.cos(t) * t + a * cfg.noise, np.sin(t) * t + b * cfg.noise], axis=1)
    raw = np.concatenate([class0, -class0])  # (2n, 2): class 1 is the point reflection
    scale = raw.std(axis=0)  # population std (ddof 0), as StandardScaler
    points = raw / scale
    labels = np.repeat(np.arange(2, dtype=np.int64), n)
    # sklearn's train_test_split(test_size=n_val, random_state=split_seed) is
    # RandomState(split_seed).permutation(N): test = perm[:n_val], train = perm[n_val:]
    perm = np.random.RandomState(cfg.split_seed).permutation(2 * n)
    val_index = perm[: cfg.n_val]
    train_index = perm[cfg.n_val : cfg.n_val + cfg.n_train]
    return Spiral(points, labels, scale, val_index, train_index)


def _settings(cfg: SpiralConfig) -> dict[str, Any]:
    settings = asdict(cfg)
    settings.pop("out")
    return {"protocol": SPIRAL_PROTOCOL, **settings}


def _fingerprint(spiral: Spiral) -> str:
    digest = hashlib.sha256()
    for array in (spiral.points, spiral.labels, spiral.val_index, spiral.train_index):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def spiral_stale_reason(path: str | Path, cfg: SpiralConfig) -> str | None:
    """Why the store at ``path`` must be (re)written for ``cfg``, or None when it is current."""
    try:
        meta = features.read_meta(path)
    except FeatureStoreError as exc:
        return f"the existing file is not usable ({exc})"
    if meta.source != "spiral":
        return f"source {meta.source!r} -> 'spiral'"
    stored = meta.extra.get("spiral")
    if stored != _settings(cfg):
        return f"spiral settings {stored} -> {_settings(cfg)}"
    return None


def write_spiral(cfg: SpiralConfig, path: str | Path, *, force: bool = False) -> bool:
    """Write the spiral store for ``cfg`` at ``path`` unless it is already there.

    Args:
        cfg: the ``spiral`` block.
        path: the target file (``spiral.out`` with its placeholders filled in).
        force: write even when the file is current.

    Returns:
        True when the file was written, False when it was already current.

    Example:
        >>> write_spiral(SpiralConfig(turns=2.0), "features/spiral-2.0.h5")
        True
    """
    path = Path(path)
    if path.exists() and not force:
        reason = spiral_stale_reason(path, cfg)
        if reason is None:
            log.info("%s is up to date (same spiral settings)", path)
            return False
        log.info("rewriting %s: %s", path, reason)
    spiral = generate(cfg)
    names = [f"point/{i}" for i in range(len(spiral.labels))]

    def split(index: np.ndarray) -> features.SplitArrays:
        return features.SplitArrays(
            features=spiral.points[index].astype(np.float32),
            labels=spiral.labels[index],
            paths=[names[i] for i in index],
        )

    features.write(
        path,
        {"train": split(spiral.train_index), "val": split(spiral.val_index)},
        class_names=SPIRAL_CLASSES,
        source="spiral",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform=SPIRAL_TRANSFORM,
        dataset_fingerprint=_fingerprint(spiral),
        extra={
            "spiral": _settings(cfg),
            "rng": "numpy.random.RandomState (legacy MT19937), rand()",
            "scale": [float(s) for s in spiral.scale],
            "paths": "point/<row>: row of the generated points, class 0 first",
        },
    )
    counts = {
        name: np.bincount(spiral.labels[index], minlength=2).tolist()
        for name, index in (("train", spiral.train_index), ("val", spiral.val_index))
    }
    log.info(
        "wrote %s: turns %s, train %d (per class %s), val %d (per class %s)",
        path,
        cfg.turns,
        len(spiral.train_index),
        counts["train"],
        len(spiral.val_index),
        counts["val"],
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.datasets",
        description="Write generated data sets as feature stores.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    spiral = sub.add_parser(
        "spiral", help="the paper's two-spiral benchmark (block spiral) -> spiral.out"
    )
    add_params_arguments(spiral)
    spiral.add_argument("--force", action="store_true", help="write even if up to date")
    args = parser.parse_args(argv)
    cli.setup_logging()

    def task() -> None:
        params = load_params(args.params, args.overrides)
        write_spiral(params.spiral, params.spiral_out, force=args.force)

    return cli.run(task)


if __name__ == "__main__":
    sys.exit(main())
