"""The package layout reads as the pipeline: few root modules, unique names, docstrings, no import cycles.

Static checks over cirbench/ with ast; nothing is imported.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cirbench"
ROOT_LIMIT = 8  # modules at the package root, __init__ and __main__ included


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".") if _is_package(importer) else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    targets = []
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            targets.append(f"{base}.{alias.name}")
        elif base in MODULES:
            targets.append(base)
    return targets


def _imports(name: str, module_level_only: bool) -> set[str]:
    tree = ast.parse(MODULES[name].read_text())
    nodes: list[ast.AST] = list(tree.body)
    if not module_level_only:
        nodes = list(ast.walk(tree))
    else:  # module level includes `if TYPE_CHECKING:` blocks and try/except around imports
        expanded = []
        for node in nodes:
            expanded.append(node)
            if isinstance(node, ast.If | ast.Try):
                expanded.extend(ast.walk(node))
        nodes = expanded
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(t for t in _resolve(name, node) if t != name)
    return found


def test_at_most_eight_root_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_LIMIT, root


def test_public_module_names_are_unique():
    by_name = defaultdict(list)
    for name, path in MODULES.items():
        stem = path.stem
        if stem.startswith("_") or ".cli." in f"{name}.":
            continue
        by_name[stem].append(name)
    clashes = {stem: names for stem, names in by_name.items() if len(names) > 1}
    assert not clashes


def test_every_module_opens_with_a_two_line_role():
    missing = []
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        lines = [line for line in (doc or "").splitlines() if line.strip()]
        if len(lines) < 2:
            missing.append(name)
    assert not missing


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_at_module_level():
    graph = {name: _imports(name, module_level_only=True) for name in MODULES}
    assert _cycle(graph) is None


def test_each_pair_of_modules_imports_in_one_direction_only():
    graph = {name: _imports(name, module_level_only=False) for name in MODULES}
    both = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, set())})
    assert not both


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
