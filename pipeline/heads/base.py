"""What every head shares: one forward pass, written for M members at once.

A head's :meth:`Head.forward_stacked` takes each parameter as a block (M, *shape), named as in
its state dict; its own ``forward`` is that function on its parameters with M = 1, and
:class:`pipeline.heads.stacked.StackedHeads` calls it on M heads' blocks. A member's numbers do
not depend on M, so a head computes exactly what it computed in training.
"""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """A head whose forward pass is :meth:`forward_stacked`, for one head or M."""

    def forward_stacked(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits (M, B, C) of M heads of this one's shape, for ``params`` (name: (M, *shape))
        and ``x`` (M, B, D), each member's rows, or (V, D) shared by every member."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward_stacked")

    def serial_reason(self) -> str | None:
        """Why stacked members run one after another (None: they run as one batch)."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) for ``x`` (B, D): a stack of one."""
        return self.forward_stacked({k: p.unsqueeze(0) for k, p in self.named_parameters()}, x)[0]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Each member's Linear: x (M, B, D) or shared (V, D), weight (M, K, D), bias (M, K).

    A batched product keeps a member's result independent of M; a gemm over M K rows would not.
    """
    if x.ndim == 2:
        x = x.expand(weight.shape[0], *x.shape)  # (M, V, D), a view
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # (M, B, K)
