from __future__ import annotations

import re

import pytest
import torch

from pipeline.common.config import TrainConfig
from pipeline.common.errors import PipelineError
from pipeline.heads.build import build_head
from pipeline.heads.checkpoint import load_checkpoint
from pipeline.heads.dressed import ClassicalDressedNet, DressedQuantumNet


@pytest.mark.parametrize(
    ("head", "cls", "n_params"),
    [
        ("quantum", DressedQuantumNet, 512 * 4 + 4 + 6 * 4 + 4 * 2 + 2),
        ("classical", ClassicalDressedNet, 512 * 4 + 4 + 4 * 4 + 4 + 4 * 2 + 2),
        ("linear", torch.nn.Linear, 512 * 2 + 2),
    ],
)
def test_heads_have_the_papers_shapes(head, cls, n_params):
    model = build_head(TrainConfig(head=head), 512, 2)
    assert isinstance(model, cls)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model(torch.zeros(3, 512)).shape == (3, 2)


def test_classical_head_is_tanh_linear_in_place_of_the_circuit():
    torch.manual_seed(0)
    net = ClassicalDressedNet(in_features=6, n_hidden=3, n_classes=2)
    x = torch.randn(5, 6)
    expected = net.post_net(torch.tanh(net.hidden(torch.tanh(net.pre_net(x)))))
    torch.testing.assert_close(net(x), expected)
    with pytest.raises(ValueError, match="n_hidden: expected an integer >= 1; got 0"):
        ClassicalDressedNet(n_hidden=0)


def test_same_seed_same_initial_weights():
    def init(seed):
        torch.manual_seed(seed)
        return build_head(TrainConfig(), 16, 2).state_dict()

    a, b, c = init(1), init(1), init(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["q_params"], c["q_params"])


def test_load_checkpoint_refuses_foreign_files(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(PipelineError, match="not a head checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(PipelineError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"config": {"n_qubits": 3}}, "size mismatch"),
        ({"config": {"head": "photonic"}}, "train.head: expected one of"),
        ({"drop": "in_features"}, "expected the keys .* it lacks in_features"),
        ({"features": {"path": "x.h5"}}, "it lacks features.path, features.sha256"),
    ],
)
def test_a_checkpoint_that_does_not_make_a_head_is_refused_with_the_reason(
    tiny_run, tmp_path, change, reason
):
    """Every reader (report, predict, evaluate, compare) gets a named error, not a traceback."""
    good = torch.load(tiny_run / "model.pt", weights_only=True)
    bad = {k: v for k, v in good.items() if k != change.get("drop")}
    if "config" in change:
        bad["config"] = {**good["config"], **change["config"]}
    if "features" in change:
        bad["features"] = change["features"]
    torch.save(bad, tmp_path / "model.pt")
    with pytest.raises(PipelineError, match=r"model\.pt' is not a head checkpoint") as err:
        load_checkpoint(tmp_path / "model.pt")
    assert re.search(reason, str(err.value))


@pytest.mark.parametrize("head", ["quantum", "classical", "linear"])
def test_init_std_draws_every_parameter_from_one_normal(head):
    torch.manual_seed(0)
    model = build_head(TrainConfig(head=head, n_qubits=5, q_depth=5, init_std=0.001), 64, 2)
    values = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert values.abs().max() < 0.006  # 6 sigma; the layers' own init is ~0.1
    assert 0.0007 < values.std().item() < 0.0013
    for p in model.parameters():  # biases and circuit angles too
        assert p.detach().abs().max() < 0.006 and p.detach().abs().max() > 0
    torch.manual_seed(0)
    default = build_head(TrainConfig(head=head, n_qubits=5, q_depth=5), 64, 2)
    assert max(p.detach().abs().max() for p in default.parameters()) > 0.05
