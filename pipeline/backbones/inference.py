"""Batched frozen inference of a backbone over decoded images; bad images reported, not raised."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.sources.base import Batch


def _decode_at_low_priority(worker_id: int) -> None:
    """Decoding workers yield the CPU to the forward pass and fill the gaps it leaves."""
    os.nice(19)


def _collate(items):
    ok = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, err) for i, x, err in items if x is None]
    batch = None
    if ok:  # channels-last here, in the decoding worker, not in the forward pass's process
        batch = torch.stack([x for _, x in ok]).contiguous(memory_format=torch.channels_last)
    return [i for i, _ in ok], batch, failed


def iter_features(
    model: nn.Module, dataset: Any, *, batch_size: int = 32, workers: int = 1
) -> Iterator[Batch]:
    """Run ``model`` over a dataset of ``(i, input or None, error)``; yields one Batch per batch."""
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=_decode_at_low_priority,
    )
    with torch.inference_mode():
        for indices, batch, failed in loader:
            if batch is None:
                feats = np.zeros((0, 0), dtype=np.float32)
            else:
                x = batch.to(device, non_blocking=True).contiguous(
                    memory_format=torch.channels_last
                )  # (B, 3, 224, 224)
                feats = model(x).float().cpu().numpy()  # (B, feature_dim)
            yield Batch(indices, feats, failed)


class Encoder:
    """A built backbone as sources use it (:class:`pipeline.sources.base.Encoder`)."""

    def __init__(self, model: nn.Module, transform: Callable, feature_dim: int):
        self.model, self.transform, self.feature_dim = model, transform, feature_dim

    def batches(self, dataset: Any, *, batch_size: int, workers: int) -> Iterator[Batch]:
        return iter_features(self.model, dataset, batch_size=batch_size, workers=workers)
