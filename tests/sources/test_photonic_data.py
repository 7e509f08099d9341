from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest
import torch

from pipeline.common.errors import DataError
from pipeline.simulators import fock
from pipeline.sources import photonic_data


@pytest.fixture(scope="module")
def trained_params(pretrained_dir) -> np.ndarray:
    return photonic_data.load_pretrained(pretrained_dir, "trained_params.npy")


@pytest.fixture(scope="module")
def circuit_a(pretrained_dir) -> np.ndarray:
    return photonic_data.load_pretrained(pretrained_dir, "circuit_A.npy")


def test_load_pretrained_checks_shape_and_digest(trained_params, circuit_a):
    assert trained_params.shape == (16, 25) and trained_params.dtype == np.float32
    assert circuit_a.shape == (6, 1) and circuit_a.dtype == np.float32


def test_load_pretrained_names_missing_and_altered_files(pretrained_dir, tmp_path):
    spec = photonic_data.PRETRAINED["circuit_A.npy"]
    with pytest.raises(DataError, match=rf"{tmp_path}/circuit_A.npy does not exist.*{spec.sha256}"):
        photonic_data.load_pretrained(tmp_path, "circuit_A.npy")
    shutil.copy(pretrained_dir / "circuit_A.npy", tmp_path / "circuit_A.npy")
    altered = np.load(tmp_path / "circuit_A.npy")
    altered[0, 0] += 1e-3
    np.save(tmp_path / "circuit_A.npy", altered)
    with pytest.raises(
        DataError, match=rf"altered: expected sha256 {spec.sha256}; got [0-9a-f]{{64}}"
    ):
        photonic_data.load_pretrained(tmp_path, "circuit_A.npy")
    with pytest.raises(DataError, match=r"unknown pretrained file 'other\.npy'"):
        photonic_data.load_pretrained(pretrained_dir, "other.npy")


def test_load_pretrained_checks_the_shape(monkeypatch, pretrained_dir):
    spec = photonic_data.PRETRAINED["circuit_A.npy"]
    wrong = photonic_data.PretrainedFile((1, 6), "float32", spec.sha256)
    monkeypatch.setitem(photonic_data.PRETRAINED, "circuit_A.npy", wrong)
    with pytest.raises(DataError, match=r"expected float32 \(1, 6\); got float32 \(6, 1\)"):
        photonic_data.load_pretrained(pretrained_dir, "circuit_A.npy")


def test_qc_amplitudes_follow_the_notebooks_draws():
    split = photonic_data.qc_amplitudes(3, 2, seed=100)
    rng = np.random.RandomState(100)  # the notebook: per batch δ.re, δ.im, ε.re, ε.im
    for name, n_batches in (("train", 3), ("val", 2)):  # val continues the same stream
        alpha, beta, labels = split[name]
        for b in range(n_batches):
            d_re, d_im, e_re, e_im = (rng.normal(scale=0.6, size=7) for _ in range(4))
            rows = slice(7 * b, 7 * b + 7)
            np.testing.assert_array_equal(alpha[rows], photonic_data.QC_ALPHA + d_re + 1j * d_im)
            np.testing.assert_array_equal(beta[rows], photonic_data.QC_BETA + e_re + 1j * e_im)
            np.testing.assert_array_equal(labels[rows], np.arange(7))
    assert photonic_data.QC_ALPHA[4] == 1.4j and photonic_data.QC_BETA[6] == -1.4j


def test_qc_dataset_features(trained_params):
    data = photonic_data.qc_dataset(trained_params, n_train_batches=3, n_val_batches=2, min_norm=0)
    train, val = data["train"], data["val"]
    assert train.features.shape == (21, 16) and val.features.shape == (14, 16)
    assert train.features.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_allclose((train.features**2).sum(axis=1), 1.0, rtol=1e-6)
    assert (train.features >= 0).all()
    # the composed A' gate equals the 15 layers applied one by one to the inputs
    alpha, beta, _ = photonic_data.qc_amplitudes(3, 2)["val"]
    kets = photonic_data.qc_layers(
        photonic_data.qc_input_states(alpha, beta, 11), trained_params[:, :15]
    )
    expected = photonic_data.qc_image(kets).abs().reshape(14, 16).numpy()
    np.testing.assert_allclose(val.features, expected, rtol=1e-5, atol=1e-7)
    again = photonic_data.qc_dataset(trained_params, n_train_batches=3, n_val_batches=2, min_norm=0)
    assert np.array_equal(again["train"].features, train.features)  # bitwise reproducible
    fewer = photonic_data.qc_dataset(
        trained_params, n_layers=14, n_train_batches=3, n_val_batches=0
    )
    assert not np.allclose(fewer["train"].features, train.features)


def test_qc_warns_when_the_cutoff_is_too_small(trained_params, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        photonic_data.qc_dataset(trained_params, cutoff=5, n_train_batches=1, n_val_batches=0)
    assert "QC states at cutoff 5: 7 of 7" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        photonic_data.qc_dataset(trained_params, n_train_batches=2, n_val_batches=0, min_norm=0.0)
    assert caplog.text == ""
    with pytest.raises(ValueError, match="cutoff: expected an integer >= 4; got 3"):
        photonic_data.qc_dataset(trained_params, cutoff=3, n_train_batches=1, n_val_batches=0)


def test_qq_draws_follow_the_notebook():
    draws = photonic_data.qq_draws(2, 1, seed=1)
    rng = np.random.RandomState(1)  # the notebook's random_dict(), one batch of 8 at a time
    for name, rows in (("train", slice(0, 8)), ("train", slice(8, 16)), ("val", slice(0, 8))):
        labels = rng.randint(2, size=8)
        sq = rng.uniform(low=-0.5, high=0.5, size=[8, 1])
        r1, r2, _r3 = (rng.uniform(low=-2 * np.pi, high=2 * np.pi, size=[8, 1]) for _ in range(3))
        d = draws[name]
        np.testing.assert_array_equal(d.labels[rows], labels)
        np.testing.assert_array_equal(d.sq[rows], sq[:, 0])
        np.testing.assert_array_equal(d.r1[rows], r1[:, 0])
        np.testing.assert_array_equal(d.r2[rows], r2[:, 0])
    assert draws["train"].labels.dtype == np.int64 and len(draws["val"].sq) == 8


def test_qq_input_states():
    c = 25
    draws = photonic_data.QQDraws(
        labels=np.array([0, 1, 0, 1]),
        sq=np.array([0.0, 0.0, 0.3, 0.3]),
        r1=np.array([0.4, 0.4, 0.4, 0.4]),
        r2=np.array([-1.0, -1.0, -1.0, -1.0]),
    )
    kets = photonic_data.qq_input_states(draws, c)  # (4, c)
    phase = -0.6  # r1 + r2
    torch.testing.assert_close(kets[0], fock.coherent_state(1.0, phase, c))  # |e^{iφ}>
    torch.testing.assert_close(kets[1], math.e ** (1j * phase) * fock.fock_state(1, c))
    # squeezing acts between the rotations, on the displaced |label>
    for row, start in ((2, fock.coherent_state(1.0, 0.0, c)), (3, fock.fock_state(1, c))):
        expected = fock.rotation(-1.0, c) @ fock.squeezing(0.3, 0.0, c) @ fock.rotation(0.4, c)
        torch.testing.assert_close(kets[row], expected @ start)
        swapped = fock.squeezing(0.3, 0.0, c) @ fock.rotation(-0.6, c) @ start
        assert not torch.allclose(kets[row], swapped)


def test_circuit_a_has_no_squeezing(circuit_a):
    sq, d, r1, r2, r3, kappa = circuit_a[:, 0].astype(np.float64).tolist()
    c = 15
    expected = (
        fock.cubic_phase(max(-1.0, min(1.0, kappa)), c)
        @ fock.rotation(r3, c)
        @ fock.displacement(max(-1.0, min(1.0, d)), 0.0, c)
        @ fock.rotation(r2, c)
        @ fock.rotation(r1, c)
    )
    torch.testing.assert_close(photonic_data.circuit_a_matrix(circuit_a, c), expected)
    assert abs(sq) > 1e-3  # the notebook's unapplied squeezing would have changed the circuit


def test_qq_dataset(circuit_a):
    data = photonic_data.qq_dataset(circuit_a, n_train_batches=2, n_val_batches=1)
    train, val = data["train"], data["val"]
    assert train.features.shape == (16, 15) and val.features.shape == (8, 15)
    assert train.features.dtype == np.complex128 and train.labels.dtype == np.int64
    draws = photonic_data.qq_draws(2, 1)["train"]
    np.testing.assert_array_equal(train.labels, draws.labels)
    gate = photonic_data.circuit_a_matrix(circuit_a)
    expected = (photonic_data.qq_input_states(draws) @ gate.T).numpy()
    np.testing.assert_allclose(train.features, expected, rtol=0, atol=1e-14)
    norms = (np.abs(train.features) ** 2).sum(axis=1)
    assert (norms < 1 + 1e-12).all() and (norms > 0.9).all()  # unnormalised, truncated
    again = photonic_data.qq_dataset(circuit_a, n_train_batches=2, n_val_batches=1)
    assert np.array_equal(again["val"].features, val.features)
