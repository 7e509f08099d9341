"""Adam with a StepLR schedule, on torch's own fused Adam kernel, without ``torch.optim.Optimizer``.

``torch.optim.Optimizer.__init__`` is wrapped in ``torch._disable_dynamo``, which imports
``torch._dynamo`` on first use: about 1 s and 150 MiB on a 2-core machine, a quarter of a
whole 30-epoch ``train_head`` run. :class:`Adam` keeps the same state (``exp_avg``,
``exp_avg_sq``, a float32 ``step`` per parameter, as ``torch.optim.Adam(fused=True)`` does) and
calls the same functional kernel, ``torch.optim.adam.adam``, so its updates are bit-identical
to ``torch.optim.Adam(fused=True)`` + ``torch.optim.lr_scheduler.StepLR`` (tested).

:class:`PennyLaneAdam` (``train.optimizer: pennylane_adam``) is the Adam of PennyLane's early
releases, which the paper used for its spiral benchmark, with the same interface.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.adam import adam


class _StepLROptimizer:
    """What both optimisers share: the parameters, Adam's moments, and the StepLR schedule."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float],
        eps: float,
        step_size: int,
        gamma: float,
    ):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_size, self.gamma, self.epoch = step_size, gamma, 0
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def end_epoch(self) -> None:
        """Advance the StepLR schedule by one epoch."""
        self.epoch += 1
        if self.epoch % self.step_size == 0:  # StepLR's own recurrence, for identical floats
            self.lr *= self.gamma


class Adam(_StepLROptimizer):
    """Adam (no weight decay, no amsgrad) whose learning rate follows StepLR.

    Args:
        params: the tensors to optimise (their ``.grad`` is read by :meth:`step`).
        lr: the initial learning rate.
        betas, eps: as in ``torch.optim.Adam``.
        step_size, gamma: multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Example:
        >>> w = torch.zeros(3, requires_grad=True)
        >>> opt = Adam([w], lr=0.1)
        >>> (w - 1).pow(2).sum().backward(); opt.step(); opt.zero_grad(); opt.end_epoch()
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        step_size: int = 1,
        gamma: float = 1.0,
    ):
        super().__init__(params, lr, betas, eps, step_size, gamma)
        self.fused = all(p.device.type in ("cpu", "cuda") for p in self.params)
        step_dtype = torch.float32 if self.fused else torch.get_default_dtype()
        self.steps = [torch.zeros((), dtype=step_dtype, device=p.device) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        adam(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live],
            [self.exp_avg_sqs[i] for i in live],
            [],
            [self.steps[i] for i in live],
            foreach=not self.fused,
            fused=self.fused,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=self.lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )


class PennyLaneAdam(_StepLROptimizer):
    """PennyLane's early ``AdamOptimizer`` (up to v0.19, the paper's), with a StepLR schedule.

    It differs from Kingma & Ba's Adam, and from ``torch.optim.Adam``, in three ways:

    * the moments start at the first gradient, ``m_1 = g_1`` and ``v_1 = g_1**2``, instead of
      ``(1 - beta1) g_1`` and ``(1 - beta2) g_1**2`` (PennyLane fixed this in v0.20, PR #1929);
    * the bias correction is still applied, as a step size
      ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)``, so that for a steady gradient the step
      is about ``0.47 lr`` at t = 10 instead of ``lr``: a built-in warm-up;
    * PennyLane's default ``beta2`` is 0.99, not 0.999, and ``eps`` is added to ``sqrt(v)``.

    The update is ``x -= lr_t * m / (sqrt(v) + eps)`` with one step counter ``t`` for all
    parameters (PennyLane optimised one flat vector).

    Args:
        params: the tensors to optimise (their ``.grad`` is read by :meth:`step`).
        lr: PennyLane's ``stepsize``.
        betas, eps: PennyLane's ``beta1``, ``beta2``, ``eps`` (defaults: its defaults).
        step_size, gamma: multiply ``lr`` by ``gamma`` every ``step_size`` epochs.

    Example:
        >>> w = torch.zeros(3, requires_grad=True)
        >>> opt = PennyLaneAdam([w], lr=0.1)
        >>> (w - 1).pow(2).sum().backward(); opt.step(); opt.zero_grad(); opt.end_epoch()
        >>> w.detach()  # the first step is lr * sign(g), as in any Adam
        tensor([0.1000, 0.1000, 0.1000])
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        *,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        step_size: int = 1,
        gamma: float = 1.0,
    ):
        super().__init__(params, lr, betas, eps, step_size, gamma)
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.t += 1
        beta1, beta2 = self.betas
        lr_t = self.lr * math.sqrt(1 - beta2**self.t) / (1 - beta1**self.t)
        for p, m, v in zip(self.params, self.exp_avgs, self.exp_avg_sqs, strict=True):
            g = p.grad
            if g is None:
                continue
            if self.t == 1:
                m.copy_(g)
                v.copy_(g * g)
            else:
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-lr_t)


def make_optimizer(
    name: str, params: Iterable[torch.Tensor], lr: float, *, step_size: int, gamma: float
) -> Adam | PennyLaneAdam:
    """``train.optimizer``: ``adam`` (:class:`Adam`) or ``pennylane_adam`` (:class:`PennyLaneAdam`).

    Example:
        >>> make_optimizer("adam", [torch.zeros(2, requires_grad=True)], 0.1, step_size=1,
        ...                gamma=1.0).betas
        (0.9, 0.999)
    """
    if name == "adam":
        return Adam(params, lr, step_size=step_size, gamma=gamma)
    if name == "pennylane_adam":
        return PennyLaneAdam(params, lr, step_size=step_size, gamma=gamma)
    raise ValueError(f"train.optimizer: expected adam or pennylane_adam; got {name!r}")
