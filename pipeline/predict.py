"""Classify new images with a trained head: the recorded backbone, then the head.

    python -m pipeline.predict IMAGE_OR_DIR ... [--model runs/head/model.pt] [--json]
                               [--weights FILE] [--params params.yaml] [--set extract.device=cpu]

The head's ``model.pt`` records which features it was trained on (``features``: backbone,
weights, their sha-256, the transform, and for random-init weights the seed). Prediction
rebuilds exactly that backbone and preprocessing, checks that the available weights have the
recorded sha-256 (and refuses, naming the weights the head needs, when they do not), turns
each image into features as stage one did, and applies the head in the dtype it was trained
in. Cached and live features therefore give the same logits (a test checks it).

A directory is walked recursively with stage one's rules (:func:`pipeline.images.walk_images`:
sorted, only the image extensions); a file named on the command line is read whatever its
extension. Images are decoded in ``extract.workers`` processes and run in batches of
``extract.batch_size`` on ``extract.device``. An image that cannot be decoded is reported by
name, the others are still predicted, and the exit code is 1.

Output, one line per image on stdout (the log and the progress go to stderr)::

    val/ants/10308379_1b6c72e180.jpg  ants  0.912   ants 0.912  bees 0.088

or with ``--json`` a list of ``{"path", "predicted", "probability", "probabilities",
"logits"}`` (``{"path", "error"}`` for an image that failed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import cli, images
from pipeline.config import add_params_arguments, load_params
from pipeline.errors import DataError, WeightsError
from pipeline.progress import progress

log = logging.getLogger("pipeline")

MAX_PATH_WIDTH = 60  # paths are padded to align the columns, up to this width


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
        """A JSON-ready dict (see the module docstring)."""
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


# ------------------------------------------------------------------ inputs


def find_images(inputs: Sequence[str | Path]) -> list[str]:
    """The image files named by ``inputs``: files as given, directories walked recursively.

    Args:
        inputs: image files and directories. A directory contributes the files that
            :func:`pipeline.images.walk_images` calls images, in its order; a file is taken
            whatever its extension.

    Returns:
        Paths in input order, each as the input joined with the path found under it.

    Raises:
        DataError: an input does not exist, or no image was found at all.

    Example:
        >>> find_images(["data/hymenoptera_data/val"])[:1]
        ['data/hymenoptera_data/val/ants/10308379_1b6c72e180.jpg']
    """
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


# ------------------------------------------------------------------ the recorded backbone


def required_weights(recorded: Mapping[str, Any]) -> str:
    """Words for the weights a head needs, from its checkpoint's ``features`` block."""
    extra = recorded.get("extra") or {}
    kind = extra.get("weights_kind")
    sha = recorded.get("weights_sha256", "")
    backbone = recorded.get("backbone")
    if kind == "none":
        return (
            f"{backbone} with random-init weights, seed {extra.get('weights_seed')} "
            f"(extract.weights: none; state-dict sha256 {sha})"
        )
    if kind == "file":
        return f"{backbone} weights from the file {recorded.get('weights')} (sha256 {sha})"
    return f"{backbone} torchvision weights {recorded.get('weights')} (file sha256 {sha})"


def load_backbone(
    recorded: Mapping[str, Any], *, weights: str | None = None, device: str = "auto"
) -> tuple[Any, Callable]:
    """Rebuild the backbone and preprocessing recorded with a head's features.

    Args:
        recorded: the checkpoint's ``features`` block (backbone, weights, weights_sha256,
            transform, extra.weights_kind, extra.weights_seed).
        weights: a state-dict file to use instead of the recorded weights (a moved file, or
            an offline copy of the torchvision file); it must have the recorded sha-256.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        ``(model, transform)`` as :func:`pipeline.backbones.build` gives them.

    Raises:
        WeightsError: the features do not come from an image backbone, the weights are not
            available, their sha-256 differs from the recorded one, or the preprocessing of
            the installed torchvision differs from the recorded one. The message says which
            weights the head needs.
    """
    from pipeline import backbones  # torch + torchvision

    backbone = recorded.get("backbone")
    if backbone not in backbones.BACKBONES:
        raise WeightsError(
            f"the head was trained on features of backbone {backbone!r} (source "
            f"{recorded.get('source')!r}), not on image features of one of "
            f"{', '.join(backbones.BACKBONES)}: it cannot classify image files"
        )
    extra = recorded.get("extra") or {}
    kind = extra.get("weights_kind")
    name = recorded.get("weights")
    sha = recorded.get("weights_sha256")
    need = required_weights(recorded)
    if weights is not None:
        if kind == "none":
            raise WeightsError(
                f"--weights {weights}: the head needs {need}, rebuilt from the seed; it takes "
                "no weights file"
            )
        if not Path(weights).is_file():
            raise WeightsError(f"--weights {weights}: no such file; the head needs {need}")
        got = images.file_sha256(weights)
        if got != sha:
            raise WeightsError(f"--weights {weights} has sha256 {got}; the head needs {need}")
        model, info = backbones.build(backbone, weights, device=device)
    elif kind == "none":
        seed = extra.get("weights_seed")
        if not isinstance(seed, int):
            raise WeightsError(f"the checkpoint records no random-init seed; it needs {need}")
        model, info = backbones.build(backbone, "none", seed=seed, device=device)
    elif kind == "file":
        if not Path(name).is_file():
            raise WeightsError(
                f"the head needs {need}, which is not there any more; pass --weights with the "
                "path of that file"
            )
        got = images.file_sha256(name)
        if got != sha:
            raise WeightsError(
                f"{name} has changed (sha256 {got}); the head needs {need}. Pass --weights "
                "with the path of the original file"
            )
        model, info = backbones.build(backbone, name, device=device)
    elif kind == "torchvision":
        try:
            model, info = backbones.build(backbone, name, device=device)
        except WeightsError as exc:
            raise WeightsError(
                f"{exc}. The head needs {need}; --weights FILE takes a copy of that file"
            ) from exc
    else:
        raise WeightsError(f"the checkpoint records an unknown weights kind {kind!r}")
    if info.sha256 != sha:
        hint = (
            " (torch's random initialisation changed: another torch version?)"
            if kind == "none"
            else ""
        )
        raise WeightsError(
            f"the available {backbone} weights have sha256 {info.sha256}{hint}; "
            f"the head needs {need}"
        )
    import torchvision

    enum = torchvision.models.get_model_weights(backbone)
    transform = enum[name].transforms() if kind == "torchvision" else enum.DEFAULT.transforms()
    if repr(transform) != recorded.get("transform"):

        def flat(text: object) -> str:
            return " ".join(str(text).split())

        raise WeightsError(
            f"the preprocessing of this torchvision ({flat(repr(transform))}) differs from the "
            f"one the head's features were made with ({flat(recorded.get('transform'))}); "
            "re-extract the features and retrain the head with this torchvision"
        )
    log.info("backbone: %s; sha256 matches the head's features", need)
    return model, transform


# ------------------------------------------------------------------ prediction


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
        model_path: a ``model.pt`` written by ``pipeline.train_head``.
        inputs: image files and folders (see :func:`find_images`).
        weights: a state-dict file replacing the recorded weights (see :func:`load_backbone`).
        device: where the backbone runs (``auto``, ``cpu``, ``cuda``); the head runs on CPU.
        batch_size: images per forward pass.
        workers: image-decoding processes.

    Returns:
        One :class:`Prediction` per image, in the order of :func:`find_images`; an image that
        cannot be decoded has ``error`` set and no logits.

    Raises:
        PipelineError: a bad checkpoint, a missing input, or weights that do not match.

    Example:
        >>> [p.predicted for p in predict("runs/head/model.pt", ["bee.jpg"])]
        ['bees']
    """
    import torch

    from pipeline import backbones
    from pipeline.heads import load_checkpoint

    paths = find_images(inputs)
    head, ckpt = load_checkpoint(model_path)
    recorded = ckpt["features"]
    class_names = tuple(ckpt["class_names"])
    model, transform = load_backbone(recorded, weights=weights, device=device)
    dtype = next(head.parameters()).dtype
    results: list[Prediction | None] = [None] * len(paths)
    with progress(len(paths), "predict", unit="img") as bar:
        for batch in backbones.iter_features(
            model,
            transform,
            ".",  # paths are as given: absolute, or relative to the working directory
            paths,
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


def format_lines(predictions: Sequence[Prediction]) -> list[str]:
    """One human-readable line per prediction: path, class, its probability, all classes."""
    width = min(max((len(p.path) for p in predictions), default=0), MAX_PATH_WIDTH)
    lines = []
    for p in predictions:
        if not p.ok:
            lines.append(f"{p.path:<{width}}  FAILED  {p.error}")
            continue
        name_width = max(len(c) for c in p.class_names)
        probs = p.probabilities
        every = "  ".join(f"{c} {q:.3f}" for c, q in zip(p.class_names, probs, strict=True))
        lines.append(f"{p.path:<{width}}  {p.predicted:<{name_width}}  {probs.max():.3f}   {every}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.predict",
        description="Classify images with a trained head and the backbone its features "
        "came from. Runs on extract.device in batches of extract.batch_size.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images or folders")
    parser.add_argument(
        "--model", metavar="FILE", help="the head (default: <train.out_dir>/model.pt)"
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="backbone state-dict file to use instead of the recorded one (must have the "
        "recorded sha256)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    add_params_arguments(parser)
    args = parser.parse_args(argv)
    cli.setup_logging()

    def task() -> None:
        params = load_params(args.params, args.overrides)
        model = args.model or str(Path(params.train.out_dir) / "model.pt")
        predictions = predict(
            model,
            args.inputs,
            weights=args.weights,
            device=params.extract.device,
            batch_size=params.extract.batch_size,
            workers=params.extract.workers,
        )
        if args.json:
            print(json.dumps([p.to_json() for p in predictions], indent=2))
        else:
            print("\n".join(format_lines(predictions)))
        failed = [p.path for p in predictions if not p.ok]
        if failed:
            raise DataError(
                f"{len(failed)} of {len(predictions)} images could not be decoded: "
                + ", ".join(failed)
            )

    return cli.run(task)


if __name__ == "__main__":
    sys.exit(main())
