"""No import inside a function closes a circle between the project's modules.

A lazy import is fine for cost (keeping Ray or torch off a path that does not need them), but
one that closes a circle -- the other module reaches back, at module level or lazily itself --
hides a layering fault: the shared piece belongs in a module below both (STYLE.md). Imports
under ``if TYPE_CHECKING:`` never run and are not counted.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "orchestrator", "search_spaces", "storage", "trainables")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported project module, whether the import runs at module level) for each import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    module_level = {id(statement) for statement in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, id(node) in module_level) for name in names if name in modules]
    return found


def _path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            path = []
            while here is not None:
                path.append(here)
                here = previous[here]
            return path[::-1]
        for there in sorted(graph.get(here, ())):
            if there not in previous:
                previous[there] = here
                queue.append(there)
    return None


def test_no_lazy_import_closes_a_circle():
    modules = _modules()
    imports = {name: _imports(path, modules) for name, path in modules.items()}
    graph = {name: {target for target, _ in found} for name, found in imports.items()}
    circles = []
    for name, found in sorted(imports.items()):
        for target in sorted({target for target, top in found if not top}):
            if target == name or target.startswith(name + ".") or name.startswith(target + "."):
                continue  # a package and its own modules
            back = _path(graph, target, name)
            if back:
                circles.append(f"{name} imports {target} inside a function, and {' -> '.join(back)}")
    assert not circles, "\n".join(circles)


def test_the_check_sees_a_circle(tmp_path):
    """The rule above on a made-up pair: a imports b lazily, b imports a at module level."""
    (tmp_path / "a.py").write_text("def f():\n    import b\n", encoding="utf-8")
    (tmp_path / "b.py").write_text("import a\n", encoding="utf-8")
    modules = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert _imports(modules["a"], modules) == [("b", False)]
    assert _imports(modules["b"], modules) == [("a", True)]
    assert _path({"b": {"a"}}, "b", "a") == ["b", "a"]
