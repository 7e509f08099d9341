"""The shape of the package: thin commands on top, no import circle, short functions, and
dvc.yaml deps that cover every module a stage's command can load."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
MAX_FUNCTION_LINES = 80
COMMANDS = {
    "compare",
    "datasets",
    "evaluate",
    "extract",
    "features",
    "fetch_data",
    "predict",
    "report",
    "spiral_plot",
    "sweep",
    "train_head",
}
#: The sub-packages from the bottom up: each imports only those before it (and itself).
LAYERS = (
    "common",
    "store",
    "simulators",
    "circuits",
    "sources",
    "backbones",
    "extraction",
    "heads",
    "training",
    "reports",
    "inference",
)
SUBPACKAGES = set(LAYERS)


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path], root: Path = REPO) -> set[str]:
    """Every pipeline module ``path`` imports, at module level or inside functions.

    ``from pipeline.x import y`` counts as ``pipeline.x.y`` when that is a module, else as
    ``pipeline.x``.
    """
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ first
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += graph.get(module, ())
    return seen


def test_the_folder_listing_reads_as_the_architecture():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    dirs = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == COMMANDS
    assert dirs == SUBPACKAGES
    for name in COMMANDS:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        assert "main" in functions and not classes, name
        assert ast.get_docstring(tree), name


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_sub_packages_import_only_the_layers_below_them():
    def layer(module: str) -> int | None:
        part = module.split(".")[1] if module.count(".") else None
        return LAYERS.index(part) if part in LAYERS else None

    graph = import_graph()
    upward = [
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if layer(source) is not None and layer(target) is not None and layer(target) > layer(source)
    ]
    assert not upward, "imports of a higher layer: " + ", ".join(upward)
    commands = {f"pipeline.{c}" for c in COMMANDS}
    into = [f"{s} -> {t}" for s, ts in graph.items() for t in ts if t in commands]
    assert not into, "machinery importing a command: " + ", ".join(into)


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    code = "from . import b\n\ndef f():\n    from pipeline.training import loop\n"
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "a.py").write_text(code)
    modules = {m: Path("x") for m in ("pipeline.b", "pipeline.training.loop", "pipeline.a")}
    found = _imports(tmp_path / "pipeline" / "a.py", modules, tmp_path)
    assert found == {"pipeline.b", "pipeline.training.loop"}


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines})")
    assert not long, "functions over 80 lines: " + ", ".join(long)


def _stage_commands() -> dict[str, tuple[str, list[str]]]:
    """stage -> (the pipeline command it runs, its deps that are paths in pipeline/)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    result = {}
    for name, stage in stages.items():
        words = stage["cmd"].split()
        command = words[words.index("-m") + 1]
        deps = [d for d in stage.get("deps", []) if str(d).startswith("pipeline")]
        result[name] = (command, deps)
    return result


@pytest.mark.parametrize("stage", sorted(_stage_commands()))
def test_dvc_deps_cover_every_module_the_stage_can_load(stage):
    command, deps = _stage_commands()[stage]
    loaded = _closure(import_graph(), command)
    files = {_modules()[m].relative_to(REPO).as_posix() for m in loaded}
    uncovered = sorted(
        f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    )
    assert not uncovered, f"dvc.yaml stage {stage!r} ({command}) lacks deps for {uncovered}"
    missing = [d for d in deps if not (REPO / d).exists()]
    assert not missing, f"dvc.yaml stage {stage!r} lists deps that do not exist: {missing}"


#: Stage two reads feature stores and nothing of stage one.
STAGE_TWO = ("pipeline.train_head", "pipeline.sweep", "pipeline.compare")
STAGE_TWO_PACKAGES = ("common", "store", "simulators", "circuits", "heads", "training")


@pytest.mark.parametrize("command", STAGE_TWO)
def test_stage_two_imports_nothing_of_stage_one(command):
    loaded = _closure(import_graph(), command)
    allowed = {"pipeline", command} | {f"pipeline.{p}" for p in STAGE_TWO_PACKAGES}
    outside = sorted(m for m in loaded if ".".join(m.split(".")[:2]) not in allowed)
    assert not outside, f"{command} loads {outside}"
    for name, (stage_command, deps) in _stage_commands().items():
        if stage_command == command:
            packages = {d.split("/")[1] for d in deps if d.count("/") == 1 and "." not in d}
            assert packages <= set(STAGE_TWO_PACKAGES), f"dvc.yaml stage {name}: {packages}"


def test_the_deps_check_runs_the_command_for_real():
    """The static closure of train_head holds every pipeline module it imports when it runs."""
    import subprocess
    import sys

    code = (
        "import sys; from pipeline import train_head; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('pipeline')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(out) <= _closure(import_graph(), "pipeline.train_head")
