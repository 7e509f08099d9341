"""The one extraction loop: any source's rows, through a frozen backbone or not, into a store.

For every source (:mod:`pipeline.sources`): list the rows, fingerprint them, stop early when
the output is already up to date (:func:`stale_reason`: same rows, settings, backbone, weights
and transforms; torchvision is not even imported then), build the backbone only when the
source needs one and there is work to do, run the rows of each split (or of one shard) in
batches with progress, skip or refuse rows that cannot be read (``extract.on_bad_image``),
and write the store atomically with its provenance (:func:`pipeline.store.hdf5.write`).

:func:`feature_store` gives stage two the store it should read, writing a generated one
(``spiral.out``) first when it is missing or stale.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backbones import weights as weights_names
from pipeline.common.config import DataConfig, ExtractConfig, Params
from pipeline.common.errors import BadImageError, FeatureStoreError
from pipeline.common.files import file_sha256
from pipeline.common.progress import progress
from pipeline.sources import catalog
from pipeline.sources.base import Encoder, Listing, Source
from pipeline.store.hdf5 import RANDOM_INIT_WARNING, SplitArrays, StoreMeta, read_meta, write
from pipeline.store.shards import Shard

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class ExtractResult:
    path: Path
    meta: StoreMeta
    up_to_date: bool  # True: nothing was computed
    seconds: float


def _backbone_checks(meta: StoreMeta, cfg: ExtractConfig) -> list[tuple[bool, str]]:
    kind = weights_names.kind(cfg.weights)
    return [
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
            kind != "file" or meta.weights_sha256 == file_sha256(cfg.weights),
            "the weights file's content changed",
        ),
        (
            meta.versions.get("torchvision") == version("torchvision"),
            "torchvision version (and so possibly the transforms) changed",
        ),
        (
            not meta.skipped or cfg.on_bad_image == "skip",
            "it skipped bad images but extract.on_bad_image is 'error'",
        ),
    ]


def stale_reason(
    out: str | Path,
    source: Source,
    listing: Listing,
    fingerprint: str,
    cfg: ExtractConfig | None,
    shard: dict[str, int] | None = None,
) -> str | None:
    """Why ``out`` must be (re)written (every reason, joined by "; "), or None when it already
    holds these features.

    Args:
        out: the existing store.
        source, listing, fingerprint: what it should hold.
        cfg: the backbone's settings (None for a source without a backbone).
        shard: the expected shard record (:meth:`Shard.meta`), None for a whole store.
    """
    try:
        meta = read_meta(out)
    except FeatureStoreError as exc:
        return f"the existing file is not usable ({exc})"
    splits = tuple(listing.rows)
    metadata = source.metadata()
    stored = {key: meta.extra.get(key) for key in metadata}
    checks = [(meta.source == source.kind, f"source {meta.source!r} -> {source.kind!r}")]
    if cfg is not None:
        checks += _backbone_checks(meta, cfg)
    checks += [
        (meta.splits == splits, f"splits {list(meta.splits)} -> {list(splits)}"),
        (
            meta.class_names == listing.class_names,
            f"classes {list(meta.class_names)} -> {list(listing.class_names)}",
        ),
        (meta.shard == shard, f"shard {meta.shard} -> {shard}"),
        (stored == metadata, f"{source.kind} settings {stored} -> {metadata}"),
        (meta.dataset_fingerprint == fingerprint, "the rows changed (dataset fingerprint)"),
    ]
    reasons = [reason for ok, reason in checks if not ok]
    return "; ".join(reasons) if reasons else None


def _log_listing(listing: Listing) -> None:
    for split, rows in listing.rows.items():
        counts = np.bincount(listing.labels[split], minlength=len(listing.class_names))
        per_class = ", ".join(f"{c} {k}" for c, k in zip(listing.class_names, counts, strict=True))
        ignored = listing.ignored.get(split)
        note = ""
        if ignored is not None:
            note = f"; {len(ignored)} non-image files ignored"
            note += f" ({', '.join(ignored[:3])}{', ...' if len(ignored) > 3 else ''})" * bool(
                ignored
            )
        log.info("%s: %d rows (%s)%s", split, len(rows), per_class, note)


def _encoder(cfg: ExtractConfig) -> tuple[Encoder, dict[str, Any], dict[str, Any]]:
    """Build the backbone: (encoder, store provenance, provenance's ``extra`` entries)."""
    # torch + torchvision: imported only when there is work to do
    from pipeline.backbones import inference, models

    model, info = models.build(cfg.backbone, cfg.weights, seed=cfg.seed, device=cfg.device)
    log.info(
        "%s on %s, batch %d, %d decode workers",
        weights_names.describe(cfg.backbone, info.kind, info.name, info.sha256[:12], info.seed),
        next(model.parameters()).device,
        cfg.batch_size,
        cfg.workers,
    )
    provenance = {
        "backbone": cfg.backbone,
        "weights": info.name,
        "weights_sha256": info.sha256,
        "transform": info.transform_description,
    }
    extra: dict[str, Any] = {"weights_kind": info.kind}
    if info.kind == "none":
        extra |= {"weights_seed": cfg.seed, "warning": RANDOM_INIT_WARNING}
    encoder = inference.Encoder(model, info.transform, models.spec(cfg.backbone).feature_dim)
    return encoder, provenance, extra


def _extract_split(
    source: Source,
    split: str,
    rows: list[str],
    encoder: Encoder | None,
    cfg: ExtractConfig | None,
    skipped: list[dict[str, str]],
) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) of ``rows`` and which rows gave them; skipped rows go to ``skipped``."""
    chunks: list[tuple[list[int], np.ndarray]] = []
    on_bad = cfg.on_bad_image if cfg is not None else "error"
    batch_size, workers = (cfg.batch_size, cfg.workers) if cfg is not None else (1, 0)
    unit = "img" if source.needs_backbone else "row"
    with progress(len(rows), f"extract {split}", unit=unit) as bar:
        for batch in source.iterate(split, rows, encoder, batch_size=batch_size, workers=workers):
            for i, reason in batch.failed:
                if on_bad == "error":
                    raise BadImageError(source.location(rows[i]), reason)
                log.warning("skipping undecodable image %s: %s", rows[i], reason)
                skipped.append({"path": rows[i], "error": reason})
            if batch.indices:
                chunks.append((batch.indices, batch.features))
            bar.update(len(batch.indices) + len(batch.failed))
    dim = getattr(encoder, "feature_dim", None) or (chunks[0][1].shape[1] if chunks else 0)
    # float32, or complex128 when a source yields complex features (the QQ data set's kets)
    dtype = np.complex128 if any(np.iscomplexobj(f) for _, f in chunks) else np.float32
    feats = np.empty((len(rows), dim), dtype)
    ok = np.zeros(len(rows), dtype=bool)
    for indices, values in chunks:
        feats[indices] = values
        ok[indices] = True
    return feats, ok


def _selection(
    listing: Listing, shard: Shard | None
) -> tuple[dict[str, range], dict[str, int] | None]:
    """The rows of each split to extract (all, or a shard's), and the shard's record."""
    if shard is None:
        return {s: range(len(r)) for s, r in listing.rows.items()}, None
    record = shard.meta(listing.total)
    log.info(
        "shard %d/%d: rows %d..%d of %d",
        shard.index,
        shard.count,
        record["start"],
        record["stop"] - 1,
        record["total"],
    )
    return listing.select(record["start"], record["stop"]), record


def extract(
    source: Source,
    out: str | Path,
    cfg: ExtractConfig | None = None,
    *,
    force: bool = False,
    shard: Shard | None = None,
    fingerprint: str | None = None,
) -> ExtractResult:
    """Extract the features of every row of ``source`` (or of one shard) into ``out``.

    Args:
        source: an image source (:func:`pipeline.sources.catalog.image_source`) or a
            generated one.
        out: the store to write (a shard goes to ``shard.path(out)``).
        cfg: backbone, weights, device, batch size, workers and bad-image policy; None for a
            source without a backbone.
        force: extract even when the output is up to date.
        shard: extract only this part of the rows.
        fingerprint: the source's fingerprint when the caller has already computed it (Dask
            tasks get it from the client instead of each hashing every image).

    Returns:
        An :class:`ExtractResult`.

    Raises:
        DataError: bad folder layout, or an undecodable image with ``on_bad_image: error``.
        WeightsError: unknown or unavailable weights.
    """
    start = time.perf_counter()
    out = Path(out) if shard is None else shard.path(out)
    listing = source.list()
    _log_listing(listing)
    fingerprint = fingerprint or source.fingerprint(listing)
    selection, shard_meta = _selection(listing, shard)
    if out.exists() and not force:
        reason = stale_reason(out, source, listing, fingerprint, cfg, shard_meta)
        if reason is None:
            log.info("%s is up to date (same rows, settings, backbone and weights)", out)
            return ExtractResult(out, read_meta(out), True, time.perf_counter() - start)
        log.info("re-extracting %s: %s", out, reason)
    if source.needs_backbone:
        if cfg is None:
            raise ValueError(f"source {source.kind!r} needs a backbone; got cfg None")
        encoder, provenance, extra = _encoder(cfg)
    else:
        encoder, provenance, extra = None, dataclasses.asdict(source.provenance), {}
    loop_start = time.perf_counter()
    splits: dict[str, SplitArrays] = {}
    skipped: list[dict[str, str]] = []
    for split, positions in selection.items():
        rows = [listing.rows[split][i] for i in positions]
        feats, ok = _extract_split(source, split, rows, encoder, cfg, skipped)
        labels = listing.labels[split][list(positions)]
        splits[split] = SplitArrays(
            feats[ok], labels[ok], [r for r, k in zip(rows, ok, strict=True) if k]
        )
    meta = write(
        out,
        splits,
        class_names=listing.class_names,
        source=source.kind,
        dataset_fingerprint=fingerprint,
        skipped=skipped,
        extra=extra | source.metadata() | ({"shard": shard_meta} if shard_meta else {}),
        **provenance,
    )
    _log_written(out, splits, skipped, loop_start, start)
    if meta.random_init:
        log.warning("%s", RANDOM_INIT_WARNING)
    return ExtractResult(out, meta, False, time.perf_counter() - start)


def _log_written(out, splits, skipped, loop_start: float, start: float) -> None:
    n_done = sum(len(a.labels) for a in splits.values())
    loop_seconds = time.perf_counter() - loop_start
    log.info(
        "wrote %s: %s; %d rows read and encoded in %.1f s (%.1f rows/s), %.1f s in all%s",
        out,
        ", ".join(f"{s} {len(a.labels)}" for s, a in splits.items()),
        n_done,
        loop_seconds,
        n_done / max(loop_seconds, 1e-9),
        time.perf_counter() - start,
        f"; {len(skipped)} undecodable images skipped" if skipped else "",
    )


def extract_images(
    data: DataConfig,
    cfg: ExtractConfig,
    *,
    force: bool = False,
    shard: Shard | None = None,
    fingerprint: str | None = None,
) -> ExtractResult:
    """Stage one for a params file: :func:`extract` of ``data``'s images into ``cfg.out``.

    Example:
        >>> params = load_params("params.yaml", ["extract.weights=none"])
        >>> extract_images(params.data, params.extract).meta.splits
        ('train', 'val')
    """
    source = catalog.image_source(data)
    return extract(source, cfg.out, cfg, force=force, shard=shard, fingerprint=fingerprint)


def feature_store(params: Params) -> str:
    """The store stage two reads for ``params`` (:attr:`Params.features_path`), ready to read.

    When it is a generated data set's store (``spiral.out``, placeholders filled in), it is
    written first if missing or made with other settings, so that runs over several
    ``spiral.turns`` each find their own store. Any other store is returned as it is.

    Example:
        >>> feature_store(load_params("params-spiral.yaml"))
        'features/spiral-1.52.h5'
    """
    path = params.features_path
    source = catalog.generated_source(params, path)
    if source is not None:
        extract(source, path)
    return path
