from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.heads.dressed import DressedQuantumNet
from pipeline.training.optim import Adam, PennyLaneAdam, make_optimizer


def _train(use_ours: bool, dtype=torch.float64):
    torch.manual_seed(0)
    model = DressedQuantumNet(in_features=8, n_qubits=3, q_depth=2).to(dtype)
    x = torch.randn(40, 8, dtype=dtype)
    y = torch.randint(0, 2, (40,))
    if use_ours:
        opt = Adam(model.parameters(), 0.01, step_size=2, gamma=0.5)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
        sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.lr if use_ours else opt.param_groups[0]["lr"])
        for i in range(0, 40, 4):
            loss = torch.nn.functional.cross_entropy(model(x[i : i + 4]), y[i : i + 4])
            opt.zero_grad()
            loss.backward()
            opt.step()
        opt.end_epoch() if use_ours else sched.step()
    return [p.detach().clone() for p in model.parameters()], lrs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_updates_are_bit_identical_to_torch_optim_adam_with_steplr(dtype):
    ours, our_lrs = _train(True, dtype)
    theirs, their_lrs = _train(False, dtype)
    assert our_lrs == their_lrs == [0.01, 0.01, 0.005, 0.005, 0.0025]
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    initial = DressedQuantumNet(in_features=8, n_qubits=3, q_depth=2).to(dtype)
    assert not torch.equal(ours[0], initial.pre_net.weight)  # the parameters did move


def test_parameters_without_gradient_are_left_alone():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = Adam([a, b], 0.1)
    (a * 3).sum().backward()
    opt.step()
    assert not torch.equal(a, torch.ones(2)) and torch.equal(b, torch.ones(2))


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
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = PennyLaneAdam([w], 0.07)
    for g in grads:
        w.grad = torch.as_tensor(g)
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), _pennylane_2019_adam(grads, np.zeros(5), 0.07),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


def test_pennylane_adam_differs_from_torch_adam_after_the_first_step():
    def run(cls, n_steps):
        w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        opt = cls([w], 0.1)
        for k in range(n_steps):
            w.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * (1 + k)
            opt.step()
        return w.detach()

    # the first step of any Adam is lr * sign(g)
    torch.testing.assert_close(run(PennyLaneAdam, 1), torch.tensor([-0.1, 0.1, -0.1]).double())
    torch.testing.assert_close(run(Adam, 1), torch.tensor([-0.1, 0.1, -0.1]).double())
    # then the moments that start at g and beta2 = 0.99 give smaller steps than torch's Adam
    assert (run(PennyLaneAdam, 5).abs() < run(Adam, 5).abs() - 0.05).all()


def test_pennylane_adam_schedule_and_factory():
    w = torch.zeros(2, requires_grad=True)
    opt = make_optimizer("pennylane_adam", [w], 0.1, step_size=2, gamma=0.5)
    assert isinstance(opt, PennyLaneAdam) and opt.betas == (0.9, 0.99)
    lrs = []
    for _ in range(5):
        lrs.append(opt.lr)
        opt.end_epoch()
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert isinstance(make_optimizer("adam", [w], 0.1, step_size=1, gamma=1.0), Adam)
    with pytest.raises(ValueError, match=r"train\.optimizer"):
        make_optimizer("sgd", [w], 0.1, step_size=1, gamma=1.0)
