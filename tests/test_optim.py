from __future__ import annotations

import pytest
import torch

from pipeline.optim import Adam
from pipeline.quantum import DressedQuantumNet


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
