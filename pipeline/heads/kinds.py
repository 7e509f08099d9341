"""The heads ``train.head`` names: each one's class and the ``train`` settings it reads.

Imports no torch: the class is imported when a head is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.common.config import CIRCUIT_DEFAULTS, TrainConfig, is_circuit_file


def _quantum() -> type:
    from pipeline.heads.dressed import DressedQuantumNet

    return DressedQuantumNet


def _classical() -> type:
    from pipeline.heads.dressed import ClassicalDressedNet

    return ClassicalDressedNet


def _linear() -> type:
    from pipeline.heads.dressed import LinearHead

    return LinearHead


def _cv() -> type:
    from pipeline.heads.photonic import CVHead

    return CVHead


def _linear_size(cfg: TrainConfig, d: int, c: int, val: int) -> tuple[int, int]:
    return d * c + c, 0


def _dressed_size(cfg: TrainConfig, d: int, c: int, val: int) -> tuple[int, int]:
    n = cfg.n_qubits
    return d * n + n + n * c + c + n * (n + 1), 0


def _quantum_size(cfg: TrainConfig, d: int, c: int, val: int) -> tuple[int, int]:
    n, (params, _) = cfg.n_qubits, _dressed_size(cfg, d, c, val)
    return params + cfg.q_depth * n, (cfg.q_depth + 2) * 2**n * (cfg.batch_size + 3 * 2**n + val)


def _cv_size(cfg: TrainConfig, d: int, c: int, val: int) -> tuple[int, int]:
    return 6 * cfg.cv_layers, 8 * cfg.cv_layers * d * d


@dataclass(frozen=True)
class HeadKind:
    """One ``train.head``.

    Attributes:
        shape: settings that shape the head (its parameters, its circuit): the members of a
            stack share them.
        per_member: further settings it reads, which may differ within a stack.
        kets: it reads complex kets, not real features.
        load: its class (a :class:`pipeline.heads.base.Head` with ``from_config``).
        size: upper estimates of one member's parameters and simulator values, for features
            of width ``d``, ``c`` classes and ``val`` rows evaluated at once.
    """

    name: str
    shape: tuple[str, ...]
    load: Callable[[], type]
    size: Callable[[TrainConfig, int, int, int], tuple[int, int]]
    per_member: tuple[str, ...] = ()
    kets: bool = False

    @property
    def reads(self) -> tuple[str, ...]:
        """Every head-specific ``train`` setting it reads."""
        return self.shape + self.per_member


_CIRCUIT = ("backend", "diff_method", "shots", "circuit", "embedding", "reupload")
KINDS = {
    k.name: k
    for k in (
        HeadKind("quantum", ("n_qubits", "q_depth", *_CIRCUIT), _quantum, _quantum_size,
                 per_member=("q_delta",)),
        HeadKind("classical", ("n_qubits",), _classical, _dressed_size),
        HeadKind("linear", (), _linear, _linear_size),
        HeadKind("cv", ("cv_layers",), _cv, _cv_size, kets=True),
    )
}  # fmt: skip
#: The ``train`` settings some head reads and another does not.
HEAD_SETTINGS = tuple(dict.fromkeys(s for k in KINDS.values() for s in k.reads))


def kind(cfg: TrainConfig) -> HeadKind:
    """The kind of head ``cfg.head`` names."""
    try:
        return KINDS[cfg.head]
    except KeyError:
        *others, last = KINDS
        expected = f"{', '.join(others)} or {last}"
        raise ValueError(f"train.head: expected {expected}; got {cfg.head!r}") from None


def unused(cfg: TrainConfig) -> tuple[str, ...]:
    """The head-specific settings ``cfg``'s head never reads."""
    return tuple(s for s in HEAD_SETTINGS if s not in kind(cfg).reads)


def shape_key(cfg: TrainConfig) -> tuple:
    """The head and the settings that shape it: equal for heads that can share a stack."""
    return (cfg.head, tuple(getattr(cfg, s) for s in kind(cfg).shape))


def circuit_file(cfg: TrainConfig) -> bool:
    """Whether the head runs a circuit file (whose text is then part of its identity)."""
    return "circuit" in kind(cfg).reads and is_circuit_file(cfg.circuit)


def custom_circuit(cfg: TrainConfig) -> bool:
    """Whether the head runs a circuit other than the paper's (compiled from its settings)."""
    return "circuit" in kind(cfg).reads and (
        {k: getattr(cfg, k) for k in CIRCUIT_DEFAULTS} != CIRCUIT_DEFAULTS
    )


def backend(cfg: TrainConfig) -> str:
    """What simulates the head: ``train.backend`` where it reads it, else ``torch``."""
    return cfg.backend if "backend" in kind(cfg).reads else "torch"
