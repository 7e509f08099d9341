"""A Griffe extension that lets mkdocstrings render the package's docstrings as written.

The docstrings follow PennyLane's templates: ``>>>`` examples under ``Example:`` and
parameters described together (``n_qubits, q_depth: ...``). Google-style parsing would read
the examples as Markdown (``x[0][:2]`` as a link) and the joint names as one unknown
parameter, so before parsing, each ``>>>`` session is fenced as ``pycon`` and each joint
entry of an ``Args:`` section is repeated once per name. The source files are not changed.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_SECTION = re.compile(r"^(\s*)(\w[\w ]*):\s*$")
_ARGS = {"Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments"}
_JOINT = re.compile(r"^(\s+)(\w+(?:,\s*\w+)+)(\s*(?:\([^)]*\))?:.*)$")
_ROLE = re.compile(r":(?:mod|func|class|meth|data|attr|exc):`~?([\w.]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def fence_examples(lines: list[str]) -> list[str]:
    """Fence every run of ``>>>`` lines and their output (up to a blank line) as ``pycon``."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        pad = " " * _indent(lines[i])
        if out and out[-1].strip() and not _SECTION.match(out[-1]):
            out.append("")  # a fence needs a blank line before it, but not after a header
        out.append(f"{pad}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{pad}```")
    return out


def split_joint_args(lines: list[str]) -> list[str]:
    """Repeat an ``a, b: text`` entry of an ``Args:`` section once per name."""
    out: list[str] = []
    section, i = None, 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if header:
            section = (header.group(2), _indent(line))
        joint = _JOINT.match(line) if section and section[0] in _ARGS else None
        if not joint or _indent(line) <= section[1]:
            out.append(line)
            i += 1
            continue
        block = [line]
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > _indent(line)):
            block.append(lines[i])
            i += 1
        for name in re.split(r",\s*", joint.group(2)):
            out.append(f"{joint.group(1)}{name}{joint.group(3)}")
            out.extend(block[1:])
    return out


def cross_references(text: str) -> str:
    """Sphinx roles as mkdocstrings reads them: ``:func:`pipeline.x.f``` becomes a link to
    ``pipeline.x.f`` (a name that is not documented fails the strict build); a relative or
    outside name becomes code."""

    def link(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("pipeline."):
            return f"[`{name}`][{name}]"
        return f"`{name}`"

    return _ROLE.sub(link, text)


class ReadableDocstrings(Extension):
    """Rewrite each docstring as the module docstring says, before it is parsed."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        lines = obj.docstring.value.splitlines()
        text = "\n".join(split_joint_args(fence_examples(lines)))
        obj.docstring.value = cross_references(text)
