"""Classify new images with a trained head and the backbone recorded with it.

The backbone is rebuilt from the checkpoint and refuses weights of another sha-256, so live
features equal the cached ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common import folders
from pipeline.common.errors import DataError
from pipeline.common.progress import progress
from pipeline.sources import images

log = logging.getLogger("pipeline")

MAX_PATH_WIDTH = 60  # widest path padded to align columns


@dataclass(frozen=True)
class Prediction:
    """The head's output for one image, or why there is none."""

    path: str
    class_names: tuple[str, ...]
    logits: np.ndarray | None  # (n_classes,) in the head's dtype, None when it failed
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the logits, (n_classes,)."""
        if self.logits is None:
            raise ValueError(f"{self.path}: no prediction ({self.error})")
        z = np.exp(self.logits - self.logits.max())
        return z / z.sum()

    @property
    def predicted(self) -> str:
        """The most probable class."""
        return self.class_names[int(np.argmax(self.probabilities))]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        if not self.ok:
            return {"path": self.path, "error": self.error}
        probs = self.probabilities
        return {
            "path": self.path,
            "predicted": self.predicted,
            "probability": float(probs.max()),
            "probabilities": {c: float(p) for c, p in zip(self.class_names, probs, strict=True)},
            "logits": [float(v) for v in self.logits],
        }


def find_images(inputs: Sequence[str | Path]) -> list[str]:
    """The image files named by ``inputs``: files as given, folders walked as stage one does."""
    if not inputs:
        raise DataError("no images given: name image files or folders")
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths, ignored = images.walk_images(path)
            if ignored:
                log.info("%s: %d non-image files ignored", item, len(ignored))
            if not paths:
                log.warning("%s: no images (extensions %s)", item, ", ".join(images.IMG_EXTENSIONS))
            found += [os.path.join(str(item), p) for p in paths]
        elif path.exists():
            found.append(str(item))
        else:
            raise DataError(f"{str(item)!r} does not exist; expected an image file or a folder")
    if not found:
        raise DataError(
            f"no images under {', '.join(map(str, inputs))} "
            f"(extensions {', '.join(images.IMG_EXTENSIONS)})"
        )
    return found


def predict(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    *,
    weights: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 1,
) -> list[Prediction]:
    """Classify image files with a trained head and the backbone recorded with it.

    Args:
        weights: a state-dict file replacing the recorded weights.
        device: where the backbone runs; the head runs on CPU.
        workers: image-decoding processes.

    Returns:
        One :class:`Prediction` per image; an undecodable one has ``error`` set.
    """
    import torch

    from pipeline.backbones import inference, models
    from pipeline.heads.checkpoint import load_checkpoint
    from pipeline.sources.folder import ImageFiles

    paths = find_images(inputs)
    metrics = folders.metrics_beside(model_path)
    head, ckpt = load_checkpoint(model_path)
    folders.check_pair(model_path, metrics)  # the metrics.json beside it is of this model
    class_names = tuple(ckpt["class_names"])
    model, info = models.rebuild(ckpt["features"], weights=weights, device=device)
    dtype = next(head.parameters()).dtype
    results: list[Prediction | None] = [None] * len(paths)
    with progress(len(paths), "predict", unit="img") as bar:
        for batch in inference.iter_features(
            model,
            ImageFiles(".", paths, info.transform),  # paths as given: absolute, or relative
            batch_size=batch_size,
            workers=workers if len(paths) > batch_size else 0,
        ):
            for i, reason in batch.failed:
                log.error("cannot decode image %s: %s", paths[i], reason)
                results[i] = Prediction(paths[i], class_names, None, reason)
            if batch.indices:
                with torch.no_grad():
                    x = torch.as_tensor(batch.features).to(dtype)  # (b, feature_dim)
                    logits = head(x).numpy()  # (b, n_classes)
                for row, i in enumerate(batch.indices):
                    results[i] = Prediction(paths[i], class_names, logits[row])
            bar.update(len(batch.indices) + len(batch.failed))
    return [r for r in results if r is not None]


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes (2 for a wide CJK character)."""
    from wcwidth import wcswidth  # small; only when lines are formatted

    width = wcswidth(text)
    return width if width >= 0 else len(text)  # control characters


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def format_lines(predictions: Sequence[Prediction]) -> list[str]:
    """One line per prediction (path, class, probability, all classes), aligned by display width."""
    paths = [display_width(p.path) for p in predictions]
    width = min(max(paths, default=0), MAX_PATH_WIDTH)
    lines = []
    for p in predictions:
        if not p.ok:
            lines.append(f"{_pad(p.path, width)}  FAILED  {p.error}")
            continue
        name_width = max(display_width(c) for c in p.class_names)
        probs = p.probabilities
        every = "  ".join(f"{c} {q:.3f}" for c, q in zip(p.class_names, probs, strict=True))
        lines.append(
            f"{_pad(p.path, width)}  {_pad(p.predicted, name_width)}  {probs.max():.3f}   {every}"
        )
    return lines
