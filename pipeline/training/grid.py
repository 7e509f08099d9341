"""A sweep's grid: ``--grid`` values parsed, every combination checked and given a run id,
and the runs grouped into stacks.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.common.config import (
    Params,
    TrainConfig,
    build_section,
    parse_assignment,
    section_types,
    to_dict,
    train_dict,
    typed_value,
    value_text,
)
from pipeline.common.errors import ConfigError
from pipeline.common.files import file_sha256, json_sha256
from pipeline.heads import kinds
from pipeline.store.hdf5 import read_meta
from pipeline.training.data import features_for

#: ``train`` keys that are not settings of a run (the sweep writes no per-run folders).
NOT_SWEPT = ("out_dir",)


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``--grid`` options into ``{"block.key": [v1, v2, ...]}``.

    ``block.key=v1,v2,...`` gives one key's values; ``block.a,block.b=[a1,b1],[a2,b2],...``
    ties keys together, one list per combination (``{"block.a,block.b": [(a1, b1), ...]}``).
    Values are typed and checked as ``--set`` would (one YAML flow sequence). Keys are
    ``train`` settings, or other blocks' keys that select the features a run reads (see
    :func:`expand`).

    Raises:
        ConfigError: bad spelling, an unknown or repeated key, or a bad or repeated value.
    """
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        path, sep, raw = spec.partition("=")
        parsed = [_key(f"{key}={raw}") for key in path.split(",")] if sep else [_key(spec)]
        names, items = [name for name, _ in parsed], parsed[0][1]
        group = ",".join(names)
        for name in names:
            if name in keys(grid) or names.count(name) > 1:
                raise ConfigError(f"--grid {name}: given twice; list all its values in one --grid")
        if len(names) == 1:
            values = [_typed(group, item) for item in items]
        else:
            values = [_tied(names, item) for item in items]
        for i, value in enumerate(values):
            if value in values[:i]:
                raise ConfigError(f"--grid {group}: value {_text(value)} is given twice")
        grid[group] = values
    if not grid:
        raise ConfigError("--grid: expected at least one --grid train.key=v1,v2,...")
    return grid


def _key(spec: str) -> tuple[str, list[Any]]:
    """The ``block.key`` of one ``--grid`` spec, checked to be a key a grid may vary, and its
    values as YAML parsed them."""
    block, name, values = parse_assignment(spec, option="--grid", many=True)
    blocks = section_types()
    train_names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_SWEPT]
    names = (
        train_names
        if block == "train"
        else [f.name for f in dataclasses.fields(blocks[block])]
        if block in blocks
        else []
    )
    if name not in names:
        raise ConfigError(
            f"--grid {block}.{name}: expected a train setting ("
            f"{', '.join('train.' + n for n in train_names)}) or a key of another block "
            f"that selects the features (e.g. spiral.turns); blocks: {', '.join(blocks)}"
        )
    return f"{block}.{name}", values


def _typed(key: str, value: Any) -> Any:
    block, name = key.split(".", 1)
    try:
        return typed_value(block, name, value)
    except ConfigError as exc:
        raise ConfigError(f"--grid {exc}") from None


def _tied(names: Sequence[str], item: Any) -> tuple[Any, ...]:
    """One combination of tied keys: a YAML list of one value per key, each typed."""
    if not isinstance(item, list) or len(item) != len(names):
        example = ",".join(names) + "=[" + ",".join(n.split(".")[1].upper() for n in names) + "]"
        raise ConfigError(
            f"--grid {','.join(names)}: expected one list of {len(names)} values (one per key) "
            f"per combination, as in {example},[...],...; got {_text(item)}"
        )
    return tuple(_typed(k, v) for k, v in zip(names, item, strict=True))


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else value_text(value)


def keys(grid: Mapping[str, Sequence[Any]]) -> list[str]:
    """The ``block.key`` names a grid varies, tied keys one by one, in grid order."""
    return [name for group in grid for name in group.split(",")]


def combinations(grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of a grid as ``{block.key: value}``, the last group varying fastest."""
    for combo in itertools.product(*grid.values()):
        settings: dict[str, Any] = {}
        for group, value in zip(grid, combo, strict=True):
            names = group.split(",")
            settings |= dict(zip(names, value if len(names) > 1 else (value,), strict=True))
        yield settings


def unread(settings: Mapping[str, Any], head: str) -> list[str]:
    """The ``train`` keys of ``settings`` that a head of kind ``head`` never reads."""
    reads = kinds.KINDS[head].reads if head in kinds.KINDS else kinds.HEAD_SETTINGS
    names = [k for k in settings if k.startswith("train.")]
    return [k for k in names if k[6:] in kinds.HEAD_SETTINGS and k[6:] not in reads]


@dataclass(frozen=True)
class Cell:
    """One run of a sweep."""

    index: int  # position among the runs (grid order: the last key varies fastest)
    run_id: str  # hash of the full train config and the features' sha256
    settings: dict[str, Any]  # grid key -> this run's value; keys its head does not read: absent
    config: TrainConfig  # the run's train block (features resolved; out_dir unused)
    features_file: str  # absolute path the worker reads
    features_sha256: str
    random_init: bool  # the features come from a random-init backbone (StoreMeta.random_init)


def _run_id(config: TrainConfig, features_sha256: str) -> str:
    settings = {k: v for k, v in train_dict(config).items() if k not in NOT_SWEPT}
    identity: dict[str, Any] = {"train": settings, "features_sha256": features_sha256}
    if kinds.circuit_file(config):
        identity["circuit_sha256"] = _circuit(config)  # an edited circuit file is a new run
    return json_sha256(identity)[:16]


def _circuit(config: TrainConfig) -> str:
    """The sha256 of a run's circuit file, compiled first so a bad one stops the sweep early."""
    from pipeline.circuits.source import circuit_program

    _, source = circuit_program(config)
    return source.sha256


def expand(params: Params, grid: Mapping[str, Sequence[Any]]) -> list[Cell]:
    """Every distinct run of the grid applied to ``params``, checked, in grid order.

    A grid key that a combination's head kind does not read (see
    :attr:`pipeline.heads.kinds.HeadKind.reads`: a classical head and ``train.circuit``) keeps
    ``params``' value, so the combinations that differ only there are one run. Each run reads
    :func:`pipeline.training.data.features_for` of its own params.

    Raises:
        ConfigError: a run is not a valid config, two combinations are the same run by a key
            outside ``train``, or a grid key is read by no run.
        FeatureStoreError: a features file is missing or not a complete store.
    """
    base = {f.name: to_dict(getattr(params, f.name)) for f in dataclasses.fields(Params)}
    digests: dict[str, tuple[str, bool]] = {}
    seen: dict[str, dict[str, Any]] = {}  # run_id -> settings
    combos: set[str] = set()  # the settings seen, as JSON
    read: set[str] = set()
    cells: list[Cell] = []
    for combo in combinations(grid):
        head = combo.get("train.head", base["train"]["head"])
        settings = {k: v for k, v in combo.items() if k not in unread(combo, head)}
        read |= settings.keys()
        text = json.dumps(settings, sort_keys=True)
        if text in combos:
            continue  # differs from an earlier combination only in keys its head ignores
        combos.add(text)
        config = _config(base, settings)
        if config.features not in digests:
            meta = read_meta(config.features)  # a clear error for a missing or incomplete file
            meta.require_whole()
            digests[config.features] = file_sha256(config.features), meta.random_init
        sha256, random_init = digests[config.features]
        run_id = _run_id(config, sha256)
        if run_id in seen:
            raise ConfigError(
                f"--grid combinations {seen[run_id]} and {settings} are the same run: a grid "
                "key outside train changes neither the head's settings nor its features"
            )
        seen[run_id] = settings
        path = str(Path(config.features).resolve())
        cells.append(Cell(len(cells), run_id, settings, config, path, sha256, random_init))
    for key in [k for k in keys(grid) if k not in read]:
        heads = sorted({c.config.head for c in cells})
        raise ConfigError(
            f"--grid {key}: no run reads it (train.head {', '.join(heads)} ignores it); "
            "drop it from the grid"
        )
    return cells


def _config(base: Mapping[str, dict], settings: Mapping[str, Any]) -> TrainConfig:
    """The train block of one combination, its features resolved and its circuit checked."""
    values = {name: dict(block) for name, block in base.items()}
    for key, value in settings.items():
        block, name = key.split(".", 1)
        values[block][name] = value
    blocks = section_types()
    try:
        cell_params = Params(
            **{name: build_section(name, blocks[name], v) for name, v in values.items()}
        )
        config = replace(cell_params.train, features=features_for(cell_params))
        if kinds.custom_circuit(config):
            from pipeline.circuits.source import circuit_program

            circuit_program(config)  # refused here, before anything trains
    except ConfigError as exc:
        raise ConfigError(f"--grid combination {dict(settings)}: {exc}") from None
    return config


def groups(cells: Sequence[Cell], parts: int = 1) -> list[list[Cell]]:
    """The cells in stacks by features file and shape, cut so ``parts`` workers all have work."""
    from pipeline.training.ensemble import group_key  # torch: only when a sweep runs

    by_key: dict[tuple, list[Cell]] = {}
    for cell in cells:
        by_key.setdefault((cell.features_file, group_key(cell.config)), []).append(cell)
    per_group = max(1, parts // max(1, len(by_key)))
    chunks = []
    for members in by_key.values():
        n = min(per_group, len(members))
        bounds = [len(members) * k // n for k in range(n + 1)]
        chunks += [members[a:b] for a, b in itertools.pairwise(bounds)]
    return chunks
