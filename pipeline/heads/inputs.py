"""What a head takes from a feature store: which heads fit which features, and as what tensor.

A store holds float32 features (image backbones, the spiral, QC) or complex128 kets (QQ, a
store whose ``feature_dtype`` says so). The ``cv`` head reads kets; every other head reads real
features. :func:`check` refuses a head that does not fit the store, naming both;
:func:`as_tensor` turns a split's features into the training loop's real tensor: real
features as they are, complex kets (N, c) as real/imaginary pairs (N, 2c), exact in float64,
which the ``cv`` head turns back into kets (:func:`pipeline.heads.photonic.as_kets`).
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.common.config import TrainConfig
from pipeline.common.errors import ConfigError
from pipeline.store.hdf5 import StoreMeta

#: Heads that read complex kets; all others read real features.
KET_HEADS = ("cv",)


def check(cfg: TrainConfig, meta: StoreMeta) -> None:
    """Refuse a head that does not fit the store's features.

    Args:
        cfg: ``head`` and ``cv_layers`` are read.
        meta: the store's metadata (``feature_dtype``, ``feature_dim``, classes, path).

    Raises:
        ConfigError: ``cv`` on real features or on a store that is not two-class; another
            head on complex kets. The message names the head's settings and the store.

    Example:
        >>> check(TrainConfig(head="linear"), read_meta("features/qq.h5"))
        Traceback (most recent call last):
        ConfigError: train.head 'linear' needs real features; ...
    """
    store = (
        f"{meta.path} holds {meta.feature_dtype} features of width {meta.feature_dim} "
        f"(source {meta.source!r}, {meta.n_classes} classes)"
    )
    complex_store = meta.feature_dtype.startswith("complex")
    if cfg.head in KET_HEADS:
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
    """A split's features as the training loop's real tensor (N, D) or, for kets, (N, 2D).

    Real features: ``torch.as_tensor(features).to(device, dtype)``, as always. Complex kets
    (N, c): ``[real parts | imaginary parts]`` (N, 2c) in ``dtype`` (exact in float64).

    Example:
        >>> as_tensor(np.array([[1 + 2j, 3j]]), "cpu", torch.float64)
        tensor([[1., 0., 2., 3.]], dtype=torch.float64)
    """
    tensor = torch.as_tensor(features)
    if tensor.is_complex():
        tensor = torch.cat([tensor.real, tensor.imag], dim=-1)  # (N, 2c)
    return tensor.to(device, dtype)
