from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import predict as predict_command
from pipeline.common.config import Params, TrainConfig
from pipeline.common.errors import DataError, PipelineError, WeightsError
from pipeline.common.files import file_sha256
from pipeline.heads.checkpoint import load_checkpoint
from pipeline.inference import predict
from pipeline.store import hdf5
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]


def _cached_logits(run: Path, store: Path, split: str = "val") -> tuple[np.ndarray, list[str]]:
    """The trained head applied to the cached features of ``split``."""
    model, _ = load_checkpoint(run / "model.pt")
    part = hdf5.load(store, split)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model(torch.as_tensor(part.features).to(dtype)).numpy(), part.paths


def _relative(predictions, root: Path) -> list[str]:
    return [Path(p.path).relative_to(root).as_posix() for p in predictions]


def _edit_checkpoint(run: Path, target: Path, **recorded) -> Path:
    """A copy of ``run``'s model.pt with keys of its ``features`` record replaced."""
    ckpt = torch.load(run / "model.pt", weights_only=True)
    extra = recorded.pop("extra", None)
    ckpt["features"] = {**ckpt["features"], **recorded}
    if extra is not None:
        ckpt["features"]["extra"] = {**ckpt["features"]["extra"], **extra}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    target.write_bytes(buf.getvalue())
    return target


def _random_resnet18_state_file(path: Path, seed: int) -> Path:
    """A state-dict file of torchvision's resnet18 initialised under ``seed``."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.resnet18(weights=None)
    torch.save(model.state_dict(), path)
    return path


# ------------------------------------------------------------------ the live path = the cached path


def test_live_logits_equal_the_head_on_cached_features(tiny_run, tiny_store, tiny_root):
    cached, paths = _cached_logits(tiny_run, tiny_store)
    # batches of 3 over 4 images: a full and a partial batch
    preds = predict.predict(
        tiny_run / "model.pt", [tiny_root / "val"], device="cpu", batch_size=3, workers=0
    )
    assert _relative(preds, tiny_root) == paths  # same walk, same order as stage one
    live = np.stack([p.logits for p in preds])
    assert live.dtype == np.float64 and live.shape == cached.shape == (4, 2)
    assert np.abs(live - cached).max() <= 1e-5
    probs = np.stack([p.probabilities for p in preds])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert [p.predicted for p in preds] == [["ants", "bees"][i] for i in cached.argmax(axis=1)]


@pytest.mark.slow
def test_live_logits_equal_cached_ones_on_the_real_set(real_store, hymenoptera_dir, tmp_path):
    run = tmp_path / "run"
    train_head(
        Params(train=TrainConfig(features=str(real_store), out_dir=str(run), epochs=2, lr=0.01))
    )
    cached, paths = _cached_logits(run, real_store)
    preds = predict.predict(run / "model.pt", [hymenoptera_dir / "val"], device="cpu")
    assert _relative(preds, hymenoptera_dir) == paths
    assert np.abs(np.stack([p.logits for p in preds]) - cached).max() <= 1e-5


# ------------------------------------------------------------------ inputs


def test_folders_are_walked_with_the_extraction_rules(tiny_data, tmp_path):
    odd = tmp_path / "photo.data"  # a file named explicitly is read whatever its extension
    odd.write_bytes((tiny_data / "val" / "ants" / "g_rgb.png").read_bytes())
    found = predict.find_images([tiny_data / "train", odd])
    names = [Path(p).relative_to(tiny_data / "train").as_posix() for p in found[:-1]]
    assert names == [
        "ants/a_rgb.jpg",
        "ants/b_gray.png",
        "ants/sub/c_palette.png",
        "bees/d_cmyk.jpg",
        "bees/e_rgba.PNG",
        "bees/f_rgb.jpeg",
    ]  # notes.txt left out, upper-case extension and sub-folder included
    assert found[-1] == str(odd)


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jpg' does not exist"):
        predict.find_images([tmp_path / "nope.jpg"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images under .*empty"):
        predict.find_images([tmp_path / "empty"])


# ------------------------------------------------------------------ the weights must match


def test_random_init_weights_that_do_not_match_are_refused(tiny_run, tiny_root, tmp_path):
    other_seed = _edit_checkpoint(tiny_run, tmp_path / "seed.pt", extra={"weights_seed": 1})
    with pytest.raises(
        WeightsError,
        match=r"have sha256 [0-9a-f]{64} \(torch's random initialisation changed.*\); the head "
        r"needs resnet18 with random-init weights, seed 1 \(extract.weights: none",
    ):
        predict.predict(other_seed, [tiny_root / "val"], device="cpu", workers=0)


def test_weights_file_moved_changed_or_replaced(tiny_run, tiny_store, tiny_root, tmp_path):
    # the tiny store's backbone is resnet18 initialised under seed 0: the same weights as a file
    weights = _random_resnet18_state_file(tmp_path / "r18.pt", seed=0)
    sha = file_sha256(weights)
    model = _edit_checkpoint(
        tiny_run,
        tmp_path / "file.pt",
        weights=str(weights),
        weights_sha256=sha,
        extra={"weights_kind": "file"},
    )
    cached, _ = _cached_logits(tiny_run, tiny_store)
    run = dict(device="cpu", workers=0)
    preds = predict.predict(model, [tiny_root / "val"], **run)
    assert np.abs(np.stack([p.logits for p in preds]) - cached).max() <= 1e-5

    moved = weights.rename(tmp_path / "moved.pt")
    with pytest.raises(WeightsError, match=r"r18\.pt \(sha256 [0-9a-f]{64}\), which is not there"):
        predict.predict(model, [tiny_root / "val"], **run)
    preds = predict.predict(model, [tiny_root / "val"], weights=str(moved), **run)
    assert np.abs(np.stack([p.logits for p in preds]) - cached).max() <= 1e-5

    other = _random_resnet18_state_file(tmp_path / "other.pt", seed=1)
    with pytest.raises(
        WeightsError,
        match=rf"--weights .*other\.pt has sha256 .*; the head needs resnet18 "
        rf"weights from the file .*r18\.pt \(sha256 {sha}\)",
    ):
        predict.predict(model, [tiny_root / "val"], weights=str(other), **run)
    shutil.copy(other, weights)  # the recorded path now holds other weights
    with pytest.raises(WeightsError, match=r"r18\.pt has changed .*the head needs"):
        predict.predict(model, [tiny_root / "val"], **run)


def test_other_preprocessing_is_refused(tiny_run, tiny_root, tmp_path):
    model = _edit_checkpoint(tiny_run, tmp_path / "t.pt", transform="Resize(size=[64])")
    with pytest.raises(
        WeightsError,
        match=r"preprocessing of this torchvision \(ImageClassification\( crop_size=\[224\] .*\) "
        r"differs from the one the head's features were made with \(Resize\(size=\[64\]\)\)",
    ):
        predict.predict(model, [tiny_root / "val"], device="cpu", workers=0)


def test_a_head_on_non_image_features_is_refused(synthetic_store, tmp_path, tiny_root):
    store = synthetic_store(tmp_path / "blobs.h5")
    train_head(Params(train=TrainConfig(features=str(store), out_dir=str(tmp_path), epochs=1)))
    with pytest.raises(WeightsError, match=r"backbone 'none' \(source 'synthetic'\).*cannot"):
        predict.predict(tmp_path / "model.pt", [tiny_root / "val"], device="cpu")


def test_missing_model_file(tiny_root, tmp_path):
    with pytest.raises(PipelineError, match=r"nope\.pt' does not exist; train a head first"):
        predict.predict(tmp_path / "nope.pt", [tiny_root / "val"])


# ------------------------------------------------------------------ the command


def test_text_output_one_line_per_image(tiny_run, tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not the repository's params.yaml: the code's defaults
    rc = predict_command.main(
        [
            str(tiny_root / "val"),
            "--model",
            str(tiny_run / "model.pt"),
            "--set",
            "extract.workers=0",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert len(out) == 4
    first = out[0].split()
    assert first[0] == str(tiny_root / "val" / "ants" / "g_rgb.png")
    assert first[1] in ("ants", "bees") and first[3] == "ants" and first[5] == "bees"
    assert float(first[2]) == pytest.approx(max(float(first[4]), float(first[6])), abs=1e-3)


def test_json_output_and_an_unreadable_image(tiny_run, tiny_root, tmp_path, truncated_jpeg):
    bad = truncated_jpeg(tmp_path, "more/zz_truncated.jpg")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.predict",
            str(tiny_root / "val"),
            str(tmp_path / "more"),
            "--model",
            str(tiny_run / "model.pt"),
            "--json",
            "--set",
            "extract.device=cpu",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no params.yaml there: the code's defaults
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 1, proc.stderr
    rows = json.loads(proc.stdout)
    assert [Path(r["path"]).name for r in rows] == [
        "g_rgb.png",
        "h_gray.jpg",
        "i_rgba.png",
        "j_rgb.jpg",
        "zz_truncated.jpg",
    ]
    for row in rows[:4]:
        assert set(row) == {"path", "predicted", "probability", "probabilities", "logits"}
        assert set(row["probabilities"]) == {"ants", "bees"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        assert row["probability"] == max(row["probabilities"].values())
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)
    assert rows[4]["path"] == str(bad) and "error" in rows[4] and "predicted" not in rows[4]
    assert f"cannot decode image {bad}" in proc.stderr
    assert f"1 of 5 images could not be decoded: {bad}" in proc.stderr


def test_predict_runs_anywhere_from_the_checkpoint_alone(
    tiny_run, tiny_root, tmp_path, capsys, monkeypatch
):
    somewhere = tmp_path / "somewhere"
    somewhere.mkdir()  # no params.yaml here
    monkeypatch.chdir(somewhere)
    model = str(tiny_run / "model.pt")
    image = str(tiny_root / "val" / "bees" / "j_rgb.jpg")
    rc = predict_command.main([image, "--model", model, "--set", "extract.workers=0"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.split()[0] == image and out.split()[1] in ("ants", "bees")
    assert predict_command.main([image]) == 1
    assert "no --model given and no params file 'params.yaml' here" in capsys.readouterr().err


def _line(path: str, probs: list[float]) -> predict.Prediction:
    return predict.Prediction(path, ("ants", "蜜蜂"), np.log(np.array(probs)))


def test_columns_stay_aligned_after_wide_characters():
    from wcwidth import wcswidth

    lines = predict.format_lines(
        [
            _line("val/ants/a.jpg", [0.9, 0.1]),
            _line("val/蜜蜂/蜂の写真.jpg", [0.2, 0.8]),
            _line("val/bees/e\u0301.jpg", [0.6, 0.4]),  # e and a combining accent: é
            predict.Prediction("val/x/壊れた.jpg", ("ants", "蜜蜂"), None, "truncated"),
        ]
    )
    assert lines[2].startswith("val/bees/e\u0301.jpg")
    # the probability column starts at the same terminal column on every line
    starts = [wcswidth(line[: line.index("0.")]) for line in lines[:3]]
    assert len(set(starts)) == 1, lines
    predicted = lines[0].index("ants", len("val/ants/a.jpg"))  # the second column
    assert wcswidth(lines[3][: lines[3].index("FAILED")]) == wcswidth(lines[0][:predicted])
    assert predict.display_width("蜂の写真.jpg") == 12
