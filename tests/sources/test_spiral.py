from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.config import SpiralConfig, load_params
from pipeline.common.errors import ConfigError, FeatureStoreError
from pipeline.extraction.loop import extract
from pipeline.sources.spiral import SpiralSource, generate
from pipeline.store import hdf5
from pipeline.training.data import load_data
from pipeline.training.loop import fit
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]


def write_spiral(cfg: SpiralConfig, path: Path, force: bool = False) -> bool:
    """Write the spiral store through the one extraction loop; True when it was written."""
    return not extract(SpiralSource(cfg), path, force=force).up_to_date


PRESET = REPO / "params-spiral.yaml"


def test_class_balance_reflection_and_standardisation():
    s = generate(SpiralConfig())
    assert s.points.shape == (4400, 2) and s.points.dtype == np.float64
    assert np.bincount(s.labels).tolist() == [2200, 2200]
    assert (s.labels[:2200] == 0).all() and (s.labels[2200:] == 1).all()
    # class 1 is the point reflection of class 0, noise included, exactly
    np.testing.assert_array_equal(s.points[2200:], -s.points[:2200])
    np.testing.assert_allclose(s.points.std(axis=0), [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(s.points.mean(axis=0), [0.0, 0.0], atol=1e-12)
    assert (s.scale > 1).all()  # the raw spirals reach radius 2*pi*turns


def test_the_notebooks_draws_in_order():
    cfg = SpiralConfig(turns=2.0, data_seed=7, n_per_class=50, n_val=10, n_train=60)
    rng = np.random.RandomState(7)  # the notebook: u, then a, then b, from one generator
    u, a, b = rng.rand(50, 1), rng.rand(50, 1), rng.rand(50, 1)
    t = np.sqrt(u) * 2.0 * (2 * np.pi)
    raw = np.hstack((-np.cos(t) * t + a * 0.7, np.sin(t) * t + b * 0.7))
    raw = np.vstack((raw, -raw))
    s = generate(cfg)
    np.testing.assert_allclose(s.points, raw / raw.std(axis=0), rtol=1e-13)
    np.testing.assert_allclose(s.points * s.scale, raw, rtol=1e-13)


def test_split_sizes_disjoint_and_shuffled():
    s = generate(SpiralConfig())
    assert len(s.val_index) == 200 and len(s.train_index) == 2000
    assert not set(s.val_index) & set(s.train_index)
    assert len(set(s.train_index)) == 2000
    # shuffled: both classes in both splits, in no sorted order
    for index in (s.val_index, s.train_index):
        assert 0.4 < s.labels[index].mean() < 0.6
        assert not (np.diff(index) > 0).all()


def test_split_is_sklearns_train_test_split():
    model_selection = pytest.importorskip("sklearn.model_selection")
    s = generate(SpiralConfig())
    rows = np.arange(4400)
    train, test = model_selection.train_test_split(rows, test_size=200, random_state=42)
    np.testing.assert_array_equal(s.val_index, test)
    np.testing.assert_array_equal(s.train_index, train[:2000])


def test_determinism_per_seed_and_turns():
    a, b = generate(SpiralConfig()), generate(SpiralConfig())
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.train_index, b.train_index)
    other = generate(SpiralConfig(data_seed=22))
    assert not np.array_equal(a.points, other.points)
    np.testing.assert_array_equal(a.val_index, other.val_index)  # split_seed unchanged
    turned = generate(SpiralConfig(turns=2.0))
    assert not np.array_equal(a.points, turned.points)
    resplit = generate(SpiralConfig(split_seed=0))
    assert not np.array_equal(a.val_index, resplit.val_index)


def test_store_in_the_stage_one_format(tmp_path):
    path = tmp_path / "spiral.h5"
    assert write_spiral(SpiralConfig(), path)
    meta = hdf5.verify(path)
    assert (meta.source, meta.backbone, meta.weights) == ("spiral", "none", "none")
    assert meta.feature_dim == 2 and meta.splits == ("train", "val")
    assert meta.class_names == ("0", "1")
    assert meta.extra["spiral"]["turns"] == 1.52 and meta.extra["spiral"]["data_seed"] == 21
    assert "RandomState" in meta.extra["rng"]
    s = generate(SpiralConfig())
    val = hdf5.load(path, "val")
    np.testing.assert_array_equal(val.features, s.points[s.val_index].astype(np.float32))
    np.testing.assert_array_equal(val.labels, s.labels[s.val_index])
    assert val.paths[0] == f"point/{s.val_index[0]}"
    train = hdf5.load(path, "train")
    assert len(train) == 2000 and np.bincount(train.labels).sum() == 2000


def test_rewrite_only_when_settings_change(tmp_path, caplog):
    path = tmp_path / "spiral.h5"
    assert write_spiral(SpiralConfig(), path)
    first = path.read_bytes()
    assert not write_spiral(SpiralConfig(), path)
    assert write_spiral(SpiralConfig(), path, force=True)
    assert path.read_bytes() == first  # byte-identical
    assert write_spiral(SpiralConfig(noise=0.5), path)
    assert "noise" in caplog.text and path.read_bytes() != first


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.datasets", *args], capture_output=True, text=True, cwd=REPO
    )


def test_cli_writes_one_store_per_turns(tmp_path):
    out = str(tmp_path / "spiral-{spiral.turns}.h5")
    for turns in ("1.52", "2"):
        proc = _cli("spiral", "--params", str(PRESET), "--set", f"spiral.out={out}",
                    "--set", f"spiral.turns={turns}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spiral-1.52.h5", "spiral-2.0.h5"]
    assert hdf5.read_meta(tmp_path / "spiral-2.0.h5").extra["spiral"]["turns"] == 2.0
    proc = _cli("spiral", "--params", str(PRESET), "--set", f"spiral.out={out}")
    assert "is up to date" in proc.stderr
    proc = _cli("spiral", "--params", str(PRESET), "--set", "spiral.n_train=4300")
    assert proc.returncode != 0
    assert "spiral.n_val + spiral.n_train: expected at most 2 * spiral.n_per_class" in proc.stderr


def test_preset_has_the_papers_settings():
    p = load_params(PRESET)
    t = p.train
    assert (t.n_qubits, t.q_depth, t.init_std, t.lr, t.batch_size) == (5, 5, 0.001, 0.07, 10)
    assert t.epochs * p.spiral.n_train // t.batch_size == 1000  # iterations
    assert t.gamma == 1.0 and t.checkpoint == "last"
    assert p.features_path == p.spiral_out == "features/spiral-1.52.h5"
    p2 = load_params(PRESET, ["spiral.turns=2.0", "train.head=classical", "train.seed=3"])
    assert p2.features_path == "features/spiral-2.0.h5"
    assert p2.out_dir == "runs/spiral/2.0-classical-seed3"


def test_train_head_reads_the_store_the_datasets_command_writes(tmp_path):
    store = tmp_path / "s-{spiral.turns}.h5"
    overrides = [
        f"spiral.out={store}",
        f"train.features={store}",
        f"train.out_dir={tmp_path}/run-{{spiral.turns}}",
        "spiral.turns=2.0",
        "train.epochs=1",
        "train.head=classical",
    ]
    p = load_params(PRESET, overrides)
    with pytest.raises(FeatureStoreError, match=r"s-2.0.h5' is missing; make it first") as missing:
        train_head(p)
    command = shlex.split(str(missing.value).splitlines()[-1])
    assert command[:4] == ["python", "-m", "pipeline.datasets", "spiral"]
    assert _cli(*command[3:]).returncode == 0  # the printed command writes that very store
    result = train_head(p)
    assert result.data.path == str(tmp_path / "s-2.0.h5")
    assert (tmp_path / "run-2.0" / "model.pt").is_file()
    # a store made with other settings is refused, with the command that remakes it
    noisier = load_params(PRESET, [*overrides, "spiral.noise=0.5"])
    with pytest.raises(FeatureStoreError, match=r"spiral.noise: 0.7 in the store, 0.5 in params"):
        train_head(noisier)
    # a store that is not spiral.out is never generated
    p3 = load_params(PRESET, [*overrides, f"train.features={tmp_path / 'other.h5'}"])
    with pytest.raises(FeatureStoreError, match=r"other\.h5"):
        train_head(p3)
    assert not (tmp_path / "other.h5").exists()


@pytest.mark.parametrize(
    ("head", "epochs", "at_least"), [("quantum", 2, 0.75), ("classical", 3, 0.65)]
)
def test_a_short_run_on_the_spiral_learns(tmp_path, head, epochs, at_least):
    path = tmp_path / "spiral.h5"
    write_spiral(SpiralConfig(), path)
    p = load_params(PRESET, [f"train.head={head}", f"train.epochs={epochs}"])
    result = fit(p.train, load_data(path), on_epoch=lambda row: None)
    # chance is 0.5 (+- 0.035 on 200 points); 400 or 600 of the paper's 1000 iterations, with
    # its settings, put both heads well above it (seed 0: 0.855 and 0.705)
    assert result.metrics["last"]["val_acc"] >= at_least
    assert result.history[-1]["train_loss"] < 0.6  # log 2 = 0.69 at chance


def test_spiral_plot(tmp_path):
    from pipeline import spiral_plot
    from pipeline.reports import spiral as spiral_figure

    store = tmp_path / "spiral.h5"
    write_spiral(SpiralConfig(), store)
    runs = []
    for head in ("classical", "quantum"):
        p = load_params(PRESET, [f"train.features={store}", f"train.out_dir={tmp_path / head}",
                                 f"train.head={head}", "train.epochs=1"])  # fmt: skip
        result = train_head(p)
        runs.append((tmp_path / head, result.metrics["last"]["val_acc"]))
    panel = spiral_figure.load_run(tmp_path / "quantum")
    assert panel.accuracy == pytest.approx(runs[1][1])  # the final iterate's accuracy
    assert "Dressed quantum" in panel.title and "final iterate" in panel.title
    out = tmp_path / "spiral.png"
    assert (
        spiral_plot.main([str(r) for r, _ in runs] + ["--out", str(out), "--resolution", "40"]) == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as img:
        assert img.size[0] > 2 * img.size[1]  # one row: data + 2 heads
    # a run whose store changed since training is refused
    write_spiral(SpiralConfig(noise=0.5), store)
    assert spiral_plot.main([str(runs[0][0]), "--out", str(tmp_path / "x.png")]) != 0
    assert not (tmp_path / "x.png").exists()


def test_placeholder_errors_name_the_key(tmp_path):
    p = load_params(PRESET, ["train.features=features/{spiral.turn}.h5"])
    with pytest.raises(ConfigError, match=r"train.features: cannot fill the placeholders"):
        _ = p.features_path


def _notebook_run(turns: float, head: str) -> float:
    """The paper notebook's own single run, step for step, on this pipeline's pieces.

    Its weights: one vector 0.001 * RandomState(55).randn(...) split into pre-net, 15 circuit
    layers (rows 1..5 used), classical hidden layer and post-net; its batches: the training
    points in split order, reshuffled after each pass by RandomState(150); its loss: the
    cross entropy summed over the batch; its optimizer: PennyLane's early Adam.
    """
    from pipeline.heads.build import build_head
    from pipeline.heads.stacked import StackedHeads
    from pipeline.training.optim import StackedOptimizer

    s = generate(SpiralConfig(turns=turns))
    x, y = s.points[s.train_index], s.labels[s.train_index]
    nq = 5
    w = 0.001 * np.random.RandomState(55).randn(nq * 3 + 15 * nq + nq * (nq + 1) + 2 * (nq + 1))
    pre, w = w[: nq * 3].reshape(nq, 3), w[nq * 3 :]
    q, w = w[: 15 * nq].reshape(15, nq), w[15 * nq :]
    hidden, post = w[: nq * (nq + 1)].reshape(nq, nq + 1), w[nq * (nq + 1) :].reshape(2, nq + 1)
    model = build_head(load_params(PRESET, [f"train.head={head}"]).train, 2, 2).double()
    state = {
        "pre_net.weight": pre[:, :-1], "pre_net.bias": pre[:, -1],
        "post_net.weight": post[:, :-1], "post_net.bias": post[:, -1],
    }  # fmt: skip
    if head == "quantum":
        state["q_params"] = q[1:6]
    else:
        state |= {"hidden.weight": hidden[:, :-1], "hidden.bias": hidden[:, -1]}
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    heads = StackedHeads([model])  # a stack of one, as train_head trains
    opt = StackedOptimizer(heads.flat, heads.grad, heads.member_index, "pennylane_adam",
                           lr=[0.07], step_size=[1], gamma=[1.0])  # fmt: skip
    shuffle = np.random.RandomState(150)
    for it in range(1000):
        offset = it % 200 * 10
        if it and offset == 0:
            order = np.arange(2000)
            shuffle.shuffle(order)
            x, y = x[order], y[order]
        loss = torch.nn.functional.cross_entropy(
            heads(torch.as_tensor(x[offset : offset + 10]).unsqueeze(0))[0],
            torch.as_tensor(y[offset : offset + 10]),
            reduction="sum",
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = heads(torch.as_tensor(s.points[s.val_index]))[0].argmax(1).numpy()
    return float((pred == s.labels[s.val_index]).mean())


@pytest.mark.parametrize(
    ("turns", "head", "paper"),
    [(1.52, "classical", 0.855), (1.52, "quantum", 0.970), (2.0, "classical", 0.540)],
)
def test_the_notebooks_own_run_gives_the_papers_numbers(turns, head, paper):
    """Data, split, heads, PennyLane's Adam and the summed loss are the paper's: its single run
    at its own seeds gives its published accuracy exactly (turns 2.0, quantum: 0.675 here,
    0.625 in the paper: a chaotic run, sensitive to the simulator's rounding)."""
    assert _notebook_run(turns, head) == pytest.approx(paper, abs=1e-9)
