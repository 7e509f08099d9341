"""model.pt records a digest of its tensors and every read checks it."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.config import Params, TrainConfig
from pipeline.common.errors import PipelineError
from pipeline.heads.checkpoint import load_checkpoint, read_checkpoint
from pipeline.store import hdf5
from pipeline.training.run import train_head


def _store(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def split(name: str, n: int) -> hdf5.SplitArrays:
        labels = np.arange(n) % 2
        feats = rng.standard_normal((n, 8)) + labels[:, None]
        return hdf5.SplitArrays(feats.astype(np.float32), labels, [f"{name}/{i}" for i in range(n)])

    hdf5.write(
        path,
        {"train": split("train", 16), "val": split("val", 8)},
        class_names=["a", "b"],
        source="synthetic",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint="blobs",
    )
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoint")
    cfg = TrainConfig(
        features=str(_store(root / "s.h5")), out_dir=str(root / "run"), epochs=1, n_qubits=2
    )
    train_head(Params(train=cfg))
    return root / "run" / "model.pt"


def _reference_digest(state: dict) -> str:
    """The digest spelled out with numpy: name, dtype, shape, then the little-endian bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        array = state[name].numpy()
        digest.update(f"{name}\0{state[name].dtype}\0{tuple(array.shape)}\n".encode())
        digest.update(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def test_the_digest_is_recorded_and_checked(model):
    ckpt = torch.load(model, weights_only=True)
    assert ckpt["tensors_sha256"] == _reference_digest(ckpt["state_dict"])
    assert read_checkpoint(model)["tensors_sha256"] == ckpt["tensors_sha256"]


def test_flipped_exponent_bits_in_the_file_are_a_named_error(model, tmp_path):
    ckpt = torch.load(model, weights_only=True)
    _, tensor = max(ckpt["state_dict"].items(), key=lambda kv: kv[1].numel())
    raw = tensor.numpy().tobytes()
    data = bytearray(model.read_bytes())
    at = data.find(raw)
    assert at >= 0 and data.find(raw, at + 1) < 0  # the tensor's bytes, stored once
    step = tensor.element_size()
    for k in range(min(16, tensor.numel())):
        data[at + k * step + step - 1] ^= 0x40  # the top exponent bit of the value
    bad = tmp_path / "model.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match=r"model\.pt' is corrupt: its weights' sha256 is"):
        load_checkpoint(bad)


def test_a_changed_tensor_saved_again_is_a_named_error(model, tmp_path):
    ckpt = torch.load(model, weights_only=True)
    name = sorted(ckpt["state_dict"])[0]
    ckpt["state_dict"][name] = ckpt["state_dict"][name].clone()
    ckpt["state_dict"][name].view(-1)[0] = (
        8.5e306 if ckpt["state_dict"][name].dtype == torch.float64 else 1e38
    )
    torch.save(ckpt, tmp_path / "model.pt")
    with pytest.raises(PipelineError, match=r"is corrupt.*train the head again"):
        read_checkpoint(tmp_path / "model.pt")


def test_an_old_checkpoint_without_a_digest_loads_with_a_note(model, tmp_path, caplog):
    ckpt = torch.load(model, weights_only=True)
    del ckpt["tensors_sha256"]
    torch.save(ckpt, tmp_path / "model.pt")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        head, _ = load_checkpoint(tmp_path / "model.pt")
    assert "records no digest of its weights" in caplog.text
    assert sum(p.numel() for p in head.parameters()) > 0
