"""``params.yaml`` (one block per stage) as frozen dataclasses, with ``--set`` overrides.

``--set`` values are parsed as YAML, as with ``dvc exp run -S``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from pipeline.common import templates
from pipeline.common.errors import ConfigError
from pipeline.common.sections import (
    DataConfig,
    EvaluateConfig,
    ExtractConfig,
    QCConfig,
    QQConfig,
    ReportConfig,
    SpiralConfig,
)
from pipeline.common.sections import check as _check

DEFAULT_PARAMS = "params.yaml"


CIRCUITS = ("paper", "basic_entangler", "strongly_entangling", "simplified_two_design")
EMBEDDINGS = ("paper", "angle_x", "angle_y", "angle_z", "iqp")
#: The paper's circuit: keys at these values are left out of checkpoints and run ids.
CIRCUIT_DEFAULTS = {"circuit": "paper", "embedding": "paper", "reupload": False}


def is_circuit_file(circuit: str) -> bool:
    """Whether ``train.circuit`` names a file (``PATH.py:NAME``) rather than a built-in."""
    return circuit not in CIRCUITS


@dataclass(frozen=True)
class TrainConfig:
    """Block ``train``: the head trained on cached features; defaults are the paper's."""

    features: str | None = None  # null: use extract.out
    head: Literal["quantum", "classical", "linear", "cv"] = "quantum"
    n_qubits: int = 4
    q_depth: int = 6
    q_delta: float = 0.01
    backend: str = "torch"
    diff_method: str = "best"
    shots: int | None = None
    dtype: Literal["float64", "float32"] = "float64"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lr: float = 0.0004
    batch_size: int = 4
    epochs: int = 30
    step_size: int = 10
    gamma: float = 0.1
    seed: int = 42
    out_dir: str = "runs/head"
    init_std: float | None = None  # null: each layer's own init
    loss_reduction: Literal["mean", "sum"] = "mean"
    optimizer: Literal["adam", "pennylane_adam"] = "adam"
    checkpoint: Literal["best", "last"] = "best"
    threads: int = 1
    shuffle: bool = True  # false: stored order (the paper's QC/QQ notebooks)
    cv_layers: int = 3
    circuit: str = "paper"  # CIRCUITS or PATH.py:NAME
    embedding: str = "paper"
    reupload: bool = False  # the embedding again before every layer

    def __post_init__(self) -> None:
        self._check_circuit()
        _check(self.n_qubits >= 1, "train.n_qubits", "an integer >= 1", self.n_qubits)
        _check(self.threads >= 1, "train.threads", "an integer >= 1", self.threads)
        _check(self.cv_layers >= 1, "train.cv_layers", "an integer >= 1", self.cv_layers)
        _check(self.q_depth >= 0, "train.q_depth", "an integer >= 0", self.q_depth)
        _check(self.q_delta >= 0, "train.q_delta", "a number >= 0", self.q_delta)
        _check(self.lr > 0, "train.lr", "a number > 0", self.lr)
        _check(self.batch_size >= 1, "train.batch_size", "an integer >= 1", self.batch_size)
        _check(self.epochs >= 1, "train.epochs", "an integer >= 1", self.epochs)
        _check(self.step_size >= 1, "train.step_size", "an integer >= 1", self.step_size)
        _check(0 < self.gamma <= 1, "train.gamma", "a number in (0, 1]", self.gamma)
        _check(
            self.shots is None or self.shots >= 1,
            "train.shots",
            "null or an integer >= 1",
            self.shots,
        )
        _check(bool(self.backend), "train.backend", "'torch' or a PennyLane device name", "")
        _check(
            self.init_std is None or self.init_std >= 0,
            "train.init_std",
            "null or a number >= 0",
            self.init_std,
        )

    def _check_circuit(self) -> None:
        builtins = ", ".join(CIRCUITS)
        _check(
            not is_circuit_file(self.circuit) or self.circuit.rpartition(":")[0].endswith(".py"),
            "train.circuit",
            f"a built-in ({builtins}) or PATH.py:FUNCTION",
            self.circuit,
        )
        _check(self.embedding in EMBEDDINGS, "train.embedding", ", ".join(EMBEDDINGS),
               self.embedding)  # fmt: skip
        if is_circuit_file(self.circuit):
            _check(
                self.embedding == "paper" and not self.reupload,
                "train.embedding and train.reupload",
                f"their defaults (paper, false) with a circuit file ({self.circuit}), which "
                "embeds its inputs itself",
                (self.embedding, self.reupload),
            )
        custom = {k: getattr(self, k) for k in CIRCUIT_DEFAULTS} != CIRCUIT_DEFAULTS
        _check(
            not custom or self.backend == "torch",
            "train.backend",
            "torch for a circuit other than the paper's (train.circuit, train.embedding, "
            "train.reupload)",
            self.backend,
        )


@dataclass(frozen=True)
class CompareConfig:
    """Block ``compare``: every head in ``heads`` trained with every seed in ``seeds``."""

    heads: tuple[str, ...] = ("quantum", "classical", "linear")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dir: str = "runs/compare"

    def __post_init__(self) -> None:
        known = get_args(typing.get_type_hints(TrainConfig)["head"])
        for head in self.heads:
            _check(head in known, "compare.heads", f"a list of {', '.join(known)}", self.heads)
        _check(len(self.heads) > 0, "compare.heads", "a non-empty list", self.heads)
        _check(len(self.seeds) > 0, "compare.seeds", "a non-empty list", self.seeds)
        _check(
            len(set(self.seeds)) == len(self.seeds), "compare.seeds", "distinct seeds", self.seeds
        )


@dataclass(frozen=True)
class Params:
    """All blocks of a params file; missing blocks take their defaults."""

    data: DataConfig = field(default_factory=DataConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    spiral: SpiralConfig = field(default_factory=SpiralConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    qc: QCConfig = field(default_factory=QCConfig)
    qq: QQConfig = field(default_factory=QQConfig)

    def expand(self, template: str, key: str = "path") -> str:
        """Fill ``{block.key}`` placeholders of a path; ``{{`` and ``}}`` are literal braces."""
        if "{" not in template and "}" not in template:
            return template
        blocks = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return templates.expand(template, blocks, key)

    @property
    def features_path(self) -> str:
        """The feature store stage two reads: ``train.features``, else ``extract.out``."""
        if self.train.features:
            return self.expand(self.train.features, "train.features")
        return self.expand(self.extract.out, "extract.out")

    @property
    def spiral_out(self) -> str:
        """``spiral.out``, placeholders filled in."""
        return self.expand(self.spiral.out, "spiral.out")

    @property
    def qc_out(self) -> str:
        """``qc.out``, placeholders filled in."""
        return self.expand(self.qc.out, "qc.out")

    @property
    def qq_out(self) -> str:
        """``qq.out``, placeholders filled in."""
        return self.expand(self.qq.out, "qq.out")

    @property
    def out_dir(self) -> str:
        """``train.out_dir``, placeholders filled in."""
        return self.expand(self.train.out_dir, "train.out_dir")

    @property
    def model_path(self) -> str:
        """The head ``train_head`` writes: ``<out_dir>/model.pt``."""
        return str(Path(self.out_dir) / "model.pt")


def section_types() -> dict[str, type]:
    """Block name -> its dataclass."""
    hints = typing.get_type_hints(Params)
    return {f.name: hints[f.name] for f in dataclasses.fields(Params)}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for option in get_args(tp):
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}; got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: expected {_type_name(tp)}; got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected {_type_name(tp)}; got {value!r}")
        (item,) = get_args(tp)[:1]
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, which reads "4e-4" (no dot) as a string.
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a new field type needs a branch here
        raise TypeError(f"{key}: unsupported config type {tp!r}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}; got {value!r}")


def build_section(name: str, cls: type, values: Mapping[str, Any]) -> Any:
    """Build the dataclass ``cls`` of block ``name`` from a mapping, checking keys and types."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of keys to values; got {values!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(
                f"unknown key '{name}.{key}'; valid keys of '{name}': {', '.join(valid)}"
            )
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    return cls(**kwargs)


def parse_assignment(
    text: str, *, option: str = "--set", many: bool = False
) -> tuple[str, str, Any]:
    """Split ``section.key=value`` and parse the value as YAML (``--set`` and ``--grid``).

    With ``many``, ``v1,v2,...`` is a list, each item typed as ``--set`` would type it.
    """
    example = (
        "section.key=v1,v2,... (e.g. train.seed=0,1,2)"
        if many
        else "section.key=value (e.g. train.epochs=5)"
    )
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts) or (many and not raw.strip()):
        raise ConfigError(f"{option}: expected {example}; got {text!r}")
    try:
        if many:
            value = yaml.safe_load(f"[{raw}]")
        else:
            value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{option} {path.strip()}: cannot parse value {raw!r} as YAML: {exc}"
        ) from exc
    return parts[0], parts[1], value


def typed_value(section: str, key: str, value: Any) -> Any:
    """``value`` typed and checked as key ``key`` of block ``section``."""
    types_ = section_types()
    if section not in types_:
        raise ConfigError(f"unknown section {section!r}; valid sections: {', '.join(types_)}")
    return getattr(build_section(section, types_[section], {key: value}), key)


def load_params(path: str | Path = DEFAULT_PARAMS, overrides: Iterable[str] = ()) -> Params:
    """Load a params file, apply ``section.key=value`` overrides, check every key and type.

    Raises:
        ConfigError: the file is missing or not YAML, or a section, key or value is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"params file {str(path)!r} not found") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"params file {str(path)!r}: expected a mapping of sections")
    raw = {name: dict(block or {}) for name, block in raw.items()}
    for text_override in overrides:
        section, key, value = parse_assignment(text_override)
        raw.setdefault(section, {})[key] = value
    types_ = section_types()
    sections = {}
    for name, block in raw.items():
        if name not in types_:
            raise ConfigError(
                f"unknown section '{name}' in {str(path)!r}; valid sections: {', '.join(types_)}"
            )
        sections[name] = build_section(name, types_[name], block)
    return Params(**sections)


def add_params_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--params FILE`` and repeatable ``--set section.key=value``."""
    parser.add_argument(
        "--params",
        default=DEFAULT_PARAMS,
        metavar="FILE",
        help=f"params file (default: {DEFAULT_PARAMS})",
    )
    parser.add_argument(
        "--set",
        "-S",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one param (repeatable; same spelling as `dvc exp run -S`)",
    )
    return parser


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain dicts, lists and scalars (for JSON, YAML and checkpoints)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def value_text(value: Any) -> str:
    """A setting's value as text that a ``--set`` reads back: strings as they are, everything
    else as JSON (None -> null, 0.1 -> 0.1, [1, 2] -> [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def train_dict(config: TrainConfig) -> dict[str, Any]:
    """:func:`to_dict` without the circuit keys at their defaults, as checkpoints record it."""
    out = to_dict(config)
    for key, default in CIRCUIT_DEFAULTS.items():
        if out[key] == default:
            del out[key]
    return out
