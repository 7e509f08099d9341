"""The training loop of one head: train one epoch, evaluate, repeat; then summarise.

:func:`fit` reads top to bottom as the paper's protocol: build the head from the seeded RNG,
then for every epoch shuffle (a generator seeded with ``train.seed``; with ``train.shuffle``
false the rows keep their stored order), train on batches
(:func:`train_one_epoch`), step the StepLR schedule, evaluate on ``val`` (:func:`evaluate`),
and keep the checkpoint with the best val accuracy (or the last one); finally
:func:`summarise` the best and last epochs. Nothing is written here
(:mod:`pipeline.training.outputs` does that).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.common.config import TrainConfig
from pipeline.common.devices import resolve_device
from pipeline.heads import inputs
from pipeline.heads.dressed import build_head
from pipeline.training.data import HeadData
from pipeline.training.optim import Adam, PennyLaneAdam, make_optimizer

log = logging.getLogger("pipeline")

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
EVAL_CHUNK = 4096


@dataclass
class TrainResult:
    """What :func:`fit` produced; :func:`pipeline.training.outputs.save` writes it."""

    config: TrainConfig
    data: HeadData
    model: torch.nn.Module  # the kept checkpoint (train.checkpoint: best or last), eval mode
    best_epoch: int
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    val_probs: np.ndarray  # (N_val, n_classes) of the kept checkpoint
    timing: dict[str, float] = field(default_factory=dict)


def evaluate(model, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean cross entropy and class probabilities (N, C) of ``model`` on (x, y)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)])
        loss = F.cross_entropy(logits, y).item()
    model.train()
    return loss, logits.softmax(dim=1)


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: Adam | PennyLaneAdam,
    xs: torch.Tensor,
    ys: torch.Tensor,
    cfg: TrainConfig,
    n_classes: int,
) -> tuple[float, float]:
    """One pass over ``xs`` (N, D), ``ys`` (N,) in that order, in batches of ``cfg.batch_size``.

    Returns:
        The epoch's training loss (per row: the batch losses summed, each weighted by its
        batch size for a mean loss) and its accuracy, both from each batch's logits before
        its update, as the demo reports them.
    """
    n, size = len(ys), cfg.batch_size
    n_steps = -(-n // size)
    batch_sizes = torch.full((n_steps,), size, dtype=xs.dtype, device=xs.device)
    batch_sizes[-1] = n - (n_steps - 1) * size
    batch_losses = torch.empty(n_steps, dtype=xs.dtype, device=xs.device)  # each step's loss
    train_logits = torch.empty(n, n_classes, dtype=xs.dtype, device=xs.device)  # (N, C)
    for step, i in enumerate(range(0, n, size)):
        xb, yb = xs[i : i + size], ys[i : i + size]  # (b, D), (b,)
        logits = model(xb)  # (b, C)
        # mean over the batch, as the demo; or the sum, as the paper's spiral notebook
        loss = F.cross_entropy(logits, yb, reduction=cfg.loss_reduction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        batch_losses[step] = loss.detach()
        train_logits[i : i + size] = logits.detach()
    total = batch_losses.sum() if cfg.loss_reduction == "sum" else batch_losses @ batch_sizes
    accuracy = (train_logits.argmax(dim=1) == ys).double().mean().item()
    return total.item() / n, accuracy


def class_summary(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Per-class accuracy and the confusion matrix (rows actual, columns predicted)."""
    pred = probs.argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "per_class_acc": {c: float(a) for c, a in zip(class_names, per_class, strict=True)},
        "confusion": confusion.tolist(),  # rows: actual, columns: predicted
    }


def summarise(
    cfg: TrainConfig,
    data: HeadData,
    history: list[dict[str, float]],
    probs: dict[str, np.ndarray],
    n_params: int,
) -> dict[str, Any]:
    """``metrics.json`` without timing: the best and the last epoch, and the run's size.

    Args:
        cfg, data: the run.
        history: one row per epoch (:data:`HISTORY_FIELDS`).
        probs: ``{"best": ..., "last": ...}`` val probabilities (N_val, C) of those epochs.
        n_params: trainable parameters.
    """
    best_epoch = max(range(len(history)), key=lambda i: (history[i]["val_acc"], -i)) + 1
    rows = {"best": history[best_epoch - 1], "last": history[-1]}
    y_val = data.val.labels
    return {
        "head": cfg.head,
        "backend": cfg.backend if cfg.head == "quantum" else "torch",
        **{
            which: {
                **{k: rows[which][k] for k in HISTORY_FIELDS},
                **class_summary(y_val, probs[which], data.class_names),
            }
            for which in ("best", "last")
        },
        "min_val_loss": min(r["val_loss"] for r in history),
        "n_params": n_params,
        "n_train": len(data.train),
        "n_val": len(y_val),
    }


def fit(
    cfg: TrainConfig, data: HeadData, *, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Train a head on cached features; return the kept checkpoint and the metrics.

    Args:
        cfg: the ``train`` block.
        data: the loaded feature store (:func:`pipeline.training.data.load_data`).
        on_epoch: called with each epoch's history row (default: one log line).

    Returns:
        A :class:`TrainResult`. Nothing is written; see :func:`pipeline.training.outputs.save`.
    """
    start = time.perf_counter()
    on_epoch = on_epoch or log_epoch(cfg.epochs)
    device, dtype = resolve_device(cfg.device), getattr(torch, cfg.dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_head(cfg, data.meta.feature_dim, data.meta.n_classes, store=data.meta)
    model.to(device=device, dtype=dtype).train()
    x_train = inputs.as_tensor(data.train.features, device, dtype)  # (N, D); kets (N, 2D)
    y_train = torch.as_tensor(data.train.labels).to(device)  # (N,)
    x_val = inputs.as_tensor(data.val.features, device, dtype)  # (M, D); kets (M, 2D)
    y_val = torch.as_tensor(data.val.labels).to(device)  # (M,)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(
        cfg.optimizer, params, cfg.lr, step_size=cfg.step_size, gamma=cfg.gamma
    )
    shuffle = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    best_acc, best_state, probs = -1.0, None, {}
    train_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        epoch_start, lr = time.perf_counter(), optimizer.lr
        order = (  # train.shuffle false: the stored order, as the paper's QC/QQ notebooks
            torch.randperm(len(y_train), generator=shuffle)
            if cfg.shuffle
            else torch.arange(len(y_train))
        ).to(device)
        train_loss, train_acc = train_one_epoch(
            model, optimizer, x_train[order], y_train[order], cfg, data.meta.n_classes
        )
        optimizer.end_epoch()  # StepLR
        train_seconds += time.perf_counter() - epoch_start
        val_loss, val_probs = evaluate(model, x_val, y_val)
        val_acc = (val_probs.argmax(dim=1) == y_val).double().mean().item()
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc}
        row |= {"val_loss": val_loss, "val_acc": val_acc, "lr": lr}
        history.append(row)
        on_epoch(row)
        probs["last"] = val_probs.cpu().double().numpy()
        if val_acc > best_acc:
            best_acc, probs["best"] = val_acc, probs["last"]
            best_state = copy.deepcopy(model.state_dict())
    if cfg.checkpoint == "best":
        model.load_state_dict(best_state)
    model.eval()
    metrics = summarise(cfg, data, history, probs, sum(p.numel() for p in params))
    timing = {
        "wall_time_s": time.perf_counter() - start,
        "train_seconds_per_epoch": train_seconds / cfg.epochs,
    }
    best_epoch = metrics["best"]["epoch"]
    return TrainResult(
        cfg, data, model, best_epoch, history, metrics, probs[cfg.checkpoint], timing
    )


def log_epoch(epochs: int) -> Callable[[dict[str, float]], None]:
    """The default ``on_epoch``: one log line per epoch, as the demo prints."""
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
