"""Shared fixtures: a tiny generated image folder, the real data set, extracted feature stores."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HYMENOPTERA = REPO.parent / "shared" / "data" / "hymenoptera_data"
PAPER_PRETRAINED = REPO.parent / "shared/data/paper-pretrained"

# (split, class, file name, PIL mode, size (w, h), format)
TINY_IMAGES = [
    ("train", "ants", "a_rgb.jpg", "RGB", (64, 48), "JPEG"),
    ("train", "ants", "b_gray.png", "L", (33, 71), "PNG"),
    ("train", "ants", "sub/c_palette.png", "P", (50, 50), "PNG"),
    ("train", "bees", "d_cmyk.jpg", "CMYK", (45, 30), "JPEG"),
    ("train", "bees", "e_rgba.PNG", "RGBA", (31, 97), "PNG"),
    ("train", "bees", "f_rgb.jpeg", "RGB", (300, 17), "JPEG"),
    ("val", "ants", "g_rgb.png", "RGB", (40, 40), "PNG"),
    ("val", "ants", "h_gray.jpg", "L", (59, 23), "JPEG"),
    ("val", "bees", "i_rgba.png", "RGBA", (27, 27), "PNG"),
    ("val", "bees", "j_rgb.jpg", "RGB", (81, 64), "JPEG"),
]


def _image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    bands = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}[mode]
    arr = rng.integers(0, 255, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)


def make_image_folder(root: Path, images=TINY_IMAGES, *, extras: bool = True) -> Path:
    """Write a tiny ImageFolder tree (plus a .txt file) under ``root``; return ``root``."""
    for seed, (split, cls, name, mode, size, fmt) in enumerate(images):
        path = root / split / cls / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _image(mode, size, seed).save(path, fmt)
    if extras:
        (root / "train" / "ants" / "notes.txt").write_text("not an image\n")
    return root


def add_truncated_jpeg(root: Path, rel: str = "train/bees/zz_truncated.jpg") -> Path:
    """Write a JPEG cut in half: it has an image extension but cannot be decoded."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    _image("RGB", (120, 90), 99).save(path, "JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A fresh tiny image folder for one test."""
    return make_image_folder(tmp_path / "tiny")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny image folder shared by the session: do not modify it."""
    return make_image_folder(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def tiny_store(tiny_root, tmp_path_factory) -> Path:
    """Features of ``tiny_root`` (random-init resnet18), extracted once per session."""
    from pipeline.common.config import DataConfig, ExtractConfig
    from pipeline.extraction.loop import extract_images

    root = tiny_root
    out = tmp_path_factory.mktemp("tiny-features") / "tiny.h5"
    extract_images(
        DataConfig(dir=str(root)), ExtractConfig(weights="none", out=str(out), workers=0)
    )
    return out


@pytest.fixture(scope="session")
def pretrained_dir() -> Path:
    """The paper's pretrained photonic parameters (``../shared/data/paper-pretrained``, with
    their checksums in its README); the tests that need them skip without them."""
    from pipeline.sources import photonic_data  # torch: only for the tests that ask for these

    missing = [name for name in photonic_data.PRETRAINED if not (PAPER_PRETRAINED / name).is_file()]
    if missing:
        pytest.skip(f"the paper's pretrained {', '.join(missing)} not at {PAPER_PRETRAINED}")
    return PAPER_PRETRAINED


def readme_block(heading: str, lang: str, page: str = "README.md") -> str:
    """The first ```lang code block after ``heading`` in ``page`` (README.md or docs/*.md)."""
    text = (REPO / page).read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    start = section.index(f"```{lang}\n") + len(f"```{lang}\n")
    return section[start : section.index("```", start)]


@pytest.fixture(scope="session")
def readme():
    """The :func:`readme_block` reader."""
    return readme_block


@pytest.fixture(scope="session")
def hymenoptera_dir() -> Path:
    """The real ants/bees set: required where HYMENOPTERA_DIR is set (CI), else skipped."""
    env = os.environ.get("HYMENOPTERA_DIR")
    if env:
        path = Path(env).resolve()
        if not (path / "train").is_dir():
            pytest.fail(f"HYMENOPTERA_DIR={env} is set but {path}/train does not exist")
        return path
    if not (DEFAULT_HYMENOPTERA / "train").is_dir():
        pytest.skip(
            f"real data set not found at {DEFAULT_HYMENOPTERA}; set HYMENOPTERA_DIR to run these"
        )
    return DEFAULT_HYMENOPTERA


@pytest.fixture(scope="session")
def real_store(hymenoptera_dir: Path, tmp_path_factory) -> Path:
    """Features of the real set (random-init resnet18), extracted once per session."""
    from pipeline.common.config import DataConfig, ExtractConfig
    from pipeline.extraction.loop import extract_images

    out = tmp_path_factory.mktemp("real-features") / "hymenoptera-resnet18.h5"
    extract_images(
        DataConfig(dir=str(hymenoptera_dir)), ExtractConfig(weights="none", out=str(out))
    )
    return out


@pytest.fixture(scope="session")
def image_folder():
    """The :func:`make_image_folder` factory, for tests that build their own variants."""
    return make_image_folder


@pytest.fixture
def truncated_jpeg():
    """The :func:`add_truncated_jpeg` factory."""
    return add_truncated_jpeg


def write_synthetic_store(
    path: Path,
    *,
    n_train: int = 48,
    n_val: int = 32,
    dim: int = 16,
    n_classes: int = 2,
    separation: float = 3.0,
    seed: int = 0,
    class_names=None,
) -> Path:
    """A feature store of Gaussian blobs, one per class, in the stage-one format."""
    from pipeline.store import hdf5

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * separation

    def split(name: str, n: int) -> hdf5.SplitArrays:
        labels = np.arange(n) % n_classes
        feats = centres[labels] + rng.standard_normal((n, dim))
        return hdf5.SplitArrays(
            feats.astype(np.float32), labels, [f"{name}/{i}.jpg" for i in range(n)]
        )

    hdf5.write(
        path,
        {"train": split("train", n_train), "val": split("val", n_val)},
        class_names=class_names or [f"c{i}" for i in range(n_classes)],
        source="synthetic",
        backbone="none",
        weights="none",
        weights_sha256="",
        transform="none",
        dataset_fingerprint=f"blobs-{seed}",
    )
    return path


@pytest.fixture
def synthetic_store():
    """The :func:`write_synthetic_store` factory."""
    return write_synthetic_store


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    """A quantum head trained for 3 epochs on ``tiny_store``: its run folder (do not modify)."""
    from pipeline.common.config import Params, TrainConfig
    from pipeline.training.run import train_head

    out = tmp_path_factory.mktemp("tiny-run") / "head"
    train_head(Params(train=TrainConfig(features=str(tiny_store), out_dir=str(out), epochs=3)))
    return out


def mount_tmpfs(path: Path, options: str) -> None:
    """Mount a tmpfs with ``options`` on ``path``, or skip the test where the host cannot."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; this test runs only where it can")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"this host does not let the tests mount a tmpfs: {proc.stderr.decode()}")


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 8 KiB: two pages, full after two small files."""
    folder = tmp_path / "small"
    mount_tmpfs(folder, "size=8k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def read_only(tmp_path):
    """A folder no one can write into: chmod 555, or a read-only tmpfs for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount_tmpfs(folder, "ro,size=64k")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)
