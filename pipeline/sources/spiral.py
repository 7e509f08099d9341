"""The paper's two-spiral benchmark (Mari et al. 2020, example 1) as a source of features.

Points, scaling and split follow the notebook, with its legacy ``RandomState`` stream (fixed
across NumPy versions), so the points are the paper's own. Axes are scaled, not centred: the
mean is zero by symmetry.
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
    """The paper's two spirals and its train/val split; the same ``cfg`` gives the same arrays."""
    n = cfg.n_per_class
    # the notebook's draws: u, a, b in that order
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
    # sklearn's train_test_split(test_size=n_val, random_state=split_seed)
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
    """The spiral store's rows (``point/<row>``), features (the 2-D points) and metadata."""

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
