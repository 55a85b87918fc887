"""``bash scripts/test``: extra pytest arguments keep the fast suite's marker filter unless they
give a ``-m`` of their own.

The real script runs in a copy of the repository's layout whose ``scripts/install`` does nothing
and whose ``.venv/bin/python`` prints the arguments it was given, one per line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["-m", "not slow and not gpu"]


@pytest.fixture
def layout(tmp_path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    (tmp_path / "scripts" / "install").write_text("exit 0\n", encoding="utf-8")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/usr/bin/env bash\nfor arg in "$@"; do echo "$arg"; done\n', encoding="utf-8")
    python.chmod(0o755)
    return tmp_path


def pytest_arguments(layout: Path, *args: str) -> list[str]:
    result = subprocess.run(["bash", str(layout / "scripts" / "test"), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["-m", "pytest"], lines
    return lines[2:]


@pytest.mark.parametrize(
    ("given", "passed"),
    [
        ((), FAST),
        (("-k", "spec"), [*FAST, "-k", "spec"]),
        (("tests/storage", "-x"), [*FAST, "tests/storage", "-x"]),
        (("-m", "slow"), ["-m", "slow"]),
        (("-k", "spec", "-mslow"), ["-k", "spec", "-mslow"]),
    ],
)
def test_extra_arguments_keep_the_fast_suite_unless_they_give_a_marker(layout, given, passed):
    assert pytest_arguments(layout, *given) == passed
