"""The paper's two-spiral benchmark as a source of features (no backbone).

Mari et al. (2020), example 1 (``dressed_circuit.ipynb``): a dressed quantum circuit and a
classical net of the same shape classify two interleaved 2-D spirals. The points are
written in the stage-one format (:mod:`pipeline.store.hdf5`: same reader, same metadata), with
``source: spiral``, ``backbone: none``, ``feature_dim: 2``, splits ``train`` and ``val``, so
stage two (:mod:`pipeline.training`) trains on them like on any cached features.

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

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from pipeline.common.config import SpiralConfig
from pipeline.sources.base import Batch, Encoder, Listing, Provenance

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


def _fingerprint(spiral: Spiral) -> str:  # over the generated arrays
    digest = hashlib.sha256()
    for array in (spiral.points, spiral.labels, spiral.val_index, spiral.train_index):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class SpiralSource:
    """The spiral store's rows (``point/<row>``), features (the 2-D points) and metadata.

    Example:
        >>> SpiralSource(SpiralConfig(turns=2.0)).list().total
        2200
    """

    kind = "spiral"
    needs_backbone = False
    provenance = Provenance(transform=SPIRAL_TRANSFORM)

    def __init__(self, cfg: SpiralConfig):
        self.cfg = cfg

    @cached_property
    def spiral(self) -> Spiral:
        return generate(self.cfg)

    def list(self) -> Listing:
        s = self.spiral
        index = {"train": s.train_index, "val": s.val_index}
        return Listing(
            SPIRAL_CLASSES,
            {split: [f"point/{i}" for i in rows] for split, rows in index.items()},
            {split: s.labels[rows] for split, rows in index.items()},
        )

    def fingerprint(self, listing: Listing) -> str:
        return _fingerprint(self.spiral)

    def metadata(self) -> dict[str, Any]:
        return {
            "spiral": _settings(self.cfg),
            "rng": "numpy.random.RandomState (legacy MT19937), rand()",
            "scale": [float(s) for s in self.spiral.scale],
            "paths": "point/<row>: row of the generated points, class 0 first",
        }

    def location(self, row: str) -> str:
        return f"{row} of the spiral (turns {self.cfg.turns})"

    def iterate(
        self,
        split: str,
        rows: Sequence[str],
        encoder: Encoder | None,
        *,
        batch_size: int,
        workers: int,
    ) -> Iterator[Batch]:
        index = [int(row.removeprefix("point/")) for row in rows]
        points = self.spiral.points[index].astype(np.float32)  # (len(rows), 2)
        yield Batch(list(range(len(rows))), points, [])
