"""The one extraction loop: any source's rows, through a frozen backbone or not, into a store.

An up-to-date output is recognised before torchvision is imported; finished batches are kept
so an interrupted run resumes; the store is written once, atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backbones import weights as weights_names
from pipeline.common.config import DataConfig, ExtractConfig
from pipeline.common.errors import BadImageError, FeatureStoreError
from pipeline.common.files import file_sha256
from pipeline.common.progress import progress
from pipeline.extraction.checks import SKIP_HINT, checked_rows
from pipeline.extraction.job import Job
from pipeline.extraction.partial import Chunk, Partial, for_extraction, locked
from pipeline.sources import catalog
from pipeline.sources.base import Encoder, Listing, Source
from pipeline.store.hdf5 import (
    RANDOM_INIT_WARNING,
    SplitArrays,
    StoreMeta,
    load_splits,
    read_meta,
    write,
    write_like,
)
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


def stale_reason(job: Job) -> str | None:
    """Why ``job.out`` must be (re)written (reasons joined by "; "), or None when up to date."""
    meta, reasons = _stale_reasons(job)
    images = job.images
    if meta is not None and not reasons and images is not None:
        if meta.extra.get("images") != images:
            reasons.append(f"the data folder it records -> {images['dir']!r}")
    return "; ".join(reasons) if reasons else None


def _stale_reasons(job: Job) -> tuple[StoreMeta | None, list[str]]:
    """The existing store's metadata (None if unreadable) and why it differs, data folder aside."""
    source, listing, cfg = job.source, job.listing, job.cfg
    try:
        meta = read_meta(job.out)
    except FeatureStoreError as exc:
        return None, [f"the existing file is not usable ({exc})"]
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
        (meta.shard == job.shard, f"shard {meta.shard} -> {job.shard}"),
        (stored == metadata, f"{source.kind} settings {stored} -> {metadata}"),
        (meta.dataset_fingerprint == job.fingerprint, "the rows changed (dataset fingerprint)"),
    ]
    return meta, [reason for ok, reason in checks if not ok]


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
    job: Job,
    split: str,
    rows: list[str],
    encoder: Encoder | None,
    resume: tuple[Partial, list[Chunk]] | None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Features (N, D) of ``rows``, the rows that gave them, and (position, reason) of the rest."""
    source, cfg = job.source, job.cfg
    partial, chunks = resume if resume is not None else (None, [])
    chunks = list(chunks)
    on_bad = cfg.on_bad_image if cfg is not None else "error"
    batch_size, workers = (cfg.batch_size, cfg.workers) if cfg is not None else (1, 0)
    base = offset = chunks[-1].stop if chunks else 0  # rows before base are done
    unit = "img" if source.needs_backbone else "row"
    with progress(len(rows), f"extract {split}", unit=unit) as bar:
        bar.update(base)
        todo = rows[base:]  # batch positions below are positions in todo
        for batch in source.iterate(split, todo, encoder, batch_size=batch_size, workers=workers):
            failed = [(base + i, reason) for i, reason in batch.failed]
            for i, reason in failed:
                if on_bad == "error":
                    raise BadImageError(source.location(rows[i]), f"{reason}; {SKIP_HINT}")
                log.warning("skipping undecodable image %s: %s", rows[i], reason)
            n = len(batch.indices) + len(batch.failed)
            indices = base + np.asarray(batch.indices, dtype=np.int64)
            chunk = Chunk(split, offset, offset + n, indices, batch.features, failed)
            if partial is not None:
                partial.add(chunk)
            chunks.append(chunk)
            offset += n
            bar.update(n)
    return _assemble(rows, chunks, getattr(encoder, "feature_dim", None))


def _assemble(
    rows: list[str], chunks: list[Chunk], dim: int | None
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    with_rows = [c for c in chunks if len(c.indices)]
    dim = dim or (with_rows[0].features.shape[1] if with_rows else 0)
    # float32, or complex128 when a source yields complex features (the QQ data set's kets)
    dtype = np.complex128 if any(np.iscomplexobj(c.features) for c in with_rows) else np.float32
    feats = np.empty((len(rows), dim), dtype)  # (N, D)
    ok = np.zeros(len(rows), dtype=bool)
    for chunk in with_rows:
        feats[chunk.indices] = chunk.features
        ok[chunk.indices] = True
    return feats, ok, [f for c in chunks for f in c.failed]


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
        cfg: the backbone and its run settings; None for a source without a backbone.
        fingerprint: the source's fingerprint, when the caller has computed it already.

    Raises:
        DataError: bad folder layout, an empty class, or undecodable images (all named at once).
        WeightsError: unknown or unavailable weights.
    """
    start = time.perf_counter()
    out = Path(out) if shard is None else shard.path(out)
    listing = source.list()
    _log_listing(listing)
    selection, shard_meta = _selection(listing, shard)
    job = Job(source, listing, fingerprint or source.fingerprint(listing), out, cfg, shard_meta)
    # one extraction per backbone store at a time; shards and generated stores write the same bytes
    lock = shard is None and source.needs_backbone
    with locked(out) if lock else contextlib.nullcontext():
        if out.exists() and not force:
            done = up_to_date(job, start)
            if done is not None:
                return done
        rows, bad = checked_rows(source, listing, selection, cfg, whole=shard is None)
        if source.needs_backbone:
            if cfg is None:
                raise ValueError(f"source {source.kind!r} needs a backbone; got cfg None")
            encoder, provenance, extra = _encoder(cfg)
        else:
            encoder, provenance, extra = None, dataclasses.asdict(source.provenance), {}
        images = job.images
        extra = extra | source.metadata() | ({"images": images} if images else {})
        extra |= {"shard": shard_meta} if shard_meta else {}
        loop_start = time.perf_counter()
        partial = for_extraction(job, rows, provenance | extra)
        splits, skipped, resumed = _extract_rows(job, rows, bad, encoder, partial)
        meta = write(
            out,
            splits,
            class_names=listing.class_names,
            source=source.kind,
            dataset_fingerprint=job.fingerprint,
            skipped=skipped,
            extra=extra,
            **provenance,
        )
        if partial is not None:
            partial.remove()
    _log_written(out, splits, skipped, loop_start, start, resumed)
    if meta.random_init:
        log.warning("%s", RANDOM_INIT_WARNING)
    return ExtractResult(out, meta, False, time.perf_counter() - start)


def up_to_date(job: Job, start: float) -> ExtractResult | None:
    """The result when the output needs no extraction (a moved data folder re-recorded), or None."""
    out = job.out
    meta, reasons = _stale_reasons(job)
    images = job.images
    if meta is not None and not reasons:
        if images is None or meta.extra.get("images") == images:
            log.info("%s is up to date (same rows, settings, backbone and weights)", out)
            return ExtractResult(out, meta, True, time.perf_counter() - start)
        meta = _rerecord(out, meta, images)
        log.info("%s: same features; recorded the data folder %s", out, images["dir"])
        return ExtractResult(out, meta, False, time.perf_counter() - start)
    log.info("re-extracting %s: %s", out, "; ".join(reasons))
    return None


def _rerecord(out: Path, meta: StoreMeta, images: dict[str, Any]) -> StoreMeta:
    """Rewrite ``out`` with the same arrays and metadata but another ``extra["images"]``."""
    parts = load_splits(out, meta.splits)
    arrays = {s: SplitArrays(p.features, p.labels, p.paths) for s, p in parts.items()}
    return write_like(out, arrays, meta, extra=meta.extra | {"images": images})


def _extract_rows(
    job: Job,
    rows: dict[str, list[int]],
    bad: list[tuple[str, int, str]],
    encoder: Encoder | None,
    partial: Partial | None,
) -> tuple[dict[str, SplitArrays], list[dict[str, str]], int]:
    """Every split's arrays, the skipped rows, and how many rows were resumed."""
    listing = job.listing
    done = partial.load() if partial is not None else {}
    n_done = sum(c.stop - c.start for chunks in done.values() for c in chunks)
    if n_done:
        total = sum(len(p) for p in rows.values())
        log.info("resuming: %d of %d images already extracted (%s)", n_done, total, partial.dir)
    splits: dict[str, SplitArrays] = {}
    failed: list[tuple[str, int, str]] = list(bad)
    for split, positions in rows.items():
        names = [listing.rows[split][i] for i in positions]
        resume = (partial, done.get(split, [])) if partial is not None else None
        feats, ok, lost = _extract_split(job, split, names, encoder, resume)
        failed += [(split, positions[i], reason) for i, reason in lost]
        labels = listing.labels[split][positions]
        splits[split] = SplitArrays(
            feats[ok], labels[ok], [r for r, k in zip(names, ok, strict=True) if k]
        )
    order = {s: k for k, s in enumerate(listing.rows)}
    failed.sort(key=lambda f: (order[f[0]], f[1]))
    skipped = [{"path": listing.rows[s][i], "error": r} for s, i, r in failed]
    return splits, skipped, n_done


def _log_written(out, splits, skipped, loop_start: float, start: float, resumed: int = 0) -> None:
    n_done = sum(len(a.labels) for a in splits.values()) - resumed
    loop_seconds = time.perf_counter() - loop_start
    log.info(
        "wrote %s: %s; %d rows read and encoded in %.1f s (%.1f rows/s)%s, %.1f s in all%s",
        out,
        ", ".join(f"{s} {len(a.labels)}" for s, a in splits.items()),
        n_done,
        loop_seconds,
        n_done / max(loop_seconds, 1e-9),
        f", {resumed} read back from the interrupted run" if resumed else "",
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
    """Stage one for a params file: :func:`extract` of ``data``'s images into ``cfg.out``."""
    source = catalog.image_source(data)
    return extract(source, cfg.out, cfg, force=force, shard=shard, fingerprint=fingerprint)
