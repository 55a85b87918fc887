"""The launch path goes one way: launch -> phases -> tune_runner -> recorder, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator
from orchestrator.tune_runner import Tally

PACKAGE = Path(orchestrator.__file__).parent


def imported_modules(module: str) -> set[str]:
    """Every ``orchestrator.*`` module a file imports, at its top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("orchestrator.")}


def test_neither_the_runner_nor_the_recorder_reaches_back():
    assert not {"orchestrator.launch"} & imported_modules("tune_runner")
    assert not {"orchestrator.launch"} & imported_modules("phases")
    assert not {"orchestrator.launch", "orchestrator.tune_runner"} & imported_modules("recorder")
    assert "orchestrator.tune_runner" in imported_modules("launch")
    assert "orchestrator.recorder" in imported_modules("tune_runner")
    assert "orchestrator.recorder" not in imported_modules("launch")


def test_a_tally_adds_up_phases_and_keeps_the_latest_variant_order():
    search = Tally(ran=3, failed=1, variant_order=("baseline", "s1", "s2"))
    repeats = Tally(ran=2, failed=0, variant_order=("baseline", "s1", "s2", "s3"))
    total = Tally(variant_order=("baseline",)).then(search).then(repeats)
    assert (total.ran, total.failed, total.variant_order) == (5, 1, ("baseline", "s1", "s2", "s3"))
    assert Tally(variant_order=("a",)).then(Tally()).variant_order == ("a",)
