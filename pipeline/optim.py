"""Adam with a StepLR schedule, on torch's own fused Adam kernel, without ``torch.optim.Optimizer``.

``torch.optim.Optimizer.__init__`` is wrapped in ``torch._disable_dynamo``, which imports
``torch._dynamo`` on first use: about 1 s and 150 MiB on a 2-core machine, a quarter of a
whole 30-epoch ``train_head`` run. :class:`Adam` keeps the same state (``exp_avg``,
``exp_avg_sq``, a float32 ``step`` per parameter, as ``torch.optim.Adam(fused=True)`` does) and
calls the same functional kernel, ``torch.optim.adam.adam``, so its updates are bit-identical
to ``torch.optim.Adam(fused=True)`` + ``torch.optim.lr_scheduler.StepLR`` (tested).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam


class Adam:
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
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_size, self.gamma, self.epoch = step_size, gamma, 0
        self.fused = all(p.device.type in ("cpu", "cuda") for p in self.params)
        step_dtype = torch.float32 if self.fused else torch.get_default_dtype()
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
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

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def end_epoch(self) -> None:
        """Advance the StepLR schedule by one epoch."""
        self.epoch += 1
        if self.epoch % self.step_size == 0:  # StepLR's own recurrence, for identical floats
            self.lr *= self.gamma
