"""The documentation: its Python example runs, its commands name real commands, params and
keys, the README is short and its links resolve, and the API reference covers the package."""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs(readme, tiny_run, tiny_store, tmp_path, monkeypatch, capsys):
    code = readme("## Example", "python", page="docs/api.md")
    shutil.copytree(tiny_run, tmp_path / "runs" / "head")
    (tmp_path / "features").mkdir()
    shutil.copy(tiny_store, tmp_path / "features" / "hymenoptera-resnet18.h5")
    monkeypatch.chdir(tmp_path)  # the example's paths are the pipeline's defaults
    exec(compile(code, "docs/api.md (Example)", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\['ants', 'bees'\] val accuracy [01]\.\d{3}", out[0])
    assert out[1].startswith("val/ants/g_rgb.png -> ")
    assert out[2] == "torch.Size([8, 2])"


def _anchors(page: Path) -> set[str]:
    """The heading ids of a Markdown page as MkDocs makes them (toc's slugify, or { #id })."""
    from markdown.extensions.toc import slugify  # the dev extras' Markdown, as MkDocs uses it

    ids = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"#+ (.*?)(?: \{ #([\w-]+) \})?", line):
            ids.add(heading[2] or slugify(heading[1], "-"))
    return ids


def test_the_readme_is_short_and_its_links_resolve():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#([\w-]+))?\)", text)
    local = [(path, anchor) for path, anchor in links if "://" not in path]
    assert local, "the README links to the documentation"
    for path, anchor in local:
        assert (REPO / path).exists(), path
        if anchor:
            assert anchor in _anchors(REPO / path), f"{path}#{anchor}"


def test_the_api_reference_has_a_page_for_every_sub_package_and_command():
    package = REPO / "pipeline"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    pages = {p.stem for p in (REPO / "docs" / "reference").glob("*.md")} - {"commands"}
    assert pages == subpackages
    for name in subpackages:
        text = (REPO / "docs" / "reference" / f"{name}.md").read_text(encoding="utf-8")
        assert f"::: pipeline.{name}\n" in text, name
    commands = (REPO / "docs" / "reference" / "commands.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: pipeline\.(\w+)$", commands, re.MULTILINE))
    assert documented == {p.stem for p in package.glob("*.py")} - {"__init__"}


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every command in the bash and console blocks of the README, the docs
    pages and CONTRIBUTING.md. Left out: lines of option syntax (``[--x]``, ``<name>``) and
    console examples of an error (the next line starts with ``ERROR``)."""
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for lang, block in re.findall(r"```(bash|console)\n(.*?)```", text, re.DOTALL):
            lines = block.replace("\\\n", " ").splitlines()
            for line, after in zip(lines, [*lines[1:], ""], strict=True):
                if lang == "console":
                    if not line.startswith("$ ") or after.startswith("ERROR"):
                        continue
                    line = line[2:]
                if any(mark in line for mark in ("[--", "<", "…", "...")):
                    continue
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split, lexer.commenters = True, "#"
                argv: list[str] = []
                for token in [*lexer, "&&"]:
                    if token.strip("&|;>") or not token:
                        argv.append(token)
                    elif argv:
                        found.append((page.name, argv))
                        argv = []
    return found


def test_documented_commands_name_real_commands_params_and_keys():
    from pipeline.common.config import load_params
    from pipeline.common.errors import ConfigError
    from pipeline.training.grid import parse_grid

    commands = {p.stem for p in (REPO / "pipeline").glob("*.py")} - {"__init__"}
    checked = 0
    for page, argv in _documented_commands():
        if argv[:2] == ["python", "-m"] and argv[2].startswith("pipeline."):
            assert argv[2].removeprefix("pipeline.") in commands, (page, argv)
        elif argv[:3] != ["dvc", "exp", "run"]:
            continue
        pairs = list(itertools.pairwise(argv))
        params = REPO / dict(pairs).get("--params", "params.yaml")
        assert params.is_file(), (page, argv)
        try:
            load_params(params, [v for k, v in pairs if k in ("--set", "-S")])  # every key
            if grids := [v for k, v in pairs if k == "--grid"]:
                parse_grid(grids)  # the sweep's own parser: values typed, tied keys checked
        except ConfigError as exc:
            pytest.fail(f"{page}: {shlex.join(argv)}: {exc}")
        checked += 1
    assert checked > 40


def _top_level_names(path: Path) -> set[str]:
    """The names a module defines or imports at its top level."""
    import ast

    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _resolves(dotted: str) -> bool:
    """``pipeline.a.b.name``: a module or package, or a name defined at a module's top level."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:i])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.is_file():
            return i == len(parts) or parts[i] in _top_level_names(module)
    return False


def test_every_dotted_pipeline_name_in_the_code_and_the_docs_exists():
    files = [
        *sorted((REPO / "pipeline").rglob("*.py")),
        *sorted((REPO / "benchmarks").glob("*.py")),
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
    ]
    stale = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"(?<![\w.])pipeline(?:\.[a-zA-Z_]\w*)+", text):
            if not re.search(r"\.[A-Z]$", match[0]) and not _resolves(match[0]):
                stale.add(f"{path.relative_to(REPO)}: {match[0]}")
    assert not stale, sorted(stale)
