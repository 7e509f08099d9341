"""The head that ``train.head`` names (quantum, classical, linear or cv), built and initialised."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.common.config import TrainConfig
from pipeline.heads import inputs, kinds
from pipeline.heads.base import Head
from pipeline.store.hdf5 import StoreMeta


def build_head(
    cfg: TrainConfig,
    in_features: int,
    n_classes: int,
    *,
    store: StoreMeta | None = None,
    circuit: dict[str, Any] | None = None,
) -> Head:
    """The head named by ``cfg.head``, its parameters drawn from the current torch RNG.

    Args:
        cfg: with ``init_std`` set, every parameter is redrawn from N(0, init_std).
        in_features: width of the features (``cv``: the kets' cutoff).
        store: the store's metadata; a head that does not fit it is refused.
        circuit: a ``model.pt``'s circuit record: rebuild from the text it was trained with.
    """
    if store is not None:
        inputs.check(cfg, store)
    model = kinds.kind(cfg).load().from_config(cfg, in_features, n_classes, circuit)
    if cfg.init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, cfg.init_std)
    return model
