"""Many heads in one pass: a list of runs grouped into stacks that train as one model.

:func:`fit_ensemble` takes the ``train`` configs of many runs on one feature store, groups those
that share a shape (:func:`group_key`: head kind, widths, qubits and depth or photonic layers,
circuit, batch size, epochs, dtype, device, optimizer kind, backend and threads), cuts each
group into chunks that fit a memory budget (:func:`plan`; the chunk size is logged), and trains
each chunk as one stack (:func:`pipeline.training.loop.fit_stack`). Members whose settings differ
only in numbers (seed, lr, step_size, gamma, q_delta, init_std) and in loss_reduction or checkpoint
train together; each gets exactly the numbers its own ``train_head`` run gets (a single run is a
stack of one, and members never mix). Heads without a vectorised stacked form (a PennyLane
backend, more qubits than the matrix method takes) stack too, one after the other inside the
forward pass.

Example:
    >>> cfgs = [TrainConfig(seed=s) for s in range(100)]
    >>> results = fit_ensemble(cfgs, load_data("features/hymenoptera-resnet18.h5"))
    >>> sorted({r.metrics["n_train"] for r in results})
    [244]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.common.config import TrainConfig
from pipeline.common.devices import torch_threads
from pipeline.heads.stacked import unstackable_reason
from pipeline.training.data import HeadData
from pipeline.training.loop import MemberFailure, TrainResult, fit_stack

log = logging.getLogger("pipeline")

#: Bytes a chunk of members may take by default (parameters, optimizer state, activations).
DEFAULT_BUDGET = 1 << 30


def group_key(cfg: TrainConfig) -> tuple:
    """What the members of one stack share: everything that is not a number of one member."""
    shape: tuple = ()
    if cfg.head in ("quantum", "classical"):
        shape = (cfg.n_qubits, cfg.q_depth) if cfg.head == "quantum" else (cfg.n_qubits,)
    elif cfg.head == "cv":
        shape = (cfg.cv_layers,)
    backend: tuple = ()
    if cfg.head == "quantum":
        backend = (cfg.backend, cfg.diff_method, cfg.shots, cfg.circuit, cfg.embedding,
                   cfg.reupload)  # fmt: skip
    return (cfg.head, shape, backend, cfg.batch_size, cfg.epochs, cfg.dtype, cfg.device,
            cfg.optimizer, cfg.threads)  # fmt: skip


def member_bytes(cfg: TrainConfig, data: HeadData) -> int:
    """An upper estimate of the memory one member of a stack takes while it trains."""
    d, c, n = data.meta.feature_dim, data.meta.n_classes, cfg.n_qubits
    params = d * c + c if cfg.head == "linear" else d * n + n + n * c + c + n * (n + 1)
    states = 0
    if cfg.head == "cv":  # its layers' gate matrices, built once per step
        params, states = 6 * cfg.cv_layers, 8 * cfg.cv_layers * d * d
    if cfg.head == "quantum":  # circuit layers and the saved states of a batch
        params += cfg.q_depth * n
        states = (cfg.q_depth + 2) * (2**n) * (cfg.batch_size + 3 * 2**n + len(data.val))
    rows = cfg.batch_size * (d + 4 * n + 4 * c) + len(data.val) * (4 * n + 5 * c)
    width = 8 if cfg.dtype == "float64" else 4
    return width * (6 * params + rows + states) + 8 * len(data.train)


def plan(
    cfgs: Sequence[TrainConfig], data: HeadData, budget: int = DEFAULT_BUDGET
) -> list[list[int]]:
    """Positions of ``cfgs`` grouped by :func:`group_key` (in first-seen order), each group
    cut into chunks of at most ``budget`` bytes (:func:`member_bytes`).

    Example:
        >>> plan([TrainConfig(seed=0), TrainConfig(head="linear"), TrainConfig(seed=1)], data)
        [[0, 2], [1]]
    """
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
    """Train every config on ``data`` in stacks (see the module docstring); results in order.

    Args:
        cfgs: one ``train`` block per run, any mix of shapes.
        data: the loaded feature store.
        budget: bytes one stack may take; larger groups are split into chunks.
        on_result: called with (position, result) for each member as soon as its stack has
            trained, so that a caller can write it before the next stack starts.

    Returns:
        Per config a :class:`~pipeline.training.loop.TrainResult`, or a
        :class:`~pipeline.training.loop.MemberFailure` when its loss diverged.
    """
    results: list[TrainResult | MemberFailure | None] = [None] * len(cfgs)
    for chunk in plan(cfgs, data, budget):
        members = [cfgs[i] for i in chunk]
        reason = unstackable_reason(members[0])
        log.debug(
            "training %d %s heads as one stack%s",
            len(chunk),
            members[0].head,
            f" (one after the other: {reason})" if reason else "",
        )
        with torch_threads(members[0].threads):
            for i, result in zip(chunk, fit_stack(members, data), strict=True):
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
    return results
