"""The real ``orchestrator --debug`` option (not a probe app rebuilt in the test): without it a
failure is one line, with it the traceback comes first and the line last."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli import run_orchestrator


@pytest.fixture
def foreign_store(tmp_path):
    """A result store holding a Parquet file another tool wrote: no 'variant' column."""
    folder = tmp_path / "store" / "trials" / "x"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"study": ["x"], "config_hash": ["h"], "status": ["completed"]}), folder / "part-a-20260101T000000Z-abcd1234.parquet"
    )
    return tmp_path / "store"


def test_a_runtime_fault_is_one_line_and_debug_shows_its_traceback(foreign_store, tmp_path):
    plain = run_orchestrator("summarize", "x", "--store", str(foreign_store), cwd=tmp_path, timeout=120)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == ["error: KeyError: 'variant' (rerun with --debug for the traceback)"]
    debug = run_orchestrator("--debug", "summarize", "x", "--store", str(foreign_store), cwd=tmp_path, timeout=120)
    assert debug.returncode == 1
    lines = debug.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and len(lines) > 3
    assert any(line.strip().startswith('File "') and "orchestrator" in line for line in lines)
    assert lines[-1] == "error: KeyError: 'variant'"


def test_debug_shows_the_traceback_of_an_input_error_too(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("study: {name: s}\nbaseline:\n  train: {epochs: many}\n", encoding="utf-8")
    plain = run_orchestrator("validate", str(spec), cwd=tmp_path, timeout=120)
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1
    debug = run_orchestrator("--debug", "validate", str(spec), cwd=tmp_path, timeout=120)
    assert debug.returncode == 2
    lines = debug.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == plain.stderr.strip()  # the same one line, after the traceback
