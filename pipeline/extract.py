"""Stage one: run a frozen backbone once over the image folder and store its features.

    python -m pipeline.extract [--params params.yaml] [--set extract.weights=none] [--force]

Reads ``data.dir/<split>/<class>/<image>`` for ``data.splits`` and writes ``extract.out``
(see :mod:`pipeline.features`). When that file is already complete and was made from the
same images (content fingerprint), backbone, weights and torchvision transforms, the command
says so and exits without building the model; ``--force`` extracts anyway.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pipeline import cli, features, images
from pipeline.config import DataConfig, ExtractConfig, add_params_arguments, load_params
from pipeline.errors import BadImageError, FeatureStoreError
from pipeline.progress import progress

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    meta: features.StoreMeta
    up_to_date: bool  # True: nothing was computed
    seconds: float


def _weights_kind_light(weights: str) -> str:
    """``none``, ``file`` (an existing path) or ``torchvision`` (an enum name), without imports."""
    if weights == "none":
        return "none"
    return "file" if Path(weights).is_file() else "torchvision"


def stale_reason(
    out: Path,
    data: DataConfig,
    cfg: ExtractConfig,
    listing: images.ImageListing | None,
    fingerprint: str,
    *,
    source: str = "folder",
) -> str | None:
    """Why ``out`` must be (re)written, or None when it already holds these features."""
    try:
        meta = features.read_meta(out)
    except FeatureStoreError as exc:
        return f"the existing file is not usable ({exc})"
    kind = _weights_kind_light(cfg.weights)
    checks = [
        (meta.source == source, f"source {meta.source!r} -> {source!r}"),
        (meta.backbone == cfg.backbone, f"backbone {meta.backbone!r} -> {cfg.backbone!r}"),
        (meta.extra.get("weights_kind") == kind, f"weights kind -> {kind!r}"),
        (
            kind == "file" or meta.weights == cfg.weights,
            f"weights {meta.weights!r} -> {cfg.weights!r}",
        ),
        (
            kind != "none" or meta.extra.get("weights_seed") == cfg.seed,
            f"random-init seed {meta.extra.get('weights_seed')} -> {cfg.seed}",
        ),
        (
            kind != "file" or meta.weights_sha256 == images.file_sha256(cfg.weights),
            "the weights file's content changed",
        ),
        (
            meta.versions.get("torchvision") == version("torchvision"),
            "torchvision version (and so possibly the transforms) changed",
        ),
        (meta.splits == tuple(data.splits), f"splits {list(meta.splits)} -> {list(data.splits)}"),
        (meta.dataset_fingerprint == fingerprint, "the images changed (dataset fingerprint)"),
        (
            not meta.skipped or cfg.on_bad_image == "skip",
            "it skipped bad images but extract.on_bad_image is 'error'",
        ),
    ]
    for ok, reason in checks:
        if not ok:
            return reason
    return None


def extract(data: DataConfig, cfg: ExtractConfig, *, force: bool = False) -> ExtractResult:
    """Extract features of every image in ``data.splits`` into ``cfg.out``.

    Args:
        data: where the images are (``data.dir``, ``data.splits``); ``data.source: cifar10``
            goes to :func:`pipeline.cifar10.extract`.
        cfg: backbone, weights, device, batch size, workers, bad-image policy, output path.
        force: extract even when the output is up to date.

    Returns:
        An :class:`ExtractResult`.

    Raises:
        DataError: bad folder layout, or an undecodable image with ``on_bad_image: error``.
        WeightsError: unknown or unavailable weights.
    """
    if data.source == "cifar10":
        from pipeline import cifar10

        return cifar10.extract(data, cfg, force=force)
    start = time.perf_counter()
    out = Path(cfg.out)
    listing = images.scan(data.dir, data.splits)
    for split in data.splits:
        ignored = listing.ignored[split]
        log.info(
            "%s: %d images in %d classes; %d non-image files ignored%s",
            split,
            len(listing.samples[split]),
            len(listing.class_names),
            len(ignored),
            f" ({', '.join(ignored[:3])}{', ...' if len(ignored) > 3 else ''})" if ignored else "",
        )
    fingerprint = images.fingerprint(listing)
    if out.exists() and not force:
        reason = stale_reason(out, data, cfg, listing, fingerprint)
        if reason is None:
            log.info("%s is up to date (same images, backbone, weights and transform)", out)
            return ExtractResult(out, features.read_meta(out), True, time.perf_counter() - start)
        log.info("re-extracting %s: %s", out, reason)

    from pipeline import backbones  # torch + torchvision: only when there is work to do

    model, info = backbones.build(cfg.backbone, cfg.weights, seed=cfg.seed, device=cfg.device)
    loop_start = time.perf_counter()
    device = next(model.parameters()).device
    log.info(
        "%s (%s weights %s, sha256 %s...) on %s, batch %d, %d decode workers",
        cfg.backbone,
        info.kind,
        info.name,
        info.sha256[:12],
        device,
        cfg.batch_size,
        cfg.workers,
    )
    splits: dict[str, features.SplitArrays] = {}
    skipped: list[dict[str, str]] = []
    n_done = 0
    for split in data.splits:
        samples = listing.samples[split]
        paths = [s.path for s in samples]
        feats = np.empty((len(samples), backbones.spec(cfg.backbone).feature_dim), np.float32)
        ok = np.zeros(len(samples), dtype=bool)
        with progress(len(samples), f"extract {split}", unit="img") as bar:
            for batch in backbones.iter_features(
                model,
                info.transform,
                listing.root,
                paths,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
            ):
                for i, reason in batch.failed:
                    if cfg.on_bad_image == "error":
                        raise BadImageError(str(listing.root / paths[i]), reason)
                    log.warning("skipping undecodable image %s: %s", paths[i], reason)
                    skipped.append({"path": paths[i], "error": reason})
                if batch.indices:
                    feats[batch.indices] = batch.features
                    ok[batch.indices] = True
                bar.update(len(batch.indices) + len(batch.failed))
        n_done += int(ok.sum())
        splits[split] = features.SplitArrays(
            features=feats[ok],
            labels=np.array([s.label for s in samples], dtype=np.int64)[ok],
            paths=[p for p, keep in zip(paths, ok, strict=True) if keep],
        )
    extra = {"weights_kind": info.kind}
    if info.kind == "none":
        extra |= {"weights_seed": cfg.seed, "warning": backbones.RANDOM_INIT_WARNING}
    meta = features.write(
        out,
        splits,
        class_names=listing.class_names,
        source="folder",
        backbone=cfg.backbone,
        weights=info.name,
        weights_sha256=info.sha256,
        transform=info.transform_description,
        dataset_fingerprint=fingerprint,
        skipped=skipped,
        extra=extra,
    )
    seconds = time.perf_counter() - start
    loop_seconds = time.perf_counter() - loop_start
    log.info(
        "wrote %s: %s; %d images decoded and forwarded in %.1f s (%.1f img/s), %.1f s in all%s",
        out,
        ", ".join(f"{s} {len(a.labels)}" for s, a in splits.items()),
        n_done,
        loop_seconds,
        n_done / loop_seconds,
        seconds,
        f"; {len(skipped)} undecodable images skipped" if skipped else "",
    )
    if info.kind == "none":
        log.warning("%s", backbones.RANDOM_INIT_WARNING)
    return ExtractResult(out, meta, False, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.extract",
        description="Stage one: extract frozen-backbone features into an HDF5 feature store.",
    )
    add_params_arguments(parser)
    parser.add_argument(
        "--force", action="store_true", help="extract even if the output is up to date"
    )
    args = parser.parse_args(argv)
    cli.setup_logging()

    def task() -> None:
        params = load_params(args.params, args.overrides)
        extract(params.data, params.extract, force=args.force)

    return cli.run(task)


if __name__ == "__main__":
    sys.exit(main())
