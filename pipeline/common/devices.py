"""Torch device selection shared by the stages: ``auto`` means CUDA when present."""

from __future__ import annotations

import torch

from pipeline.common.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda; got {name!r}")
    return torch.device(name)
