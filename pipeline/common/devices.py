"""Torch devices and threads shared by the stages: ``auto`` means CUDA when present."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: as they are); tiny operations want one."""
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads: expected an integer >= 1 or None; got {n!r}")
    previous = torch.get_num_threads()
    if n is not None and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
