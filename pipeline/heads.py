"""The heads trained on cached features: quantum (the dressed circuit) and its classical baselines.

* ``quantum``: :class:`pipeline.quantum.DressedQuantumNet`, Linear(in -> n) -> tanh * pi/2 ->
  circuit -> Linear(n -> classes).
* ``classical``: the same dressed bottleneck with the circuit and its pi/2 scaling replaced by
  tanh(Linear(n -> n)), the paper's classical comparison.
* ``linear``: Linear(in -> classes), the paper's ResNet18 + linear-layer baseline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.config import TrainConfig, build_section
from pipeline.errors import PipelineError
from pipeline.quantum import DressedQuantumNet


class ClassicalDressedNet(nn.Module):
    """Linear(in -> n) -> tanh -> Linear(n -> n) -> tanh -> Linear(n -> classes).

    Example:
        >>> ClassicalDressedNet(in_features=512, n_hidden=4, n_classes=2)(torch.zeros(3, 512)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int = 512, n_hidden: int = 4, n_classes: int = 2):
        super().__init__()
        for name, value, low in (
            ("in_features", in_features, 1),
            ("n_hidden", n_hidden, 1),
            ("n_classes", n_classes, 2),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}; got {value!r}")
        self.pre_net = nn.Linear(in_features, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.post_net = nn.Linear(n_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.pre_net(x))  # (B, n_hidden)
        h = torch.tanh(self.hidden(h))  # (B, n_hidden)
        return self.post_net(h)  # (B, n_classes)


def build_head(cfg: TrainConfig, in_features: int, n_classes: int) -> nn.Module:
    """The head named by ``cfg.head``, its parameters drawn from the current torch RNG.

    Args:
        cfg: ``head``, ``n_qubits``, ``q_depth``, ``q_delta``, ``backend``, ``diff_method``,
            ``shots``, ``seed`` and ``init_std`` are read. With ``init_std`` set, every
            parameter (weights, biases and circuit angles) is drawn afresh from
            N(0, init_std), after the layers' own initialisation, in parameter order: the
            paper's spiral benchmark starts all parameters at 0.001 * N(0, 1).
        in_features: width of the cached features.
        n_classes: number of classes in the feature store.

    Returns:
        A float32 module; callers move it to their device and dtype.

    Example:
        >>> head = build_head(TrainConfig(head="classical", init_std=0.0), 2, 2)
        >>> all(bool((p == 0).all()) for p in head.parameters())
        True
    """
    model = _build(cfg, in_features, n_classes)
    if cfg.init_std is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, cfg.init_std)
    return model


def _build(cfg: TrainConfig, in_features: int, n_classes: int) -> nn.Module:
    if cfg.head == "quantum":
        return DressedQuantumNet(
            in_features=in_features,
            n_qubits=cfg.n_qubits,
            q_depth=cfg.q_depth,
            n_classes=n_classes,
            q_delta=cfg.q_delta,
            backend=cfg.backend,
            diff_method=cfg.diff_method,
            shots=cfg.shots,
            seed=cfg.seed,
        )
    if cfg.head == "classical":
        return ClassicalDressedNet(in_features, cfg.n_qubits, n_classes)
    if cfg.head == "linear":
        return nn.Linear(in_features, n_classes)
    raise ValueError(f"train.head: expected quantum, classical or linear; got {cfg.head!r}")


CHECKPOINT_VERSION = 1


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict of ``model.pt``, checked but without building the head.

    Args:
        path: a ``model.pt`` written by ``pipeline.train_head``.
        map_location: where tensors are loaded.

    Returns:
        The dict: ``format_version``, ``state_dict``, ``config``, ``class_names``,
        ``in_features``, ``best_epoch``, ``features`` (the feature store's identity).

    Raises:
        PipelineError: the file is missing or is not a checkpoint of this pipeline.

    Example:
        >>> read_checkpoint("runs/head/model.pt")["class_names"]
        ['ants', 'bees']
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model file {str(path)!r} does not exist; train a head first")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise PipelineError(f"{str(path)!r} is not a readable checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise PipelineError(
            f"{str(path)!r} is not a head checkpoint of format_version {CHECKPOINT_VERSION}"
        )
    return ckpt


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu"):
    """Rebuild a trained head from ``model.pt``.

    Returns:
        ``(model, checkpoint)``: the head in eval mode, in the dtype it was trained in, and
        the checkpoint dict (``config``, ``class_names``, ``in_features``, ``features``, ...).

    Raises:
        PipelineError: the file is missing or is not a checkpoint of this pipeline.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    cfg = build_section("train", TrainConfig, ckpt["config"])
    model = build_head(cfg, ckpt["in_features"], len(ckpt["class_names"]))
    model.to(getattr(torch, cfg.dtype)).load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
