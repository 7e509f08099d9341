"""The training loop for one head or M stacked heads: train an epoch, evaluate, repeat; metrics.

A member's numbers are exactly those of its own stack of one. Nothing is written here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.common.config import TrainConfig
from pipeline.common.devices import resolve_device, torch_threads
from pipeline.common.errors import PipelineError
from pipeline.heads import inputs, kinds
from pipeline.heads.build import build_head
from pipeline.heads.stacked import StackedHeads
from pipeline.training.data import HeadData
from pipeline.training.optim import StackedOptimizer

log = logging.getLogger("pipeline")

HISTORY_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
#: Gather each member's training rows once per epoch when they take at most this many bytes.
GATHER_BYTES = 64 << 20


class TrainingError(PipelineError):
    """A head could not be trained (its loss diverged)."""


@dataclass
class TrainResult:
    """One trained head; :func:`pipeline.training.outputs.save` writes it."""

    config: TrainConfig
    data: HeadData
    model: torch.nn.Module  # the kept checkpoint (train.checkpoint: best or last), eval mode
    best_epoch: int
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    val_probs: np.ndarray  # (N_val, n_classes) of the kept checkpoint
    timing: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberFailure:
    """A member of a stack that could not be trained; the others were."""

    config: TrainConfig
    error: str


def train_one_epoch(
    heads: StackedHeads,
    optimizer: StackedOptimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    orders: torch.Tensor,
    batch_size: int,
    mean: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of every member over its own ``orders`` (M, N) of the rows, in batches.

    Returns per member (M,) the training loss per row and accuracy, from each batch's logits
    before its update, as the demo reports them; ``mean`` (M,) marks batch-mean losses.
    """
    m, n = orders.shape
    losses, predicted = [], []  # each step's (M,) loss and (M, b) predictions
    ys = y[orders]  # (M, N) each member's labels in its order
    small = m * n * x.shape[1] * x.element_size() <= GATHER_BYTES
    xs = _rows(x, orders) if small else None  # (M, N, D) once per epoch when it is small
    buffer = None if small else x.new_empty(m * batch_size, x.shape[1])  # reused every step
    all_mean, any_mean = bool(mean.all()), bool(mean.any())
    for i in range(0, n, batch_size):
        xb = xs[:, i : i + batch_size] if small else _rows(x, orders[:, i : i + batch_size], buffer)
        yb = ys[:, i : i + batch_size]  # (M, b)
        logits = heads(xb)  # (M, b, C)
        per_row = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none")
        loss = per_row.view(m, -1).sum(1)  # (M,) the batch sum, as the paper's spiral notebook
        if any_mean:  # or the mean, as the demo
            loss = loss / yb.shape[1] if all_mean else torch.where(mean, loss / yb.shape[1], loss)
        optimizer.zero_grad()
        loss.sum().backward()  # members never mix: each gets its own loss's gradient
        optimizer.step()
        losses.append(loss.detach())
        predicted.append(logits.detach().argmax(-1))
    sizes = torch.tensor([p.shape[1] for p in predicted], dtype=x.dtype, device=x.device)
    totals = epoch_totals(torch.stack(losses, dim=1), sizes, mean)  # (M,)
    return totals / n, (torch.cat(predicted, dim=1) == ys).double().mean(1)


def epoch_totals(steps: torch.Tensor, sizes: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Each member's epoch loss (M,) from its step losses (M, S): size-weighted where ``mean``.

    Each row is reduced alone, as a stack of one would, so members match single runs bitwise
    (a batched BLAS call may sum in another order).
    """
    totals = []
    for m, weighted in enumerate(mean.tolist()):
        row = steps[m : m + 1].clone()  # (1, S), a fresh allocation as a stack of one has
        totals.append(torch.mv(row, sizes) if weighted else row.sum(1))
    return torch.cat(totals)


def _rows(x: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``x[index]`` (M, b, D) by one index_select, into the reused buffer ``out``."""
    flat = index.reshape(-1)
    if out is None:
        return x.index_select(0, flat).view(*index.shape, x.shape[1])
    rows = out[: len(flat)]
    torch.index_select(x, 0, flat, out=rows)
    return rows.view(*index.shape, x.shape[1])


def evaluate(
    heads: StackedHeads, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's mean cross entropy (M,) and class probabilities (M, V, C) on (x, y)."""
    with torch.no_grad():
        logits = heads(x)  # (M, V, C); x (V, D) is shared
        per_row = F.cross_entropy(logits.flatten(0, 1), y.repeat(heads.members), reduction="none")
    return per_row.view(heads.members, -1).mean(1), logits.softmax(-1)


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


def run_metrics(
    cfg: TrainConfig,
    data: HeadData,
    history: list[dict[str, float]],
    probs: dict[str, np.ndarray],
    n_params: int,
) -> dict[str, Any]:
    """``metrics.json`` without timing: the best and the last epoch (``probs`` of each), size."""
    best_epoch = max(range(len(history)), key=lambda i: (history[i]["val_acc"], -i)) + 1
    rows = {"best": history[best_epoch - 1], "last": history[-1]}
    y_val = data.val.labels
    return {
        "head": cfg.head,
        "backend": kinds.backend(cfg),
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


@dataclass
class _Kept:
    """Per member: the history, the best epoch's weights and probabilities, the failures."""

    history: list[list[dict[str, float]]]
    best_acc: torch.Tensor  # (M,)
    best_flat: torch.Tensor  # (M, P)
    probs: dict[str, torch.Tensor]  # "best", "last": (M, V, C)
    failed: list[str | None]

    def record(self, epoch: int, rows: dict[str, torch.Tensor], heads, val_probs) -> None:
        columns = {k: v.tolist() if torch.is_tensor(v) else v for k, v in rows.items()}  # 1 sync
        for m, history in enumerate(self.history):
            history.append({"epoch": epoch, **{k: float(c[m]) for k, c in columns.items()}})
            loss = history[-1]["train_loss"]
            if self.failed[m] is None and not np.isfinite(loss):
                self.failed[m] = f"the training loss diverged ({loss}) in epoch {epoch}"
        improved = rows["val_acc"] > self.best_acc  # (M,) strictly: the first best epoch
        self.best_acc = torch.where(improved, rows["val_acc"], self.best_acc)
        self.best_flat = torch.where(heads.per_element(improved), heads.flat, self.best_flat)
        keep = improved.view(-1, 1, 1)
        self.probs["best"] = torch.where(keep, val_probs, self.probs.get("best", val_probs))
        self.probs["last"] = val_probs


def _build(cfg: TrainConfig, data: HeadData, device, dtype) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_head(cfg, data.meta.feature_dim, data.meta.n_classes, store=data.meta)
    return model.to(device=device, dtype=dtype)


def fit_stack(
    cfgs: Sequence[TrainConfig],
    data: HeadData,
    *,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> list[TrainResult | MemberFailure]:
    """Train one head per config (all of one shape) as one stack; per member a :class:`TrainResult`
    or a :class:`MemberFailure` when its loss diverged.
    """
    start, base = time.perf_counter(), cfgs[0]
    device, dtype = resolve_device(base.device), getattr(torch, base.dtype)
    models = [_build(cfg, data, device, dtype) for cfg in cfgs]
    heads = StackedHeads(models)
    if len(cfgs) > 1:
        reason = heads.serial_reason
        log.debug("training %d %s heads as one stack%s", len(cfgs), base.head,
                  f" (one after the other: {reason})" if reason else "")  # fmt: skip
    optimizer = StackedOptimizer(
        heads.flat,
        heads.grad,
        heads.member_index,
        base.optimizer,
        lr=[c.lr for c in cfgs],
        step_size=[c.step_size for c in cfgs],
        gamma=[c.gamma for c in cfgs],
    )
    x_train = inputs.as_tensor(data.train.features, device, dtype)  # (N, D); kets (N, 2D)
    y_train = torch.as_tensor(data.train.labels).to(device)  # (N,)
    x_val = inputs.as_tensor(data.val.features, device, dtype)  # (V, D); kets (V, 2D)
    y_val = torch.as_tensor(data.val.labels).to(device)  # (V,)
    mean = torch.tensor([c.loss_reduction == "mean" for c in cfgs], device=device)
    shuffles = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    kept = _Kept([[] for _ in cfgs], torch.full((len(cfgs),), -1.0, dtype=torch.float64,
                 device=device), heads.flat.clone(), {}, [None] * len(cfgs))  # fmt: skip
    train_seconds = 0.0
    for epoch in range(1, base.epochs + 1):
        epoch_start, lr = time.perf_counter(), optimizer.lr.clone()
        orders = torch.stack(  # train.shuffle false: the stored order, every epoch
            [
                torch.randperm(len(y_train), generator=g)
                if c.shuffle
                else torch.arange(len(y_train))
                for c, g in zip(cfgs, shuffles, strict=True)
            ]
        )
        train_loss, train_acc = train_one_epoch(
            heads, optimizer, x_train, y_train, orders.to(device), base.batch_size, mean
        )
        optimizer.end_epoch()  # every member's StepLR
        train_seconds += time.perf_counter() - epoch_start
        val_loss, val_probs = evaluate(heads, x_val, y_val)
        val_acc = (val_probs.argmax(-1) == y_val).double().mean(1)  # (M,)
        rows = {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss}
        kept.record(epoch, rows | {"val_acc": val_acc, "lr": lr}, heads, val_probs)
        if on_epoch is not None:
            on_epoch([h[-1] for h in kept.history])
    timing = {
        "wall_time_s": (time.perf_counter() - start) / len(cfgs),
        "train_seconds_per_epoch": train_seconds / base.epochs / len(cfgs),
        "stacked_heads": len(cfgs),
    }
    return [_result(m, cfgs, data, models, heads, kept, timing) for m in range(len(cfgs))]


def _result(m, cfgs, data, models, heads, kept, timing) -> TrainResult | MemberFailure:
    """Member ``m`` as a :class:`TrainResult` whose head holds its kept weights."""
    cfg = cfgs[m]
    if kept.failed[m] is not None:
        return MemberFailure(cfg, kept.failed[m])
    model = models[m]
    model.load_state_dict(
        heads.member_state(m, kept.best_flat if cfg.checkpoint == "best" else heads.flat)
    )
    model.eval()
    probs = {k: v[m].cpu().double().numpy() for k, v in kept.probs.items()}
    metrics = run_metrics(cfg, data, kept.history[m], probs, heads.n_params)
    return TrainResult(
        cfg, data, model, metrics["best"]["epoch"], kept.history[m], metrics,
        probs[cfg.checkpoint], timing,
    )  # fmt: skip


def fit(
    cfg: TrainConfig, data: HeadData, *, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Train one head (a stack of one) with ``cfg.threads`` torch threads; nothing is written."""
    emit = on_epoch or log_epoch(cfg.epochs)
    with torch_threads(cfg.threads):
        (result,) = fit_stack([cfg], data, on_epoch=lambda rows: emit(rows[0]))
    if isinstance(result, MemberFailure):
        raise TrainingError(f"{cfg.head} head, seed {cfg.seed}: {result.error}")
    return result


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
