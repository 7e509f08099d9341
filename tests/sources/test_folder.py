from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.common.errors import BadImageError, DataError
from pipeline.sources import folder, images


def test_extension_list_is_torchvisions():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert images.IMG_EXTENSIONS == IMG_EXTENSIONS


def test_scan_matches_torchvision_imagefolder(tiny_data):
    from torchvision.datasets import ImageFolder

    listing = folder.scan(tiny_data, ["train", "val"])
    for split in ("train", "val"):
        ref = ImageFolder(tiny_data / split)
        assert list(listing.class_names) == ref.classes
        ours = list(zip(listing.rows[split], listing.labels[split].tolist(), strict=True))
        theirs = [(Path(p).relative_to(tiny_data).as_posix(), y) for p, y in ref.samples]
        assert ours == theirs
    assert listing.ignored["train"] == ["train/ants/notes.txt"]
    assert listing.ignored["val"] == []


def test_val_classes_must_match_train(tiny_data):
    (tiny_data / "val" / "wasps").mkdir()
    with pytest.raises(DataError, match=r"split 'val'.*class 'wasps' not in train"):
        folder.scan(tiny_data, ["train", "val"])
    shutil.rmtree(tiny_data / "val" / "wasps")
    shutil.rmtree(tiny_data / "val" / "bees")
    with pytest.raises(DataError, match=r"class 'bees' missing"):
        folder.scan(tiny_data, ["train", "val"])


def test_missing_folders_are_named(tmp_path, tiny_data):
    with pytest.raises(DataError, match=r"data folder '.*nowhere' does not exist"):
        folder.scan(tmp_path / "nowhere", ["train"])
    with pytest.raises(DataError, match=r"split folder '.*test' does not exist.*found folders"):
        folder.scan(tiny_data, ["train", "test"])


def test_fingerprint_follows_content_not_location(tiny_data, tmp_path):
    listing = folder.scan(tiny_data, ["train", "val"])
    before = folder.fingerprint(tiny_data, listing)
    moved = shutil.copytree(tiny_data, tmp_path / "elsewhere")
    assert folder.fingerprint(moved, folder.scan(moved, ["train", "val"])) == before
    (moved / "train" / "ants" / "notes.txt").write_text("ignored files do not count")
    assert folder.fingerprint(moved, folder.scan(moved, ["train", "val"])) == before
    target = moved / "val" / "bees" / "j_rgb.jpg"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    assert folder.fingerprint(moved, folder.scan(moved, ["train", "val"])) != before


@pytest.mark.parametrize(
    "rel",
    [
        "train/ants/b_gray.png",
        "train/bees/d_cmyk.jpg",
        "train/ants/sub/c_palette.png",
        "train/bees/e_rgba.PNG",
    ],
)
def test_every_mode_is_decoded_to_rgb(tiny_data, rel):
    img = images.load_rgb(tiny_data / rel)
    assert img.mode == "RGB"


def test_undecodable_file_raises_bad_image_error(tiny_data, truncated_jpeg):
    path = truncated_jpeg(tiny_data)
    with pytest.raises(BadImageError, match=r"cannot decode image .*zz_truncated.jpg"):
        images.load_rgb(path)
    text = tiny_data / "train" / "ants" / "fake.png"
    text.write_text("definitely not a PNG")
    with pytest.raises(BadImageError, match=r"fake\.png"):
        images.load_rgb(text)
