"""The reading side stands alone: ``analysis`` imports only ``storage`` and ``search_spaces`` of
this project, and reading a study pulls in neither Ray, torch nor MLflow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import analysis

PACKAGE = Path(analysis.__file__).parent
OWN_PACKAGES = {"analysis", "orchestrator", "trainables", "search_spaces", "storage"}


def imported_top_level(path: Path) -> set[str]:
    """Top-level package names a file imports, at its top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def test_analysis_imports_only_storage_and_search_spaces_of_the_project():
    for path in sorted(PACKAGE.glob("*.py")):
        own = imported_top_level(path) & OWN_PACKAGES
        assert own <= {"analysis", "storage", "search_spaces"}, f"{path.name} imports {sorted(own)}"
        assert not imported_top_level(path) & {"ray", "torch", "mlflow", "timm"}, path.name


def test_reading_a_study_loads_no_ray_torch_or_mlflow():
    code = (
        "import sys, analysis.report, analysis.figures, analysis.formats;"
        "print(','.join(sorted(m for m in ('ray', 'torch', 'mlflow', 'orchestrator', 'trainables') if m in sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert loaded == ""
