"""Stage one: run a frozen backbone once over the image folder and store its features.

    python -m pipeline.extract [--params params.yaml] [--set extract.weights=none] [--force]
        [--shard K/N | --scheduler tcp://HOST:PORT | --dask-workers N [--shards M]]

Reads ``data.dir/<split>/<class>/<image>`` for ``data.splits`` and writes ``extract.out``
(see :mod:`pipeline.features`). When that file is already complete and was made from the
same images (content fingerprint), backbone, weights and torchvision transforms, the command
says so and exits without building the model; ``--force`` extracts anyway.

Scaling out:

* ``--shard K/N`` extracts only the K-th of N contiguous parts of the images (listing order,
  all splits) into ``extract.out`` with a ``.shard-K-of-N`` suffix before its extension; run
  the N commands anywhere, then ``python -m pipeline.features merge OUT SHARD...``.
* ``--scheduler ADDRESS`` or ``--dask-workers N`` runs ``--shards M`` shards (default: one per
  Dask worker thread) as Dask tasks, merges them into ``extract.out`` and deletes them. Each
  shard has its own up-to-date check, so a rerun after a failure redoes only missing shards.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from pipeline import cli, cluster, features, images
from pipeline.config import DataConfig, ExtractConfig, add_params_arguments, load_params
from pipeline.errors import BadImageError, ConfigError, FeatureStoreError
from pipeline.features import Shard
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
    shard: dict[str, int] | None = None,
    *,
    source: str = "folder",
) -> str | None:
    """Why ``out`` must be (re)written, or None when it already holds these features.

    ``shard`` is the expected ``extra["shard"]`` record (:meth:`Shard.meta`), None for a
    whole extraction.
    """
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
        (
            meta.extra.get(features.SHARD_KEY) == shard,
            f"shard {meta.extra.get(features.SHARD_KEY)} -> {shard}",
        ),
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


def write_store(
    out: Path,
    splits: dict[str, features.SplitArrays],
    cfg: ExtractConfig,
    info,
    *,
    class_names: Sequence[str],
    source: str,
    dataset_fingerprint: str,
    skipped: Sequence[dict[str, str]] = (),
    extra: dict | None = None,
) -> features.StoreMeta:
    """:func:`features.write` with the backbone's provenance from ``cfg`` and its weights.

    ``info`` is the :class:`pipeline.backbones.WeightsInfo` of the model that made the
    features; a random init (``weights: none``) records its seed and a loud warning.
    """
    from pipeline import backbones

    provenance: dict = {"weights_kind": info.kind}
    if info.kind == "none":
        provenance |= {"weights_seed": cfg.seed, "warning": backbones.RANDOM_INIT_WARNING}
    return features.write(
        out,
        splits,
        class_names=class_names,
        source=source,
        backbone=cfg.backbone,
        weights=info.name,
        weights_sha256=info.sha256,
        transform=info.transform_description,
        dataset_fingerprint=dataset_fingerprint,
        skipped=skipped,
        extra=provenance | (extra or {}),
    )


def select(listing: images.ImageListing, shard: Shard | None) -> dict[str, list[images.Sample]]:
    """The samples of each split that ``shard`` covers (all of them for ``None``).

    The images of all splits, in listing order, are cut into ``shard.count`` contiguous ranges
    of near-equal size (:meth:`Shard.bounds`); concatenating the shards in order gives back
    the listing.
    """
    if shard is None:
        return dict(listing.samples)
    start, stop = shard.bounds(len(listing.all_samples()))
    selected, offset = {}, 0
    for split, samples in listing.samples.items():
        selected[split] = samples[max(start - offset, 0) : max(stop - offset, 0)]
        offset += len(samples)
    return selected


def extract(
    data: DataConfig,
    cfg: ExtractConfig,
    *,
    force: bool = False,
    shard: Shard | None = None,
    fingerprint: str | None = None,
) -> ExtractResult:
    """Extract features of every image in ``data.splits`` (or of one shard) into ``cfg.out``.

    Args:
        data: where the images are (``data.dir``, ``data.splits``); ``data.source: cifar10``
            goes to :func:`pipeline.cifar10.extract`.
        cfg: backbone, weights, device, batch size, workers, bad-image policy, output path.
        force: extract even when the output is up to date.
        shard: extract only this part of the images, into ``shard.path(cfg.out)``.
        fingerprint: the dataset fingerprint when the caller has already computed it (Dask
            tasks get it from the client instead of each hashing every image).

    Returns:
        An :class:`ExtractResult`.

    Raises:
        DataError: bad folder layout, or an undecodable image with ``on_bad_image: error``.
        WeightsError: unknown or unavailable weights.
    """
    if data.source == "cifar10":
        if shard is not None:
            raise ConfigError(
                "--shard: sharded extraction reads image folders (data.source: folder); "
                "got data.source 'cifar10'"
            )
        from pipeline import cifar10

        return cifar10.extract(data, cfg, force=force)
    start = time.perf_counter()
    out = Path(cfg.out) if shard is None else shard.path(cfg.out)
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
    fingerprint = fingerprint or images.fingerprint(listing)
    selected = select(listing, shard)
    shard_meta = None if shard is None else shard.meta(len(listing.all_samples()))
    if shard_meta is not None:
        log.info(
            "shard %d/%d: images %d..%d of %d",
            shard.index,
            shard.count,
            shard_meta["start"],
            shard_meta["stop"] - 1,
            shard_meta["total"],
        )
    if out.exists() and not force:
        reason = stale_reason(out, data, cfg, listing, fingerprint, shard_meta)
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
        samples = selected[split]
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
    meta = write_store(
        out,
        splits,
        cfg,
        info,
        class_names=listing.class_names,
        source="folder",
        dataset_fingerprint=fingerprint,
        skipped=skipped,
        extra={features.SHARD_KEY: shard_meta} if shard_meta is not None else None,
    )
    seconds = time.perf_counter() - start
    loop_seconds = time.perf_counter() - loop_start
    log.info(
        "wrote %s: %s; %d images decoded and forwarded in %.1f s (%.1f img/s), %.1f s in all%s",
        out,
        ", ".join(f"{s} {len(a.labels)}" for s, a in splits.items()),
        n_done,
        loop_seconds,
        n_done / max(loop_seconds, 1e-9),
        seconds,
        f"; {len(skipped)} undecodable images skipped" if skipped else "",
    )
    if info.kind == "none":
        log.warning("%s", backbones.RANDOM_INIT_WARNING)
    return ExtractResult(out, meta, False, seconds)


def _extract_shard(
    data: DataConfig, cfg: ExtractConfig, shard: Shard, fingerprint: str, force: bool
) -> tuple[str, bool, float]:
    """One Dask task: extract one shard; returns (shard file, was up to date, seconds)."""
    import multiprocessing

    if cfg.workers and multiprocessing.current_process().daemon:
        # Dask runs tasks in daemonic processes, which cannot start DataLoader workers.
        cfg = replace(cfg, workers=0)
    result = extract(data, cfg, force=force, shard=shard, fingerprint=fingerprint)
    return str(result.path), result.up_to_date, result.seconds


def extract_on_dask(
    data: DataConfig,
    cfg: ExtractConfig,
    client,
    *,
    shards: int | None = None,
    force: bool = False,
) -> ExtractResult:
    """Extract ``cfg.out`` as shards run as Dask tasks, then merge them (:func:`features.merge`).

    The client lists and fingerprints the images once and checks whether ``cfg.out`` is up to
    date; each task runs :func:`extract` on one :class:`Shard` and writes its shard file beside
    ``cfg.out`` (so workers must see ``data.dir`` and ``cfg.out``'s folder at the same paths);
    the client merges the shard files and deletes them. Shards left by an interrupted run are
    reused when up to date.

    Args:
        data, cfg, force: as for :func:`extract`.
        client: a ``dask.distributed.Client`` (:func:`pipeline.cluster.connect`).
        shards: number of shards; default one per worker thread, at most one per image.

    Returns:
        An :class:`ExtractResult` for the merged file.
    """
    from distributed import as_completed

    if data.source != "folder":
        raise ConfigError(
            "--scheduler/--dask-workers: sharded extraction reads image folders (data.source: "
            f"folder); got data.source {data.source!r}"
        )
    start = time.perf_counter()
    out = Path(cfg.out)
    listing = images.scan(data.dir, data.splits)
    fingerprint = images.fingerprint(listing)
    total = len(listing.all_samples())
    if out.exists() and not force:
        reason = stale_reason(out, data, cfg, listing, fingerprint)
        if reason is None:
            log.info("%s is up to date (same images, backbone, weights and transform)", out)
            return ExtractResult(out, features.read_meta(out), True, time.perf_counter() - start)
        log.info("re-extracting %s: %s", out, reason)
    n = max(1, min(shards or cluster.total_threads(client), total))
    log.info("extracting %d images as %d shards on %s", total, n, client.scheduler.address)
    token = uuid.uuid4().hex[:8]  # task keys unique to this run, on a shared cluster too
    futures = [
        client.submit(
            _extract_shard,
            data,
            cfg,
            Shard(k, n),
            fingerprint,
            force,
            key=f"extract-{k}-of-{n}-{token}",
        )
        for k in range(1, n + 1)
    ]
    paths: list[str] = []
    try:
        with progress(n, "extract shards", unit="shard") as bar:
            for future in as_completed(futures):
                path, up_to_date, seconds = future.result()
                log.info(
                    "%s %s in %.1f s", path, "was up to date" if up_to_date else "done", seconds
                )
                paths.append(path)
                bar.update(1)
    finally:
        for future in futures:
            future.cancel()
    meta = features.merge(out, paths)
    for path in paths:
        Path(path).unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    log.info(
        "merged %d shards into %s in %.1f s in all (%.1f img/s)", n, out, seconds, total / seconds
    )
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
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--shard",
        type=Shard.parse,
        metavar="K/N",
        help="extract only the K-th of N parts of the images, into extract.out with a "
        ".shard-K-of-N suffix (merge with `python -m pipeline.features merge`)",
    )
    cluster.add_cluster_arguments(where)
    parser.add_argument(
        "--shards",
        type=cluster.positive_int,
        metavar="M",
        help="with --scheduler/--dask-workers: number of shards (default: one per worker thread)",
    )
    args = parser.parse_args(argv)
    on_dask = args.scheduler is not None or args.dask_workers is not None
    if args.shards is not None and not on_dask:
        parser.error("--shards needs --scheduler or --dask-workers")
    cli.setup_logging()

    def task() -> None:
        params = load_params(args.params, args.overrides)
        if on_dask:
            with cluster.connect(args.scheduler, args.dask_workers) as client:
                extract_on_dask(
                    params.data, params.extract, client, shards=args.shards, force=args.force
                )
        else:
            result = extract(params.data, params.extract, force=args.force, shard=args.shard)
            if args.shard is not None:
                log.info(
                    "shard %s written; when all %d are: python -m pipeline.features merge %s %s",
                    result.path,
                    args.shard.count,
                    params.extract.out,
                    " ".join(
                        str(Shard(k, args.shard.count).path(params.extract.out))
                        for k in range(1, args.shard.count + 1)
                    ),
                )

    return cli.run(task)


if __name__ == "__main__":
    # Run the imported module rather than this __main__ copy, so that the functions sent to
    # worker processes pickle by reference (pipeline.extract.*), not by value.
    from pipeline.extract import main as _main

    sys.exit(_main())
