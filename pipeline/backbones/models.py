"""Frozen torchvision backbones: a classifier whose last layer is ``Identity``, with the weights
enum's own ``transforms()``; :func:`rebuild` remakes and checks one from a store's record.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from pipeline.backbones import weights as weights_names
from pipeline.common.devices import resolve_device
from pipeline.common.errors import WeightsError
from pipeline.common.files import file_sha256
from pipeline.store.hdf5 import RANDOM_INIT_WARNING

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


def _check_weights_name(weights: str, backbone: str) -> None:
    enum = torchvision.models.get_model_weights(backbone)
    if weights not in enum.__members__:
        raise WeightsError(
            f"extract.weights: {weights!r} is not a weights name of {backbone} "
            f"({', '.join(m for m in enum.__members__ if m != 'DEFAULT')}), not 'none', and not "
            "an existing state-dict file"
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


def _load_state(backbone: str, weights: str, kind: str) -> tuple[dict | None, str | None]:
    """The state dict of ``weights`` and its file's sha256; (None, None) for a random init."""
    if kind == "torchvision":
        _check_weights_name(weights, backbone)
        state, sha, _ = _download_torchvision_weights(backbone, weights)
        return state, sha
    if kind == "none":
        return None, None
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise WeightsError(f"extract.weights: cannot read state dict {weights!r}: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsError(
            f"extract.weights: {weights!r} holds a {type(state).__name__}; expected a "
            "state dict (torch.save(model.state_dict(), path))"
        )
    return state, file_sha256(weights)


def build(
    backbone: str, weights: str, *, seed: int = 0, device: str = "auto"
) -> tuple[nn.Module, WeightsInfo]:
    """Build a frozen feature extractor: eval mode, no gradients, BatchNorm folded, on device.

    ``weights``: an enum member name, ``"none"`` (seeded random init) or a state-dict path.

    Raises:
        WeightsError: unknown backbone or weights, weights unavailable offline, or not fitting.
    """
    bspec = spec(backbone)
    kind = weights_names.kind(weights)
    state, sha = _load_state(backbone, weights, kind)
    enum = torchvision.models.get_model_weights(backbone)
    transform = (enum[weights] if kind == "torchvision" else enum.DEFAULT).transforms()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torchvision.models.get_model(backbone, weights=None)
    setattr(model, bspec.head, nn.Identity())
    if state is None:
        log.warning("%s (seed %d)", RANDOM_INIT_WARNING, seed)
        sha = state_dict_sha256(model.state_dict())
    else:
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
        from torch.fx.experimental.optimization import fuse  # torch.fx: only when building

        model = fuse(model)
    model = model.to(resolve_device(device), memory_format=torch.channels_last)
    return model, WeightsInfo(weights, kind, sha, transform, seed if kind == "none" else None)


def _checked_weights(recorded: Mapping[str, Any], weights: str | None) -> tuple[str, int]:
    """What to pass to :func:`build` for a recorded backbone: (weights, seed), files checked."""
    extra = recorded.get("extra") or {}
    kind, name = extra.get("weights_kind"), recorded.get("weights")
    sha = recorded.get("weights_sha256")
    need = weights_names.required(recorded)
    if weights is not None:
        if kind == "none":
            raise WeightsError(
                f"--weights {weights}: the head needs {need}, rebuilt from the seed; it takes "
                "no weights file"
            )
        if not Path(weights).is_file():
            raise WeightsError(f"--weights {weights}: no such file; the head needs {need}")
        got = file_sha256(weights)
        if got != sha:
            raise WeightsError(f"--weights {weights} has sha256 {got}; the head needs {need}")
        return weights, 0
    if kind == "none":
        seed = extra.get("weights_seed")
        if not isinstance(seed, int):
            raise WeightsError(f"the checkpoint records no random-init seed; it needs {need}")
        return "none", seed
    if kind == "file":
        if not Path(name).is_file():
            raise WeightsError(
                f"the head needs {need}, which is not there any more; pass --weights with the "
                "path of that file"
            )
        got = file_sha256(name)
        if got != sha:
            raise WeightsError(
                f"{name} has changed (sha256 {got}); the head needs {need}. Pass --weights "
                "with the path of the original file"
            )
        return name, 0
    if kind == "torchvision":
        return name, 0
    raise WeightsError(f"the checkpoint records an unknown weights kind {kind!r}")


def rebuild(
    recorded: Mapping[str, Any], *, weights: str | None = None, device: str = "auto"
) -> tuple[nn.Module, WeightsInfo]:
    """Rebuild the backbone and preprocessing ``recorded`` with a feature store, checked.

    ``weights``: a state-dict file to use instead; it must have the recorded sha-256.

    Raises:
        WeightsError: not an image backbone, weights unavailable or different, or another
            preprocessing; the message names the weights the head needs.
    """
    backbone = recorded.get("backbone")
    if backbone not in BACKBONES:
        raise WeightsError(
            f"the head was trained on features of backbone {backbone!r} (source "
            f"{recorded.get('source')!r}), not on image features of one of "
            f"{', '.join(BACKBONES)}: it cannot classify image files"
        )
    kind = (recorded.get("extra") or {}).get("weights_kind")
    need = weights_names.required(recorded)
    name, seed = _checked_weights(recorded, weights)
    try:
        model, info = build(backbone, name, seed=seed, device=device)
    except WeightsError as exc:
        if kind != "torchvision" or weights is not None:
            raise
        raise WeightsError(
            f"{exc}. The head needs {need}; --weights FILE takes a copy of that file"
        ) from exc
    if info.sha256 != recorded.get("weights_sha256"):
        hint = " (torch's random initialisation changed: another torch version?)"
        raise WeightsError(
            f"the available {backbone} weights have sha256 {info.sha256}"
            f"{hint if kind == 'none' else ''}; the head needs {need}"
        )
    enum = torchvision.models.get_model_weights(backbone)
    recorded_name = recorded.get("weights")
    transform = (enum[recorded_name] if kind == "torchvision" else enum.DEFAULT).transforms()
    if repr(transform) != recorded.get("transform"):
        raise WeightsError(
            f"the preprocessing of this torchvision ({_flat(repr(transform))}) differs from the "
            f"one the head's features were made with ({_flat(recorded.get('transform'))}); "
            "re-extract the features and retrain the head with this torchvision"
        )
    log.info("backbone: %s; sha256 matches the head's features", need)
    return model, WeightsInfo(name, info.kind, info.sha256, transform, info.seed)


def _flat(text: object) -> str:
    return " ".join(str(text).split())
