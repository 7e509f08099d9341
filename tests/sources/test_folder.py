from __future__ import annotations

import logging
import os
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


def test_probe_decodes_every_mode_and_catches_bad_files(tiny_data, truncated_jpeg):
    listing = folder.scan(tiny_data, ["train", "val"])
    assert folder.check(tiny_data, listing) == {"train": {}, "val": {}}
    bad = truncated_jpeg(tiny_data)
    assert "truncated" in images.probe(bad)
    listing = folder.scan(tiny_data, ["train", "val"])
    assert folder.check(tiny_data, listing) == {"train": {6: images.probe(bad)}, "val": {}}
    assert folder.check(tiny_data, listing, {"train": range(3), "val": range(4)}) == {
        "train": {},
        "val": {},
    }


# ----------------------------------------------------------------------- links, empty classes


def test_folder_links_are_followed_as_imagefolder_follows_them(tiny_data, tmp_path, image_folder):
    from torchvision.datasets import ImageFolder

    elsewhere = image_folder(
        tmp_path / "elsewhere", [("x", "y", "k.jpg", "RGB", (9, 9), "JPEG")], extras=False
    )
    (tiny_data / "train" / "ants" / "linked").symlink_to(elsewhere / "x" / "y")
    listing = folder.scan(tiny_data, ["train", "val"])
    ref = ImageFolder(tiny_data / "train")
    theirs = [(Path(p).relative_to(tiny_data).as_posix(), y) for p, y in ref.samples]
    assert list(zip(listing.rows["train"], listing.labels["train"].tolist(), strict=True)) == theirs
    assert "train/ants/linked/k.jpg" in listing.rows["train"]


def test_a_link_loop_is_not_followed(tiny_data, caplog):
    loop = tiny_data / "train" / "bees" / "loopdir"
    loop.mkdir()
    (loop / "self").symlink_to("..")  # train/bees/loopdir/self -> train/bees
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        listing = folder.scan(tiny_data, ["train", "val"])
    assert listing.rows["train"][3:] == [
        "train/bees/d_cmyk.jpg",
        "train/bees/e_rgba.PNG",
        "train/bees/f_rgb.jpeg",
    ]  # 3 bee images, not one set per turn of the loop
    assert "symbolic link loop: train/bees/loopdir/self leads back to train/bees" in caplog.text


def test_a_file_or_folder_reached_twice_is_listed_once_naming_both(tiny_data, caplog):
    bees = tiny_data / "train" / "bees"
    (bees / "a_copy.jpg").symlink_to(bees / "d_cmyk.jpg")  # sorted before the file itself
    os.link(tiny_data / "val" / "ants" / "g_rgb.png", tiny_data / "val" / "ants" / "zz_hard.png")
    (tiny_data / "val" / "bees" / "more").symlink_to(bees)  # a folder train already has
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        listing = folder.scan(tiny_data, ["train", "val"])
    assert listing.rows["train"][3:] == [
        "train/bees/a_copy.jpg",
        "train/bees/e_rgba.PNG",
        "train/bees/f_rgb.jpeg",
    ]
    assert listing.rows["val"] == [
        "val/ants/g_rgb.png",
        "val/ants/h_gray.jpg",
        "val/bees/i_rgba.png",
        "val/bees/j_rgb.jpg",
    ]
    text = caplog.text
    assert (
        "train/bees/d_cmyk.jpg is the same file as train/bees/a_copy.jpg; stored once, as "
        "train/bees/a_copy.jpg"
    ) in text
    assert "val/ants/zz_hard.png is the same file as val/ants/g_rgb.png" in text
    assert "val/bees/more is the same folder as train/bees; walked once" in text


def test_an_empty_class_folder_in_any_split_is_named(tiny_data, image_folder):
    image_folder(tiny_data, [("train", "wasps", "w.jpg", "RGB", (9, 9), "JPEG")], extras=False)
    (tiny_data / "val" / "wasps").mkdir()
    (tiny_data / "val" / "wasps" / "readme.txt").write_text("no images yet")
    with pytest.raises(
        DataError,
        match=r"class 'wasps' of split 'val' has no images \('.*val/wasps' holds only 1 other "
        r"file \(readme.txt\)\)",
    ):
        folder.scan(tiny_data, ["train", "val"])
    (tiny_data / "train" / "wasps" / "w.jpg").unlink()
    with pytest.raises(DataError, match=r"class 'wasps' of split 'train' .*; class 'wasps' of"):
        folder.scan(tiny_data, ["train", "val"])
