"""Stage two: train a head (quantum, classical or linear) on cached features.

    python -m pipeline.train_head [--params params.yaml] [--set train.q_depth=3]

Reads ``train.features`` (default ``extract.out``) through :func:`pipeline.features.load`,
trains with the paper's settings (Adam 4e-4, batch 4, 30 epochs, StepLR(10, 0.1) stepped after
each epoch, cross entropy, seed 42), evaluates on ``val`` after every epoch, keeps the
checkpoint with the best val accuracy (as the paper does: this selects on the test split;
``train.checkpoint: last`` keeps the final iterate instead) and writes into ``train.out_dir``:

* ``model.pt``: the kept state dict, the full train config, class names, the features' identity;
* ``metrics.json``: best and last epoch (val and train accuracy and loss, per-class accuracy,
  confusion matrix), parameter count, timing;
* ``history.csv``: epoch, train_loss, train_acc, val_loss, val_acc, lr;
* ``val_predictions.csv``: path, actual, predicted, probability (the kept checkpoint).

``train.features``, ``train.out_dir`` and ``spiral.out`` may hold placeholders such as
``{spiral.turns}``; a store that is ``spiral.out`` is generated first when missing or stale
(:func:`resolve_features`).

Same params and features file give identical bytes in all but ``metrics.json``'s ``timing``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import cli, features, files
from pipeline.config import Params, TrainConfig, add_params_arguments, load_params, to_dict
from pipeline.devices import resolve_device
from pipeline.errors import FeatureStoreError
from pipeline.heads import CHECKPOINT_VERSION, build_head
from pipeline.images import file_sha256
from pipeline.optim import make_optimizer

log = logging.getLogger("pipeline")

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
EVAL_CHUNK = 4096


@dataclass(frozen=True)
class HeadData:
    """Both splits of a feature store, checked, loaded once and shared by any number of runs."""

    path: str
    sha256: str  # of the file's bytes
    meta: features.StoreMeta
    train: features.FeatureSplit
    val: features.FeatureSplit

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.meta.class_names


def load_data(path: str | Path) -> HeadData:
    """Read and check the ``train`` and ``val`` splits of a feature store.

    Raises:
        FeatureStoreError: missing, incomplete, inconsistent (see :func:`features.load`), a
            shard, fewer than 2 classes, or a class without training rows.
    """
    splits = features.load_splits(path, ["train", "val"])
    train, val = splits["train"], splits["val"]
    meta = train.meta
    shard = meta.extra.get(features.SHARD_KEY)
    if shard:
        raise FeatureStoreError(
            f"feature store {str(path)!r} is shard {shard['index']}/{shard['count']} of an "
            "extraction; merge the shards first (python -m pipeline.features merge OUT SHARD...)"
        )
    if meta.n_classes < 2:
        raise FeatureStoreError(
            f"feature store {str(path)!r} has {meta.n_classes} class {list(meta.class_names)}; "
            "expected at least 2"
        )
    counts = np.bincount(train.labels, minlength=meta.n_classes)
    if (counts == 0).any():
        missing = [c for c, k in zip(meta.class_names, counts, strict=True) if k == 0]
        raise FeatureStoreError(
            f"feature store {str(path)!r}: expected training rows for all {meta.n_classes} "
            f"classes; got none for {missing}"
        )
    return HeadData(str(path), file_sha256(path), meta, train, val)


@dataclass
class TrainResult:
    """What :func:`fit` produced; :func:`save` writes it."""

    config: TrainConfig
    data: HeadData
    model: torch.nn.Module  # the kept checkpoint (train.checkpoint: best or last), eval mode
    best_epoch: int
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    val_probs: np.ndarray  # (N_val, n_classes) of the kept checkpoint
    timing: dict[str, float] = field(default_factory=dict)


def _evaluate(model, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean cross entropy and class probabilities (N, C) of ``model`` on (x, y)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
        loss = F.cross_entropy(logits, y).item()
    model.train()
    return loss, logits.softmax(dim=1)


def _summary(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    pred = probs.argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "per_class_acc": {c: float(a) for c, a in zip(class_names, per_class, strict=True)},
        "confusion": confusion.tolist(),  # rows: actual, columns: predicted
    }


def fit(
    cfg: TrainConfig, data: HeadData, *, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Train a head on cached features; return the kept checkpoint and the metrics.

    Args:
        cfg: the ``train`` block.
        data: the loaded feature store (:func:`load_data`).
        on_epoch: called with each epoch's history row (default: one log line).

    Returns:
        A :class:`TrainResult`. Nothing is written; see :func:`save`.
    """
    start = time.perf_counter()
    on_epoch = on_epoch or _log_epoch(cfg.epochs)
    device = resolve_device(cfg.device)
    dtype = getattr(torch, cfg.dtype)
    n_classes, in_features = data.meta.n_classes, data.meta.feature_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_head(cfg, in_features, n_classes)
    model.to(device=device, dtype=dtype).train()
    x_train = torch.as_tensor(data.train.features).to(device, dtype)  # (N, D)
    y_train = torch.as_tensor(data.train.labels).to(device)  # (N,)
    x_val = torch.as_tensor(data.val.features).to(device, dtype)  # (M, D)
    y_val = torch.as_tensor(data.val.labels).to(device)  # (M,)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(
        cfg.optimizer, params, cfg.lr, step_size=cfg.step_size, gamma=cfg.gamma
    )
    shuffle = torch.Generator().manual_seed(cfg.seed)
    n = len(y_train)
    n_steps = -(-n // cfg.batch_size)
    batch_sizes = torch.full((n_steps,), cfg.batch_size, dtype=dtype, device=device)
    batch_sizes[-1] = n - (n_steps - 1) * cfg.batch_size
    batch_losses = torch.empty(n_steps, dtype=dtype, device=device)  # each step's loss

    def loss_totals(losses: torch.Tensor) -> torch.Tensor:  # the summed loss of the epoch
        return losses.sum() if cfg.loss_reduction == "sum" else losses @ batch_sizes

    train_logits = torch.empty(n, n_classes, dtype=dtype, device=device)

    history: list[dict[str, float]] = []
    best_acc, best_epoch, best_state, best_probs = -1.0, 0, None, None
    last_probs = None
    train_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        lr = optimizer.lr
        order = torch.randperm(n, generator=shuffle).to(device)
        xs, ys = x_train[order], y_train[order]  # this epoch's order: (N, D), (N,)
        for step, i in enumerate(range(0, n, cfg.batch_size)):
            xb, yb = xs[i : i + cfg.batch_size], ys[i : i + cfg.batch_size]  # (b, D), (b,)
            logits = model(xb)  # (b, C)
            # mean over the batch, as the demo; or the sum, as the paper's spiral notebook
            loss = F.cross_entropy(logits, yb, reduction=cfg.loss_reduction)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses[step] = loss.detach()
            train_logits[i : i + cfg.batch_size] = logits.detach()
        optimizer.end_epoch()  # StepLR
        train_seconds += time.perf_counter() - epoch_start
        val_loss, val_probs = _evaluate(model, x_val, y_val)
        val_acc = (val_probs.argmax(dim=1) == y_val).double().mean().item()
        row = {
            "epoch": epoch,
            "train_loss": (loss_totals(batch_losses)).item() / n,
            "train_acc": (train_logits.argmax(dim=1) == ys).double().mean().item(),
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
        }
        history.append(row)
        on_epoch(row)
        last_probs = val_probs.cpu().double().numpy()
        if val_acc > best_acc:
            best_acc, best_epoch, best_probs = val_acc, epoch, last_probs
            best_state = copy.deepcopy(model.state_dict())

    if cfg.checkpoint == "best":
        model.load_state_dict(best_state)
    model.eval()
    best_row, last_row = history[best_epoch - 1], history[-1]
    y_val_np = data.val.labels
    metrics = {
        "head": cfg.head,
        "backend": cfg.backend if cfg.head == "quantum" else "torch",
        "best": {
            **{k: best_row[k] for k in HISTORY_FIELDS},
            **_summary(y_val_np, best_probs, data.class_names),
        },
        "last": {
            **{k: last_row[k] for k in HISTORY_FIELDS},
            **_summary(y_val_np, last_probs, data.class_names),
        },
        "min_val_loss": min(r["val_loss"] for r in history),
        "n_params": sum(p.numel() for p in params),
        "n_train": n,
        "n_val": len(y_val_np),
    }
    timing = {
        "wall_time_s": time.perf_counter() - start,
        "train_seconds_per_epoch": train_seconds / cfg.epochs,
    }
    kept_probs = best_probs if cfg.checkpoint == "best" else last_probs
    return TrainResult(cfg, data, model, best_epoch, history, metrics, kept_probs, timing)


def _log_epoch(epochs: int) -> Callable[[dict[str, float]], None]:
    width = len(str(epochs))

    def emit(row: dict[str, float]) -> None:
        log.info(
            "epoch %*d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f  lr %.1e",
            width,
            row["epoch"],
            epochs,
            row["train_loss"],
            row["train_acc"],
            row["val_loss"],
            row["val_acc"],
            row["lr"],
        )

    return emit


def checkpoint(result: TrainResult) -> dict[str, Any]:
    """The ``model.pt`` payload: plain types only (``torch.load(weights_only=True)`` reads it)."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "config": to_dict(replace(result.config, features=result.data.path)),
        "class_names": list(result.data.class_names),
        "in_features": result.data.meta.feature_dim,
        "best_epoch": result.best_epoch,
        "checkpoint": result.config.checkpoint,
        "epoch": result.best_epoch if result.config.checkpoint == "best" else result.config.epochs,
        "features": {
            "path": result.data.path,
            "sha256": result.data.sha256,
            **result.data.meta.provenance(),
        },
    }


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def save(result: TrainResult, out_dir: str | Path) -> Path:
    """Write model.pt, metrics.json, history.csv and val_predictions.csv, each atomically."""
    out = Path(out_dir)
    buf = io.BytesIO()  # torch.save names the archive after the file: save to memory first
    torch.save(checkpoint(result), buf)
    files.write_bytes(out / "model.pt", buf.getvalue())
    metrics = {**result.metrics, "timing": result.timing}
    files.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    files.write_text(
        out / "history.csv",
        _csv([HISTORY_FIELDS, *([r[k] for k in HISTORY_FIELDS] for r in result.history)]),
    )
    names = result.data.class_names
    pred = result.val_probs.argmax(axis=1)
    files.write_text(
        out / "val_predictions.csv",
        _csv(
            [
                ("path", "actual", "predicted", "probability"),
                *(
                    (p, names[a], names[b], f"{result.val_probs[i, b]:.6f}")
                    for i, (p, a, b) in enumerate(
                        zip(result.data.val.paths, result.data.val.labels, pred, strict=True)
                    )
                ),
            ]
        ),
    )
    return out


def resolve_features(params: Params) -> str:
    """The feature store for ``params`` (:attr:`Params.features_path`), made ready to read.

    When it is the spiral store of ``params.spiral`` (``spiral.out``, placeholders filled
    in), it is generated if missing or made with other settings, so that runs over several
    ``spiral.turns`` each find their own store. Any other store is returned as it is.

    Example:
        >>> resolve_features(load_params("params-spiral.yaml"))
        'features/spiral-1.52.h5'
    """
    path = params.features_path
    if Path(path) == Path(params.spiral_out):
        from pipeline import datasets

        datasets.write_spiral(params.spiral, path)
    return path


def train_head(params: Params) -> TrainResult:
    """Load ``params.features_path``, train with ``params.train``, save into its ``out_dir``."""
    cfg = params.train
    data = load_data(resolve_features(params))
    if data.meta.extra.get("weights_kind") == "none":
        log.warning("these features come from a RANDOM-INIT backbone: accuracies mean nothing")
    log.info(
        "%s head on %s (%d train / %d val, %d features, classes %s)",
        cfg.head,
        data.path,
        len(data.train),
        len(data.val),
        data.meta.feature_dim,
        ", ".join(data.class_names),
    )
    result = fit(cfg, data)
    out = save(result, params.out_dir)
    m = result.metrics
    log.info(
        "best val acc %.4f (epoch %d), last %.4f; %d parameters; %.2f s (%.4f s/epoch); wrote %s",
        m["best"]["val_acc"],
        m["best"]["epoch"],
        m["last"]["val_acc"],
        m["n_params"],
        result.timing["wall_time_s"],
        result.timing["train_seconds_per_epoch"],
        out,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train_head",
        description="Stage two: train a quantum, classical or linear head on cached features.",
    )
    add_params_arguments(parser)
    args = parser.parse_args(argv)
    cli.setup_logging()
    return cli.run(lambda: train_head(load_params(args.params, args.overrides)))


if __name__ == "__main__":
    sys.exit(main())
