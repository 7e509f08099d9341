"""What a head takes from a feature store: ``cv`` reads complex kets, the others real features."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.common.config import TrainConfig
from pipeline.common.errors import ConfigError
from pipeline.heads.kinds import kind
from pipeline.store.hdf5 import StoreMeta


def check(cfg: TrainConfig, meta: StoreMeta) -> None:
    """Refuse a head that does not fit the store's features (ConfigError naming both)."""
    store = (
        f"{meta.path} holds {meta.feature_dtype} features of width {meta.feature_dim} "
        f"(source {meta.source!r}, {meta.n_classes} classes)"
    )
    complex_store = meta.feature_dtype.startswith("complex")
    if kind(cfg).kets:
        if not complex_store:
            raise ConfigError(
                f"train.head 'cv' (train.cv_layers {cfg.cv_layers}) needs a store of complex "
                f"kets, its cutoff the store's width (the QQ data set: python -m "
                f"pipeline.datasets qq); {store}"
            )
        if meta.n_classes != 2 or meta.feature_dim < 2:
            raise ConfigError(
                f"train.head 'cv' (train.cv_layers {cfg.cv_layers}) reads kets of a cutoff >= 2 "
                f"and tells 2 classes apart by the vacuum probability; {store}"
            )
    elif complex_store:
        raise ConfigError(
            f"train.head {cfg.head!r} needs real features; {store}: use train.head cv for "
            "complex kets"
        )


def as_tensor(features: np.ndarray, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """A split's features as a real tensor; complex kets (N, c) as ``[real | imag]`` (N, 2c)."""
    tensor = torch.as_tensor(features)
    if tensor.is_complex():
        tensor = torch.cat([tensor.real, tensor.imag], dim=-1)  # (N, 2c)
    return tensor.to(device, dtype)
