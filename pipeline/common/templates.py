"""Path templates: ``{block.key}`` filled with one scalar of the params, nothing more.

Unlike ``str.format``, a template cannot reach into the program's objects.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping
from typing import Any

from pipeline.common.errors import ConfigError

_FIELD = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_SCALARS = (str, int, float, bool)


def _error(key: str, template: str, why: str, blocks: Mapping[str, Any]) -> ConfigError:
    return ConfigError(
        f"{key}: cannot fill the placeholders of {template!r} ({why}); expected "
        f"{{block.key}} with a block of {', '.join(blocks)} (e.g. {{spiral.turns}}), "
        "and {{ }} for literal braces"
    )


def _value(name: str, blocks: Mapping[str, Any]) -> Any:
    block_name, field_name = name.split(".")
    if block_name not in blocks:
        raise LookupError(f"no block {block_name!r}")
    block = blocks[block_name]
    fields = {f.name for f in dataclasses.fields(block)}
    if field_name not in fields:
        raise LookupError(f"block {block_name!r} has no key {field_name!r}")
    return getattr(block, field_name)


def expand(template: str, blocks: Mapping[str, Any], key: str = "path") -> str:
    """Fill the ``{block.key}`` placeholders of ``template`` from ``blocks`` (dataclasses).

    Raises:
        ConfigError: not a plain ``{block.key}``, an unknown block or key, or a non-scalar value.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _error(key, template, str(exc), blocks) from None
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        if conversion or spec or not _FIELD.fullmatch(name):
            raise _error(
                key,
                template,
                f"placeholder {shown + '}'!r} is not a plain {{block.key}}: attribute access, "
                "indexing, conversions and format specs are not allowed",
                blocks,
            )
        try:
            value = _value(name, blocks)
        except LookupError as exc:
            raise _error(key, template, str(exc), blocks) from None
        if not isinstance(value, _SCALARS):
            raise _error(
                key,
                template,
                f"{name} is {value!r}; expected a string, number or boolean value",
                blocks,
            )
        out.append(str(value))
    return "".join(out)
