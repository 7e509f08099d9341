from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import extract
from pipeline.backbones import inference
from pipeline.common.config import DataConfig, ExtractConfig
from pipeline.common.devices import resolve_device
from pipeline.common.errors import BadImageError, DataError, FeatureStoreError, WeightsError
from pipeline.common.files import file_sha256
from pipeline.extraction.job import Job
from pipeline.extraction.loop import extract_images, stale_reason
from pipeline.sources.folder import FolderSource
from pipeline.store import hdf5


def _cfg(out: Path, **kw) -> ExtractConfig:
    return ExtractConfig(**{"weights": "none", "out": str(out), "workers": 0, **kw})


def _plain_resnet18_features(root: Path, rel_paths: list[str], seed: int = 0) -> np.ndarray:
    """The reference: torchvision's resnet18, fc = Identity, eval mode, the weights' transforms."""
    import torchvision
    from PIL import Image

    torch.manual_seed(seed)
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    tf = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    batch = torch.stack([tf(Image.open(root / p).convert("RGB")) for p in rel_paths])
    with torch.no_grad():
        return model(batch).numpy()


def test_tiny_folder_store_contents(tiny_store):
    meta = hdf5.verify(tiny_store)
    assert meta.class_names == ("ants", "bees")
    assert meta.backbone == "resnet18" and meta.weights == "none" and meta.feature_dim == 512
    assert meta.extra["weights_kind"] == "none" and meta.extra["weights_seed"] == 0
    assert "RANDOM-INIT" in meta.extra["warning"]
    assert "crop_size=[224]" in meta.transform and "resize_size=[256]" in meta.transform
    assert len(meta.dataset_fingerprint) == 64 and len(meta.weights_sha256) == 64
    assert meta.skipped == ()
    assert {"torch", "torchvision", "numpy", "h5py"} <= set(meta.versions)
    train = hdf5.load(tiny_store, "train")
    assert train.paths == [
        "train/ants/a_rgb.jpg",
        "train/ants/b_gray.png",
        "train/ants/sub/c_palette.png",
        "train/bees/d_cmyk.jpg",
        "train/bees/e_rgba.PNG",
        "train/bees/f_rgb.jpeg",
    ]
    assert list(train.labels) == [0, 0, 0, 1, 1, 1]
    assert hdf5.load(tiny_store, "val").features.shape == (4, 512)


def test_features_equal_plain_torchvision_resnet18(tiny_store, tiny_root):
    for split in ("train", "val"):
        part = hdf5.load(tiny_store, split)
        ref = _plain_resnet18_features(tiny_root, part.paths)
        assert np.abs(part.features - ref).max() <= 1e-4
        assert np.abs(ref).max() > 1e-2  # the comparison is not between zeros


def test_two_extractions_give_identical_bytes(tiny_data, tmp_path):
    out = tmp_path / "a.h5"
    extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    first = out.read_bytes()
    result = extract_images(DataConfig(dir=str(tiny_data)), _cfg(out, batch_size=3), force=True)
    assert not result.up_to_date
    assert out.read_bytes() == first


def test_up_to_date_run_builds_no_model(
    forbid_backbone, tiny_store, tiny_root, monkeypatch, caplog
):
    root = tiny_root
    before = tiny_store.read_bytes()

    forbid_backbone()
    caplog.set_level(logging.INFO, logger="pipeline")
    result = extract_images(DataConfig(dir=str(root)), _cfg(tiny_store))
    assert result.up_to_date
    assert "is up to date" in caplog.text
    assert tiny_store.read_bytes() == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda cfg, root: (cfg.__class__(**{**cfg.__dict__, "seed": 1}), root), "seed 0 -> 1"),
        (
            lambda cfg, root: (cfg.__class__(**{**cfg.__dict__, "backbone": "resnet34"}), root),
            "backbone 'resnet18' -> 'resnet34'",
        ),
    ],
)
def test_changed_settings_make_the_file_stale(tiny_data, tmp_path, change, reason):
    out = tmp_path / "a.h5"
    cfg = _cfg(out)
    extract_images(DataConfig(dir=str(tiny_data)), cfg)
    source = FolderSource(tiny_data, ["train", "val"])
    listing = source.list()
    fp = source.fingerprint(listing)
    assert stale_reason(Job(source, listing, fp, out, cfg)) is None
    new_cfg, _ = change(cfg, tiny_data)
    got = stale_reason(Job(source, listing, fp, out, new_cfg))
    assert got is not None and reason in got


def test_changed_image_triggers_reextraction(tiny_data, tmp_path, image_folder):
    out = tmp_path / "a.h5"
    extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    before = out.read_bytes()
    image_folder(tiny_data, [("val", "bees", "j_rgb.jpg", "RGB", (81, 64), "PNG")], extras=False)
    result = extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    assert not result.up_to_date
    assert out.read_bytes() != before


def test_bad_images_are_all_named_in_one_error_before_any_model_is_built(
    forbid_backbone, tiny_data, tmp_path, truncated_jpeg, monkeypatch, capsys
):
    truncated_jpeg(tiny_data)
    truncated_jpeg(tiny_data, "val/ants/zz_truncated.jpg")
    (tiny_data / "train" / "ants" / "fake.png").write_text("definitely not a PNG")
    for k in range(22):
        truncated_jpeg(tiny_data, f"train/bees/many/{k:02d}.jpg")

    forbid_backbone()
    out = tmp_path / "feats" / "a.h5"
    with pytest.raises(DataError) as info:
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    msg = str(info.value)
    assert msg.startswith("25 images cannot be decoded")
    assert "extract.on_bad_image=skip" in msg
    assert str(tiny_data / "train" / "ants" / "fake.png") in msg  # every split and class
    assert "many/17.jpg" in msg and "many/18.jpg" not in msg  # 20 named, the rest counted
    assert "... and 5 more" in msg
    assert str(tiny_data / "val" / "ants" / "zz_truncated.jpg") not in msg  # the 21st and on
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["a.h5.lock"]  # the lock, nothing else
    code = extract.main(
        [
            "--params",
            _params(tmp_path),
            "--set",
            f"data.dir={tiny_data}",
            "--set",
            f"extract.out={out}",
            "--set",
            "extract.weights=none",
            "--set",
            "extract.workers=0",
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "25 images cannot be decoded" in err and "extract.on_bad_image=skip" in err
    assert not out.exists()


def test_an_image_that_fails_only_in_the_full_decode_is_still_named(
    tiny_data, tmp_path, truncated_jpeg, monkeypatch
):
    from pipeline.sources import folder

    truncated_jpeg(tiny_data)
    monkeypatch.setattr(folder, "probe", lambda path: None)  # the cheap check misses it
    with pytest.raises(BadImageError, match=r"zz_truncated.jpg.*extract.on_bad_image=skip"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5"))
    assert not (tmp_path / "a.h5").exists()


def _params(tmp_path: Path) -> str:
    p = tmp_path / "params.yaml"
    p.write_text("{}\n")
    return str(p)


def test_bad_image_skip_records_it(tiny_data, tmp_path, truncated_jpeg, caplog):
    truncated_jpeg(tiny_data)
    out = tmp_path / "a.h5"
    caplog.set_level(logging.INFO, logger="pipeline")
    result = extract_images(
        DataConfig(dir=str(tiny_data)), _cfg(out, on_bad_image="skip", workers=1, batch_size=4)
    )
    assert [s["path"] for s in result.meta.skipped] == ["train/bees/zz_truncated.jpg"]
    assert "truncated" in result.meta.skipped[0]["error"].lower()
    assert "skipping undecodable image train/bees/zz_truncated.jpg" in caplog.text
    assert "1 non-image files ignored" in caplog.text
    train = hdf5.load(out, "train")
    assert len(train) == 6 and "train/bees/zz_truncated.jpg" not in train.paths
    # a file with skipped images is stale once on_bad_image is back to 'error'
    source = FolderSource(tiny_data, ["train", "val"])
    listing = source.list()
    reason = stale_reason(Job(source, listing, source.fingerprint(listing), out, _cfg(out)))
    assert reason is not None and "on_bad_image" in reason


def test_exception_mid_extraction_keeps_the_earlier_file(tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "a.h5"
    extract_images(DataConfig(dir=str(tiny_data)), _cfg(out))
    good = out.read_bytes()
    real_iter = inference.iter_features

    def dies_after_one_batch(*args, **kwargs):
        it = real_iter(*args, **kwargs)
        yield next(it)
        raise RuntimeError("injected failure")

    monkeypatch.setattr(inference, "iter_features", dies_after_one_batch)
    with pytest.raises(RuntimeError, match="injected failure"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(out, batch_size=2, seed=5))
    assert out.read_bytes() == good
    # no temporary file; the lock, and the finished batch kept for a rerun to resume from
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.h5",
        "a.h5.lock",
        "a.h5.partial",
        "tiny",
    ]
    # and with no earlier file, nothing complete-looking is left behind
    fresh = tmp_path / "fresh.h5"
    with pytest.raises(RuntimeError, match="injected failure"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(fresh, batch_size=2))
    assert not fresh.exists()
    with pytest.raises(FeatureStoreError):
        hdf5.load(fresh, "train")


def test_state_dict_weights_file(tiny_data, tmp_path):
    torch.manual_seed(7)
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    sd_path = tmp_path / "r18.pt"
    torch.save(model.state_dict(), sd_path)
    by_file = extract_images(
        DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "f.h5", weights=str(sd_path))
    )
    extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "s.h5", seed=7))
    assert by_file.meta.extra["weights_kind"] == "file"
    assert by_file.meta.weights_sha256 == file_sha256(sd_path)
    a = hdf5.load(tmp_path / "f.h5", "train").features
    b = hdf5.load(tmp_path / "s.h5", "train").features
    np.testing.assert_array_equal(a, b)


def test_bad_weights_values(tiny_data, tmp_path):
    with pytest.raises(
        WeightsError,
        match=r"'IMAGENET9K' is not a weights name of resnet18 "
        r"\(IMAGENET1K_V1\), not 'none'",
    ):
        extract_images(
            DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", weights="IMAGENET9K")
        )
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read state dict"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", weights=str(junk)))
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", weights=str(wrong)))
    with pytest.raises(WeightsError, match="unknown backbone 'resnet9'; expected one of resnet18"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", backbone="resnet9"))
    assert not (tmp_path / "a.h5").exists()


def test_offline_imagenet_weights_error_says_where_to_put_the_file(
    tiny_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError) as info:
        extract_images(
            DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", weights="IMAGENET1K_V1")
        )
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in msg
    assert "'none'" in msg and "state-dict file" in msg


def test_unknown_data_layout_is_an_error(tmp_path):
    (tmp_path / "d" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="has no class folders"):
        extract_images(
            DataConfig(dir=str(tmp_path / "d"), splits=("train",)), _cfg(tmp_path / "a.h5")
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_device_uses_cuda_when_present():
    assert resolve_device("auto").type == "cuda"


def test_auto_device_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(Exception, match="no CUDA GPU"):
        resolve_device("cuda")


# ----------------------------------------------------------------------- the real data set


def test_real_set_shapes_and_labels(real_store):
    meta = hdf5.verify(real_store)
    assert meta.class_names == ("ants", "bees")
    train, val = hdf5.load(real_store, "train"), hdf5.load(real_store, "val")
    assert train.features.shape == (244, 512) and val.features.shape == (153, 512)
    assert np.bincount(train.labels).tolist() == [123, 121]
    assert np.bincount(val.labels).tolist() == [70, 83]
    assert all(
        p.startswith("train/ants/")
        for p, y in zip(train.paths, train.labels, strict=True)
        if y == 0
    )
    assert all(
        p.startswith("val/bees/") for p, y in zip(val.paths, val.labels, strict=True) if y == 1
    )
    assert not any(p.endswith(".gif") for p in train.paths)


def test_real_set_matches_plain_resnet18(real_store, hymenoptera_dir):
    for split in ("train", "val"):
        part = hdf5.load(real_store, split)
        pick = list(range(0, len(part), max(1, len(part) // 16)))[:16]
        ref = _plain_resnet18_features(hymenoptera_dir, [part.paths[i] for i in pick])
        assert np.abs(part.features[pick] - ref).max() <= 1e-4


def test_real_set_extraction_is_byte_reproducible(real_store, hymenoptera_dir, tmp_path):
    again = tmp_path / "again.h5"
    extract_images(
        DataConfig(dir=str(hymenoptera_dir)), ExtractConfig(weights="none", out=str(again))
    )
    assert again.read_bytes() == real_store.read_bytes()


def test_skipping_every_image_of_a_class_is_refused_before_any_model_is_built(
    forbid_backbone, tiny_data, tmp_path, truncated_jpeg, monkeypatch
):
    for name in ("d_cmyk.jpg", "e_rgba.PNG", "f_rgb.jpeg"):
        (tiny_data / "train" / "bees" / name).unlink()
    truncated_jpeg(tiny_data)  # train/bees: only this one, and it cannot be decoded

    forbid_backbone()
    with pytest.raises(DataError, match=r"class 'bees' of split 'train' has no images left"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5", on_bad_image="skip"))
    assert not (tmp_path / "a.h5").exists()


def test_an_empty_class_folder_is_refused_at_extract(tiny_data, tmp_path):
    shutil.rmtree(tiny_data / "val" / "bees")
    (tiny_data / "val" / "bees").mkdir()
    with pytest.raises(DataError, match=r"class 'bees' of split 'val' has no images"):
        extract_images(DataConfig(dir=str(tiny_data)), _cfg(tmp_path / "a.h5"))
