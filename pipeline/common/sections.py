"""The ``params.yaml`` blocks other than ``train`` and ``compare``, each checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pipeline.common.errors import ConfigError


def check(ok: bool, key: str, expected: str, got: object) -> None:
    """Raise a :class:`~pipeline.common.errors.ConfigError` naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}; got {got!r}")


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how to fetch them (block ``data``)."""

    dir: str = "data/hymenoptera_data"
    url: str = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
    sha256: str | None = None
    splits: tuple[str, ...] = ("train", "val")
    source: Literal["folder", "cifar10"] = "folder"
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check(len(self.splits) > 0, "data.splits", "a non-empty list of split folders", self.splits)
        if self.source == "cifar10":
            check(
                self.classes is not None
                and len(self.classes) >= 2
                and len(set(self.classes)) == len(self.classes),
                "data.classes",
                "a list of at least 2 distinct CIFAR-10 class names with data.source cifar10 "
                "(e.g. [cat, dog])",
                self.classes,
            )
            check(
                set(self.splits) <= {"train", "val"},
                "data.splits",
                "train and/or val with data.source cifar10 (CIFAR-10's train and test sets)",
                self.splits,
            )
        check("train" in self.splits, "data.splits", "a list that includes 'train'", self.splits)
        check(
            len(set(self.splits)) == len(self.splits), "data.splits", "distinct names", self.splits
        )
        if self.sha256 is not None:
            digest = self.sha256.lower()
            check(
                len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
                "data.sha256",
                "null or 64 hexadecimal digits",
                self.sha256,
            )


@dataclass(frozen=True)
class ExtractConfig:
    """Stage one: the frozen backbone and the feature store it writes (block ``extract``)."""

    backbone: str = "resnet18"
    weights: str = "IMAGENET1K_V1"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 32
    workers: int = 2
    on_bad_image: Literal["error", "skip"] = "error"
    out: str = "features/hymenoptera-resnet18.h5"

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "extract.batch_size", "an integer >= 1", self.batch_size)
        check(self.workers >= 0, "extract.workers", "an integer >= 0", self.workers)
        check(bool(self.out), "extract.out", "a file path", self.out)


@dataclass(frozen=True)
class SpiralConfig:
    """Block ``spiral``: the paper's two-spiral data set (set 1: ``turns`` 1.52, set 2: 2.0)."""

    turns: float = 1.52
    data_seed: int = 21
    noise: float = 0.7
    n_per_class: int = 2200
    n_val: int = 200
    n_train: int = 2000
    split_seed: int = 42
    out: str = "features/spiral-{spiral.turns}.h5"

    def __post_init__(self) -> None:
        check(self.turns > 0, "spiral.turns", "a number > 0", self.turns)
        check(self.noise >= 0, "spiral.noise", "a number >= 0", self.noise)
        check(self.n_per_class >= 1, "spiral.n_per_class", "an integer >= 1", self.n_per_class)
        check(self.n_val >= 1, "spiral.n_val", "an integer >= 1", self.n_val)
        check(self.n_train >= 1, "spiral.n_train", "an integer >= 1", self.n_train)
        check(
            self.n_val + self.n_train <= 2 * self.n_per_class,
            "spiral.n_val + spiral.n_train",
            f"at most 2 * spiral.n_per_class = {2 * self.n_per_class} points",
            self.n_val + self.n_train,
        )
        check(bool(self.out), "spiral.out", "a file path", self.out)


_PAPER_FILES = (
    "https://raw.githubusercontent.com/XanaduAI/quantum-transfer-learning/"
    "890c73eaf401c1a1ffa4c55484726b5efc35828b/pre_trained/"
)


def _check_generated(block: str, cfg: Any) -> None:
    check(cfg.cutoff >= 2, f"{block}.cutoff", "an integer >= 2", cfg.cutoff)
    check(bool(cfg.pretrained), f"{block}.pretrained", "a file path", cfg.pretrained)
    check(
        cfg.n_train_batches >= 1, f"{block}.n_train_batches", "an integer >= 1", cfg.n_train_batches
    )
    check(cfg.n_val_batches >= 1, f"{block}.n_val_batches", "an integer >= 1", cfg.n_val_batches)
    check(bool(cfg.out), f"{block}.out", "a file path", cfg.out)


@dataclass(frozen=True)
class QCConfig:
    """Block ``qc``: the paper's quantum-to-classical data set (``q2c_transfer_learning.ipynb``).

    A' is the first ``layers`` of Killoran et al.'s 25 pretrained tetromino layers.
    """

    pretrained: str = "data/paper-pretrained/trained_params.npy"
    url: str = _PAPER_FILES + "trained_params.npy"
    layers: int = 15
    cutoff: int = 11
    seed: int = 100
    n_train_batches: int = 1000
    n_val_batches: int = 1000
    min_norm: float = 0.99
    out: str = "features/qc.h5"

    def __post_init__(self) -> None:
        check(0 <= self.layers <= 25, "qc.layers", "an integer in [0, 25]", self.layers)
        check(self.cutoff >= 4, "qc.cutoff", "an integer >= 4 (the 4 x 4 image)", self.cutoff)
        check(0 <= self.min_norm <= 1, "qc.min_norm", "a number in [0, 1]", self.min_norm)
        _check_generated("qc", self)


@dataclass(frozen=True)
class QQConfig:
    """Block ``qq``: the paper's quantum-to-quantum data set (``q2q_transfer_learning.ipynb``)."""

    pretrained: str = "data/paper-pretrained/circuit_A.npy"
    url: str = _PAPER_FILES + "circuit_A.npy"
    cutoff: int = 15
    seed: int = 1
    n_train_batches: int = 500
    n_val_batches: int = 500
    out: str = "features/qq.h5"

    def __post_init__(self) -> None:
        _check_generated("qq", self)


@dataclass(frozen=True)
class ReportConfig:
    """Plots of a trained head, written into ``<train.out_dir>/plots`` (block ``report``)."""

    n_images: int = 16  # validation images in predictions.png
    seed: int = 0
    dpi: int = 100

    def __post_init__(self) -> None:
        check(self.n_images >= 1, "report.n_images", "an integer >= 1", self.n_images)
        check(20 <= self.dpi <= 600, "report.dpi", "an integer in [20, 600]", self.dpi)


@dataclass(frozen=True)
class EvaluateConfig:
    """Block ``evaluate``: every combination of shots and noise is one setting."""

    backend: str = "auto"  # auto | torch | a PennyLane device name
    shots: tuple[int | None, ...] = (None, 100, 1000, 10000)  # null: exact expectation values
    depolarizing: tuple[float, ...] = (0.0, 0.001, 0.01, 0.05)  # per gate, on every wire
    amplitude_damping: tuple[float, ...] = (0.0,)  # per gate, after the depolarizing channel
    readout_error: tuple[float, ...] = (0.0,)  # symmetric bit flip of each measured bit
    seed: int = 0
    threads: int | None = 1  # null: torch's default
    dpi: int = 100

    def __post_init__(self) -> None:
        check(bool(self.backend), "evaluate.backend", "auto, torch or a PennyLane device", "")
        check(len(self.shots) > 0, "evaluate.shots", "a non-empty list", self.shots)
        check(
            all(s is None or s >= 1 for s in self.shots),
            "evaluate.shots",
            "a list of null (exact) or integers >= 1",
            list(self.shots),
        )
        check(
            len(set(self.shots)) == len(self.shots),
            "evaluate.shots",
            "distinct values",
            list(self.shots),
        )
        for key in ("depolarizing", "amplitude_damping", "readout_error"):
            values = getattr(self, key)
            check(len(values) > 0, f"evaluate.{key}", "a non-empty list", list(values))
            check(
                all(0.0 <= p <= 1.0 for p in values),
                f"evaluate.{key}",
                "a list of probabilities in [0, 1]",
                list(values),
            )
            check(
                len(set(values)) == len(values), f"evaluate.{key}", "distinct values", list(values)
            )
        check(
            self.threads is None or self.threads >= 1,
            "evaluate.threads",
            "null or an integer >= 1",
            self.threads,
        )
        check(20 <= self.dpi <= 600, "evaluate.dpi", "an integer in [20, 600]", self.dpi)
