"""The documentation's Python API example runs as written (on a small store and head)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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
