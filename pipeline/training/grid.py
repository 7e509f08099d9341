"""A sweep's grid: ``--grid`` values parsed, every combination checked and given a run id,
and the runs grouped into stacks.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
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
)
from pipeline.common.errors import ConfigError
from pipeline.common.files import file_sha256, json_sha256
from pipeline.heads import kinds
from pipeline.store.hdf5 import read_meta
from pipeline.training.data import features_for

#: ``train`` keys that are not settings of a run (the sweep writes no per-run folders).
NOT_SWEPT = ("out_dir",)


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``--grid block.key=v1,v2,...`` options into ``{"block.key": [v1, v2, ...]}``.

    Values are typed and checked as ``--set`` would (one YAML flow sequence). Keys are ``train``
    settings, or other blocks' keys that select the features a run reads (see :func:`expand`).

    Raises:
        ConfigError: bad spelling, an unknown or repeated key, or a bad or repeated value.
    """
    grid: dict[str, list[Any]] = {}
    blocks = section_types()
    train_names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_SWEPT]
    for spec in specs:
        block, name, values = parse_assignment(spec, option="--grid", many=True)
        key = f"{block}.{name}"
        names = (
            train_names
            if block == "train"
            else [f.name for f in dataclasses.fields(blocks[block])]
            if block in blocks
            else []
        )
        if name not in names:
            raise ConfigError(
                f"--grid {key}: expected a train setting ("
                f"{', '.join('train.' + n for n in train_names)}) or a key of another block "
                f"that selects the features (e.g. spiral.turns); blocks: {', '.join(blocks)}"
            )
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        typed = []
        for value in values:
            try:
                value = typed_value(block, name, value)
            except ConfigError as exc:
                raise ConfigError(f"--grid {exc}") from None
            if value in typed:
                raise ConfigError(f"--grid {key}: value {value!r} is given twice")
            typed.append(value)
        grid[key] = typed
    if not grid:
        raise ConfigError("--grid: expected at least one --grid train.key=v1,v2,...")
    return grid


@dataclass(frozen=True)
class Cell:
    """One run of a sweep."""

    index: int  # position in the grid (itertools.product order: the last key varies fastest)
    run_id: str  # hash of the full train config and the features' sha256
    settings: dict[str, Any]  # grid key -> this run's value
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
    """Every combination of the grid applied to ``params``, checked, in grid order.

    Each combination reads :func:`pipeline.training.data.features_for` of its own params.

    Raises:
        ConfigError: a combination is not a valid config, or two are the same run.
        FeatureStoreError: a features file is missing or not a complete store.
    """
    base = {f.name: to_dict(getattr(params, f.name)) for f in dataclasses.fields(Params)}
    blocks = section_types()
    digests: dict[str, str] = {}
    random_init: dict[str, bool] = {}
    seen: dict[str, dict[str, Any]] = {}
    cells = []
    for index, combo in enumerate(itertools.product(*grid.values())):
        settings = dict(zip(grid, combo, strict=True))
        values = {name: dict(block) for name, block in base.items()}
        for key, value in settings.items():
            block, name = key.split(".", 1)
            values[block][name] = value
        try:
            cell_params = Params(
                **{name: build_section(name, blocks[name], v) for name, v in values.items()}
            )
            path = features_for(cell_params)
        except ConfigError as exc:
            raise ConfigError(f"--grid combination {settings}: {exc}") from None
        config = replace(cell_params.train, features=path)
        try:
            if kinds.custom_circuit(config):
                from pipeline.circuits.source import circuit_program

                circuit_program(config)  # refused here, before anything trains
        except ConfigError as exc:
            raise ConfigError(f"--grid combination {settings}: {exc}") from None
        if path not in digests:
            meta = read_meta(path)  # a clear error for a missing or incomplete file
            meta.require_whole()
            digests[path], random_init[path] = file_sha256(path), meta.random_init
        run_id = _run_id(config, digests[path])
        if run_id in seen:
            raise ConfigError(
                f"--grid combinations {seen[run_id]} and {settings} are the same run: a grid "
                "key outside train changes neither the head's settings nor its features"
            )
        seen[run_id] = settings
        cells.append(
            Cell(
                index,
                run_id,
                settings,
                config,
                str(Path(path).resolve()),
                digests[path],
                random_init[path],
            )
        )
    return cells


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
