from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline import report as report_command
from pipeline.common.config import DataConfig, Params, ReportConfig, TrainConfig
from pipeline.common.errors import PipelineError
from pipeline.heads.record import record_text
from pipeline.reports import plots
from pipeline.training.run import train_head

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run that a test may write plots into."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _params(data_dir: Path, **report_cfg) -> Params:
    return Params(data=DataConfig(dir=str(data_dir)), report=ReportConfig(**report_cfg))


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()  # decodes the whole file: fails on a truncated PNG
        assert image.format == "PNG"
        return image.size


def _rewrite_predictions(run: Path, wrong: set[int]) -> None:
    """Make every row of val_predictions.csv right, except the rows in ``wrong``."""
    path = run / "val_predictions.csv"
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        row["predicted"] = row["actual"]
        if i in wrong:
            row["predicted"] = "bees" if row["actual"] == "ants" else "ants"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _count_color(path: Path, rgb: str) -> int:
    target = np.array([int(rgb[i : i + 2], 16) for i in (1, 3, 5)])
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(pixels - target).sum(axis=2) <= 6).sum())


def test_three_pngs_of_the_expected_pixel_size(run_copy, tiny_root):
    result = plots.report(_params(tiny_root), run_copy)
    folder = run_copy / "plots"
    assert result.written == [folder / n for n in plots.PLOTS] and result.skipped == {}
    # 4 val images in a 2 x 2 grid; 2 classes; report.dpi 100
    assert _size(folder / "predictions.png") == (720, 620)
    assert _size(folder / "curves.png") == (1100, 440)
    assert _size(folder / "confusion.png") == (560, 480)
    with Image.open(folder / "curves.png") as image:
        assert "Software" not in image.info  # no matplotlib version in the bytes


@pytest.mark.parametrize(
    ("n_images", "dpi", "grid"), [(1, 50, (360, 180)), (3, 50, (360, 310)), (16, 40, (288, 248))]
)
def test_grid_size_follows_n_images_and_dpi(run_copy, tiny_root, n_images, dpi, grid):
    plots.report(_params(tiny_root, n_images=n_images, dpi=dpi), run_copy)
    assert _size(run_copy / "plots" / "predictions.png") == grid
    assert _size(run_copy / "plots" / "curves.png") == (11 * dpi, round(4.4 * dpi))


def test_same_run_same_bytes(run_copy, tiny_root):
    plots.report(_params(tiny_root), run_copy)
    first = {n: (run_copy / "plots" / n).read_bytes() for n in plots.PLOTS}
    plots.report(_params(tiny_root), run_copy)
    assert {n: (run_copy / "plots" / n).read_bytes() for n in plots.PLOTS} == first


def test_wrong_predictions_are_marked_in_red(run_copy, tiny_root):
    png = run_copy / "plots" / "predictions.png"
    _rewrite_predictions(run_copy, wrong=set())
    plots.report(_params(tiny_root), run_copy)
    all_right = _count_color(png, plots.WRONG)
    _rewrite_predictions(run_copy, wrong={1})
    plots.report(_params(tiny_root), run_copy)
    one_wrong = _count_color(png, plots.WRONG)
    assert one_wrong > all_right + 1000  # a thick red frame and a red title
    # and the right ones are framed in green
    assert _count_color(png, plots.RIGHT) > 1000


def test_seeded_selection():
    picks = plots.select(153, 16, seed=0)
    assert picks == plots.select(153, 16, seed=0)
    assert picks == sorted(set(picks)) and len(picks) == 16 and 0 <= picks[0] and picks[-1] < 153
    assert picks != plots.select(153, 16, seed=1)
    assert plots.select(4, 16, seed=0) == [0, 1, 2, 3]


def _record_images(run: Path, data_dir: str) -> None:
    """Make ``run``'s model.pt (and run.json) say its features' images are in ``data_dir``."""
    ckpt = torch.load(run / "model.pt", weights_only=True)
    ckpt["features"]["extra"]["images"]["dir"] = data_dir
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    (run / "model.pt").write_bytes(buf.getvalue())
    (run / "run.json").write_text(record_text(ckpt, buf.getvalue()))
    metrics = json.loads((run / "metrics.json").read_text())  # the run's own model, edited
    metrics["model_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_the_grid_shows_the_run_s_own_images_whatever_the_params_say(
    run_copy, tiny_root, tmp_path, caplog
):
    plots.report(_params(tiny_root), run_copy)
    first = (run_copy / "plots" / "predictions.png").read_bytes()
    other = Path(shutil.copytree(tiny_root, tmp_path / "other"))  # same relative paths ...
    Image.new("RGB", (81, 64), "white").save(other / "val" / "bees" / "j_rgb.jpg")  # ... one
    with caplog.at_level(logging.INFO, logger="pipeline"):
        result = plots.report(_params(other), run_copy)  # data.dir is not what it reads
    assert result.skipped == {}
    assert f"the images of the run's features are in {tiny_root}" in caplog.text
    assert (run_copy / "plots" / "predictions.png").read_bytes() == first


def test_images_that_are_gone_are_reported_once(run_copy, tiny_root, tmp_path, caplog):
    plots.report(_params(tiny_root), run_copy)
    assert (run_copy / "plots" / "predictions.png").exists()
    _record_images(run_copy, str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        result = plots.report(_params(tiny_root), run_copy)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    grid = [w for w in warnings if "predictions.png" in w]
    assert len(grid) == 1 and "RANDOM-INIT" not in grid[0]
    assert f"not in '{tmp_path / 'gone'}'" in grid[0] and "--data-dir" in grid[0]
    assert set(result.skipped) == {"predictions.png"}
    assert not (run_copy / "plots" / "predictions.png").exists()  # no stale grid left
    assert _size(run_copy / "plots" / "curves.png") == (1100, 440)
    assert _size(run_copy / "plots" / "confusion.png") == (560, 480)
    # --data-dir names where they are now
    assert plots.report(_params(tmp_path), run_copy, data_dir=tiny_root).skipped == {}


def test_other_images_under_the_same_paths_are_never_shown(run_copy, tiny_root, tmp_path):
    other = Path(shutil.copytree(tiny_root, tmp_path / "other"))
    Image.new("RGB", (81, 64), "white").save(other / "val" / "bees" / "j_rgb.jpg")
    _record_images(run_copy, str(other))
    result = plots.report(_params(tiny_root), run_copy)
    assert "dataset fingerprint differs" in result.skipped["predictions.png"]
    result = plots.report(_params(tiny_root), run_copy, data_dir=other)
    assert "dataset fingerprint differs" in result.skipped["predictions.png"]


def test_a_relative_data_folder_is_found_from_the_run_folder(
    run_copy, tiny_root, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    shutil.copytree(tiny_root, project / "data" / "tiny")
    run = Path(shutil.copytree(run_copy, project / "runs" / "head"))
    _record_images(run, "data/tiny")
    monkeypatch.chdir(tmp_path)  # not the project: data/tiny is found above the run folder
    assert plots.report(_params(tmp_path), run).skipped == {}
    (project / "data" / "tiny" / "val" / "ants" / "g_rgb.png").unlink()
    assert "fingerprint differs" in plots.report(_params(tmp_path), run).skipped["predictions.png"]


def test_features_without_images_draw_curves_and_confusion(synthetic_store, tmp_path):
    store = synthetic_store(tmp_path / "blobs.h5", n_classes=10)
    run = tmp_path / "run"
    train_head(Params(train=TrainConfig(features=str(store), out_dir=str(run), epochs=2)))
    result = plots.report(_params(tmp_path), run)
    assert "source 'synthetic'" in result.skipped["predictions.png"]
    assert _size(run / "plots" / "confusion.png") == (1120, 1040)  # grows with the classes


def test_run_json_draws_what_model_pt_draws(run_copy, tiny_root, tmp_path):
    """run.json holds what the plots take from model.pt: the same PNG bytes either way (a run
    folder of an older version has no run.json, and its model.pt is read instead)."""
    plots.report(_params(tiny_root), run_copy)
    drawn = {name: (run_copy / "plots" / name).read_bytes() for name in plots.PLOTS}
    old = Path(shutil.copytree(run_copy, tmp_path / "old"))
    shutil.rmtree(old / "plots")
    (old / "run.json").unlink()
    plots.report(_params(tiny_root), old)
    assert {name: (old / "plots" / name).read_bytes() for name in plots.PLOTS} == drawn


def test_a_run_json_of_another_model_is_refused(run_copy, tiny_root, tmp_path):
    other = Path(shutil.copytree(run_copy, tmp_path / "other"))
    _record_images(other, str(tmp_path / "elsewhere"))  # another model.pt, its own run.json
    shutil.copy(other / "run.json", run_copy / "run.json")
    with pytest.raises(PipelineError, match=r"run\.json' describes a model\.pt of sha256 "):
        plots.report(_params(tiny_root), run_copy)
    (run_copy / "run.json").write_text("{not json")
    with pytest.raises(PipelineError, match=r"run\.json' is not a readable run record"):
        plots.report(_params(tiny_root), run_copy)


def test_missing_run_outputs_are_named(run_copy, tiny_root, tmp_path):
    with pytest.raises(PipelineError, match=r"run folder '.*nowhere' does not exist"):
        plots.report(_params(tiny_root), tmp_path / "nowhere")
    (run_copy / "history.csv").unlink()
    with pytest.raises(PipelineError, match=r"lacks history\.csv; expected the outputs of"):
        plots.report(_params(tiny_root), run_copy)


def test_command_reads_train_out_dir_or_out_dir(run_copy, tiny_root, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  dir: {tiny_root}\ntrain:\n  out_dir: {run_copy}\n")
    assert report_command.main(["--params", str(params), "--set", "report.dpi=30"]) == 0
    assert _size(run_copy / "plots" / "curves.png") == (330, 132)
    other = Path(shutil.copytree(run_copy, tmp_path / "other"))
    shutil.rmtree(other / "plots")
    assert report_command.main(["--params", str(params), "--out-dir", str(other)]) == 0
    assert sorted(p.name for p in (other / "plots").iterdir()) == sorted(plots.PLOTS)
    capsys.readouterr()
    args = ["--params", str(params), "--out-dir", str(other), "--data-dir", str(tmp_path / "no")]
    assert report_command.main(args) == 0  # the other plots are drawn
    err = capsys.readouterr().err
    gone = f"the images of the run's features are not in '{tmp_path / 'no'}' (--data-dir)"
    assert f"skipping predictions.png: {gone}" in err
    assert report_command.main(["--params", str(params), "--out-dir", str(tmp_path / "x")]) == 1
    assert "does not exist; train a head first" in capsys.readouterr().err


@pytest.mark.slow
def test_real_set_report(real_store, hymenoptera_dir, tmp_path):
    run = tmp_path / "run"
    train_head(Params(train=TrainConfig(features=str(real_store), out_dir=str(run), epochs=2)))
    result = plots.report(_params(hymenoptera_dir), run)
    assert result.skipped == {}
    assert _size(run / "plots" / "predictions.png") == (960, 1140)  # 16 images, 4 x 4


def test_report_and_predict_expand_a_templated_run_folder(tmp_path, monkeypatch, tiny_root, capsys):
    from pipeline import datasets
    from pipeline import predict as predict_command
    from pipeline import train_head as train_head_command

    monkeypatch.chdir(tmp_path)  # params-spiral.yaml's folders are relative
    spiral = ["--params", str(REPO / "params-spiral.yaml")]
    spiral += ["--set", "train.head=classical", "--set", "train.epochs=1"]
    spiral += ["--set", "spiral.n_per_class=100", "--set", "spiral.n_train=150"]
    spiral += ["--set", "spiral.n_val=50"]
    assert datasets.main(["spiral", *spiral]) == 0
    assert train_head_command.main(spiral) == 0
    run = tmp_path / "runs" / "spiral" / "1.52-classical-seed0"  # {spiral.turns}-{train.head}-...
    assert (run / "model.pt").is_file()
    assert report_command.main(spiral) == 0
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["confusion.png", "curves.png"]
    capsys.readouterr()
    assert predict_command.main([str(tiny_root / "val"), *spiral]) == 1
    err = capsys.readouterr().err
    assert "backbone 'none' (source 'spiral')" in err  # it found and read that model.pt
