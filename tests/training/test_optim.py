from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.common.config import TrainConfig
from pipeline.heads.build import build_head
from pipeline.heads.stacked import PAD, StackedHeads
from pipeline.training.optim import StackedOptimizer


def _one(n: int, kind: str = "adam", lr: float = 0.1, **kw):
    """A stack of one member of n parameters (n a multiple of 64): (parameters, optimizer)."""
    w = torch.zeros(n, dtype=torch.float64)
    g = torch.zeros_like(w)
    opt = StackedOptimizer(
        w, g, torch.zeros(n, dtype=torch.long), kind, lr=[lr], step_size=[1], gamma=[1.0], **kw
    )
    return w, g, opt


def _train(use_ours: bool, dtype=torch.float64):
    torch.manual_seed(0)
    model = build_head(TrainConfig(n_qubits=3, q_depth=2), 8, 2).to(dtype)
    x = torch.randn(40, 8, dtype=dtype)
    y = torch.randint(0, 2, (40,))
    if use_ours:
        heads = StackedHeads([model])
        opt = StackedOptimizer(
            heads.flat, heads.grad, heads.member_index, "adam", lr=[0.01], step_size=[2],
            gamma=[0.5],
        )  # fmt: skip
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
        sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    lrs = []
    for _ in range(5):
        lrs.append(float(opt.lr[0]) if use_ours else opt.param_groups[0]["lr"])
        for i in range(0, 40, 4):
            if use_ours:
                logits = heads(x[i : i + 4].unsqueeze(0))[0]
            else:
                logits = model(x[i : i + 4])
            loss = torch.nn.functional.cross_entropy(logits, y[i : i + 4])
            opt.zero_grad()
            loss.backward()
            opt.step()
        opt.end_epoch() if use_ours else sched.step()
    if use_ours:
        return [v.reshape(-1) for v in heads.member_state(0).values()], lrs
    return [p.detach().reshape(-1) for p in model.state_dict().values()], lrs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_stack_of_one_is_torch_optim_adam_with_steplr(dtype):
    ours, our_lrs = _train(True, dtype)
    theirs, their_lrs = _train(False, dtype)
    assert our_lrs == their_lrs == [0.01, 0.01, 0.005, 0.005, 0.0025]
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    torch.manual_seed(0)
    initial = build_head(TrainConfig(n_qubits=3, q_depth=2), 8, 2).to(dtype)
    assert not torch.equal(ours[0], initial.pre_net.weight.reshape(-1))  # the weights moved


@pytest.mark.parametrize("kind", ["adam", "pennylane_adam"])
def test_a_member_moves_exactly_as_in_a_stack_of_one(kind):
    """The update of an element depends neither on the other members nor on its position."""
    rng = np.random.default_rng(0)
    sizes, lrs, gammas, steps = [5, 37, 86], [0.1, 0.02, 0.1], [0.5, 1.0, 0.1], [2, 1, 3]
    grads = [[torch.as_tensor(rng.standard_normal(n)) for _ in range(7)] for n in sizes]
    member = torch.cat([torch.full((n,), m) for m, n in enumerate(sizes)] + [torch.zeros(0)])
    padded = -(-len(member) // PAD) * PAD  # the buffers are whole vectors, as StackedHeads makes
    member = torch.cat([member, torch.zeros(padded - len(member))]).long()
    flat = torch.zeros(padded, dtype=torch.float64)
    grad = torch.zeros_like(flat)
    stack = StackedOptimizer(flat, grad, member, kind, lr=lrs, step_size=steps, gamma=gammas)
    alone = [
        StackedOptimizer(
            torch.zeros(PAD * 2, dtype=torch.float64), torch.zeros(PAD * 2, dtype=torch.float64),
            torch.zeros(PAD * 2, dtype=torch.long), kind, lr=[lr], step_size=[s], gamma=[g],
        )
        for lr, s, g in zip(lrs, steps, gammas, strict=True)
    ]  # fmt: skip
    for step in range(7):
        grad[: sum(sizes)] = torch.cat([g[step] for g in grads])
        stack.step()
        for opt, g in zip(alone, grads, strict=True):
            opt.grad[: len(g[step])] = g[step]
            opt.step()
        if step % 2:
            stack.end_epoch()
            for opt in alone:
                opt.end_epoch()
    together = flat[: sum(sizes)].split(sizes)
    for mine, opt, n in zip(together, alone, sizes, strict=True):
        assert torch.equal(mine, opt.flat[:n])
    assert stack.lr.tolist() == [float(opt.lr[0]) for opt in alone]
    with pytest.raises(ValueError, match=r"a multiple of 64; got 5"):
        StackedOptimizer(flat[:5], grad[:5], member[:5], kind, lr=[0.1], step_size=[1], gamma=[1.0])


def _pennylane_2019_adam(grads, x0, stepsize, beta1=0.9, beta2=0.99, eps=1e-8):
    """PennyLane's AdamOptimizer.apply_grad before v0.20, on a flat numpy vector."""
    x, fm, sm = np.array(x0, dtype=np.float64), None, None
    for t, g in enumerate(grads, start=1):
        fm = g if fm is None else beta1 * fm + (1 - beta1) * g
        sm = g * g if sm is None else beta2 * sm + (1 - beta2) * g * g
        x = x - stepsize * np.sqrt(1 - beta2**t) / (1 - beta1**t) * fm / (np.sqrt(sm) + eps)
    return x


def test_pennylane_adam_follows_pennylanes_early_update_rule():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(5) * 10.0 ** rng.integers(-6, 1) for _ in range(12)]
    w, g, opt = _one(64, "pennylane_adam", lr=0.07)
    assert opt.betas == (0.9, 0.99)
    for grad in grads:
        g[:5] = torch.as_tensor(grad)
        opt.step()
    np.testing.assert_allclose(w[:5].numpy(), _pennylane_2019_adam(grads, np.zeros(5), 0.07),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


def test_pennylane_adam_differs_from_torch_adam_after_the_first_step():
    def run(kind, n_steps):
        w, g, opt = _one(64, kind)
        for k in range(n_steps):
            g[:3] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * (1 + k)
            opt.step()
        return w[:3]

    # the first step of any Adam is lr * sign(g)
    torch.testing.assert_close(run("pennylane_adam", 1), torch.tensor([-0.1, 0.1, -0.1]).double())
    torch.testing.assert_close(run("adam", 1), torch.tensor([-0.1, 0.1, -0.1]).double())
    # then the moments that start at g and beta2 = 0.99 give smaller steps than torch's Adam
    assert (run("pennylane_adam", 5).abs() < run("adam", 5).abs() - 0.05).all()


def test_schedules_per_member_and_bad_settings():
    w = torch.zeros(64, dtype=torch.float64)
    member = torch.arange(64) // 32
    opt = StackedOptimizer(
        w, torch.zeros_like(w), member, "adam", lr=[0.1, 0.2], step_size=[2, 1], gamma=[0.5, 0.1]
    )
    lrs = []
    for _ in range(4):
        lrs.append(opt.lr.tolist())
        opt.end_epoch()
    assert lrs == [[0.1, 0.2], [0.1, 0.2 * 0.1], [0.05, 0.2 * 0.1 * 0.1], [0.05, 0.2 * 0.1**3]]
    with pytest.raises(ValueError, match=r"train\.optimizer: expected adam or pennylane_adam"):
        StackedOptimizer(w, w, member, "sgd", lr=[0.1, 0.1], step_size=[1, 1], gamma=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"expected lr, step_size and gamma for every member"):
        StackedOptimizer(w, w, member, "adam", lr=[0.1], step_size=[1, 1], gamma=[1.0, 1.0])
