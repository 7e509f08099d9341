"""Frozen torchvision backbones: the table, their weights, their transforms, and batched inference.

A backbone is a torchvision classifier whose last layer is replaced by ``Identity``, so it
returns its penultimate features. Adding another one is one entry in :data:`BACKBONES`.

Weights (``extract.weights``):

* a member name of the model's torchvision weights enum (``IMAGENET1K_V1``): torchvision
  downloads the file into ``$TORCH_HOME/hub/checkpoints`` on first use and checks its hash;
* ``none``: seeded random initialisation, for tests and timing only (features mean nothing);
* a path to a state-dict file (``torch.save(model.state_dict(), path)``).

Preprocessing is always the weights enum's own ``transforms()`` (for ``none`` and files: the
enum's default weights), i.e. Resize 256, CenterCrop 224 and ImageNet normalisation for ResNets.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from pipeline.devices import resolve_device
from pipeline.errors import BadImageError, WeightsError
from pipeline.images import file_sha256, load_rgb

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class BackboneSpec:
    """How to turn a torchvision classifier into a feature extractor."""

    head: str  # the attribute holding the final classifier, replaced by Identity
    feature_dim: int  # width of the penultimate features
    fuse_batchnorm: bool = True  # fold BatchNorm into the preceding convolutions (torch.fx)


#: Name (as in ``torchvision.models.get_model``) -> spec.
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec(head="fc", feature_dim=512),
    "resnet34": BackboneSpec(head="fc", feature_dim=512),
    "resnet50": BackboneSpec(head="fc", feature_dim=2048),
}

RANDOM_INIT_WARNING = (
    "RANDOM-INIT BACKBONE (extract.weights = none): the features carry no ImageNet knowledge; "
    "use them for tests and timing only, never for accuracy figures"
)


def spec(name: str) -> BackboneSpec:
    """The table entry of backbone ``name``; the error lists the known ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise WeightsError(
            f"extract.backbone: unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}"
        ) from None


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and values, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsInfo:
    """Resolved weights: what to record in the feature store and how to preprocess."""

    name: str  # enum member name, "none", or the path as given
    kind: str  # "torchvision", "none" or "file"
    sha256: str  # of the weights file; for "none" of the state dict
    transform: Callable[[Any], torch.Tensor]
    seed: int | None = None

    @property
    def transform_description(self) -> str:
        return repr(self.transform)


def weights_kind(weights: str, backbone: str) -> str:
    """Classify ``extract.weights`` without importing anything heavy beyond torchvision."""
    if weights == "none":
        return "none"
    enum = torchvision.models.get_model_weights(backbone)
    if weights in enum.__members__:
        return "torchvision"
    if Path(weights).is_file():
        return "file"
    raise WeightsError(
        f"extract.weights: {weights!r} is not a weights name of {backbone} "
        f"({', '.join(m for m in enum.__members__ if m != 'DEFAULT')}), not 'none', and not an "
        "existing state-dict file"
    )


def _download_torchvision_weights(backbone: str, weights: str) -> tuple[dict, str, Path]:
    enum = torchvision.models.get_model_weights(backbone)
    member = enum[weights]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
    try:
        state = member.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsError(
            f"cannot get the {backbone} {weights} weights ({exc}). torchvision downloads them "
            f"from {member.url} to {cached} on first use. Offline: copy that file "
            f"({cached.name}) into {cached.parent} (set TORCH_HOME to move the cache), or set "
            "extract.weights to the path of a state-dict file, or to 'none' (random init, for "
            "tests and timing only)"
        ) from exc
    return state, file_sha256(cached), cached


def build(
    backbone: str, weights: str, *, seed: int = 0, device: str = "auto"
) -> tuple[nn.Module, WeightsInfo]:
    """Build a frozen feature extractor: eval mode, no gradients, BatchNorm folded, on device.

    Args:
        backbone: a key of :data:`BACKBONES`.
        weights: an enum member name, ``"none"`` or a state-dict path (see module docstring).
        seed: seeds the random initialisation when ``weights == "none"``.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        ``(model, info)``: the model maps (B, 3, H, W) float images to (B, feature_dim).

    Raises:
        WeightsError: unknown backbone or weights, weights unavailable offline, or a state
            dict that does not fit the model.
    """
    bspec = spec(backbone)
    kind = weights_kind(weights, backbone)
    enum = torchvision.models.get_model_weights(backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.get_model(backbone, weights=None)
    setattr(model, bspec.head, nn.Identity())
    if kind == "torchvision":
        state, sha, _ = _download_torchvision_weights(backbone, weights)
        transform = enum[weights].transforms()
        info_seed = None
    elif kind == "file":
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a bad file
            raise WeightsError(
                f"extract.weights: cannot read state dict {weights!r}: {exc}"
            ) from exc
        if not isinstance(state, dict):
            raise WeightsError(
                f"extract.weights: {weights!r} holds a {type(state).__name__}; expected a "
                "state dict (torch.save(model.state_dict(), path))"
            )
        sha = file_sha256(weights)
        transform = enum.DEFAULT.transforms()
        info_seed = None
    else:
        log.warning("%s (seed %d)", RANDOM_INIT_WARNING, seed)
        state = None
        sha = state_dict_sha256(model.state_dict())
        transform = enum.DEFAULT.transforms()
        info_seed = seed
    if state is not None:
        head_prefix = bspec.head + "."
        state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(
                f"extract.weights: {weights!r} does not fit {backbone}: {exc}"
            ) from exc
    model.eval().requires_grad_(False)
    if bspec.fuse_batchnorm:
        from torch.fx.experimental.optimization import fuse

        model = fuse(model)
    dev = resolve_device(device)
    model = model.to(dev, memory_format=torch.channels_last)
    return model, WeightsInfo(weights, kind, sha, transform, info_seed)


def _decode_at_low_priority(worker_id: int) -> None:
    """Decoding workers yield the CPU to the forward pass and fill the gaps it leaves.

    On a machine with few cores the forward pass already uses every core; decoding at the
    lowest priority overlaps with it instead of preempting its threads (measured in
    benchmarks/extract.py).
    """
    os.nice(19)


class _ImageFiles(torch.utils.data.Dataset):
    """Decode + transform, failures returned as data so the caller decides what they mean."""

    def __init__(self, root: Path, paths: Sequence[str], transform: Callable):
        self.root, self.paths, self.transform = root, list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            image = load_rgb(self.root / self.paths[i])
        except BadImageError as exc:
            return i, None, exc.reason
        return i, self.transform(image), None


def _collate(items):
    ok = [(i, x) for i, x, _ in items if x is not None]
    failed = [(i, err) for i, x, err in items if x is None]
    batch = None
    if ok:  # channels-last here, in the decoding worker, not in the forward pass's process
        batch = torch.stack([x for _, x in ok]).contiguous(memory_format=torch.channels_last)
    return [i for i, _ in ok], batch, failed


@dataclass(frozen=True)
class BatchResult:
    indices: list[int]  # positions in the input list that decoded
    features: np.ndarray  # (len(indices), feature_dim) float32
    failed: list[tuple[int, str]]  # (position, reason) of files that did not decode


def iter_features(
    model: nn.Module,
    transform: Callable,
    root: str | Path,
    paths: Sequence[str],
    *,
    batch_size: int = 32,
    workers: int = 1,
) -> Iterator[BatchResult]:
    """Run ``model`` over image files in order, decoding in ``workers`` background processes.

    Yields one :class:`BatchResult` per batch; undecodable files are reported, not raised.
    """
    yield from iter_dataset_features(
        model, _ImageFiles(Path(root), paths, transform), batch_size=batch_size, workers=workers
    )


def iter_dataset_features(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int = 32,
    workers: int = 1,
) -> Iterator[BatchResult]:
    """Run ``model`` over a dataset whose item ``i`` is ``(i, transformed image or None, error)``.

    The loop of :func:`iter_features`, for images that are not files (e.g. CIFAR-10's arrays,
    :mod:`pipeline.cifar10`): ``workers`` background processes at low priority.
    """
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=_decode_at_low_priority,
    )
    with torch.inference_mode():
        for indices, batch, failed in loader:
            if batch is None:
                feats = np.zeros((0, 0), dtype=np.float32)
            else:
                x = batch.to(device, non_blocking=True).contiguous(
                    memory_format=torch.channels_last
                )  # (B, 3, 224, 224)
                feats = model(x).float().cpu().numpy()  # (B, feature_dim)
            yield BatchResult(indices, feats, failed)
