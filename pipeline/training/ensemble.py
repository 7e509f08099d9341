"""Many runs on one feature store, grouped by shape into stacks that train as one model.

Runs that differ only in per-member numbers (seed, lr, ...) share a stack; each gets exactly
the numbers of its own ``train_head`` run, since a single run is a stack of one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.common.config import TrainConfig
from pipeline.common.devices import torch_threads
from pipeline.heads import kinds
from pipeline.training.data import HeadData
from pipeline.training.loop import MemberFailure, TrainResult, fit_stack

log = logging.getLogger("pipeline")

DEFAULT_BUDGET = 1 << 30


def group_key(cfg: TrainConfig) -> tuple:
    """What the members of one stack share: the head's shape and how it trains."""
    return (*kinds.shape_key(cfg), cfg.batch_size, cfg.epochs, cfg.dtype, cfg.device,
            cfg.optimizer, cfg.threads)  # fmt: skip


def member_bytes(cfg: TrainConfig, data: HeadData) -> int:
    """An upper estimate of the memory one member of a stack takes while it trains."""
    d, c, n = data.meta.feature_dim, data.meta.n_classes, cfg.n_qubits
    params, states = kinds.kind(cfg).size(cfg, d, c, len(data.val))
    rows = cfg.batch_size * (d + 4 * n + 4 * c) + len(data.val) * (4 * n + 5 * c)
    width = 8 if cfg.dtype == "float64" else 4
    return width * (6 * params + rows + states) + 8 * len(data.train)


def plan(
    cfgs: Sequence[TrainConfig], data: HeadData, budget: int = DEFAULT_BUDGET
) -> list[list[int]]:
    """Positions of ``cfgs`` grouped by :func:`group_key`, cut into chunks of ``budget`` bytes."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(group_key(cfg), []).append(i)
    chunks = []
    for members in groups.values():
        size = max(1, budget // member_bytes(cfgs[members[0]], data))
        if size < len(members):
            log.info(
                "%d %s heads: chunks of %d (about %d MiB each, budget %d MiB)",
                len(members),
                cfgs[members[0]].head,
                size,
                size * member_bytes(cfgs[members[0]], data) >> 20,
                budget >> 20,
            )
        chunks += [members[i : i + size] for i in range(0, len(members), size)]
    return chunks


def fit_ensemble(
    cfgs: Sequence[TrainConfig],
    data: HeadData,
    *,
    budget: int = DEFAULT_BUDGET,
    on_result: Callable[[int, TrainResult | MemberFailure], Any] | None = None,
) -> list[TrainResult | MemberFailure]:
    """Train every config on ``data`` in stacks; results in order.

    ``on_result(position, result)`` is called as soon as a stack has trained. A member whose
    loss diverged gives a :class:`~pipeline.training.loop.MemberFailure`.
    """
    results: list[TrainResult | MemberFailure | None] = [None] * len(cfgs)
    for chunk in plan(cfgs, data, budget):
        members = [cfgs[i] for i in chunk]
        with torch_threads(members[0].threads):
            for i, result in zip(chunk, fit_stack(members, data), strict=True):
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
    return results
