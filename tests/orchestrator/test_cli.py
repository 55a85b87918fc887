"""The real ``orchestrator`` command, run as a subprocess like a user would."""

import subprocess
from pathlib import Path

import pytest

from tests.cli import run_orchestrator

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run_orchestrator(*args, cwd=cwd)


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("launch", "validate", "plan", "summarize", "data"):
        assert command in result.stdout


def test_validate_accepts_the_quickstart():
    result = run_cli("validate", "examples/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_plan_prints_every_trial_and_the_count():
    result = run_cli("plan", "examples/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    lines = lines[: next(i for i, line in enumerate(lines) if " trials; 'vs':" in line) + 1]  # then the cost estimate
    count = int(lines[-1].split()[0])
    assert len(lines) == count + 2  # header + trials + count line
    assert "baseline" in result.stdout
    # The random-erasing row is compared with the baseline; the baseline with nothing.
    assert [line.split()[:2] for line in lines[1:-1]] == [["baseline", "-"]] * 3 + [["+random_erasing", "baseline"]] * 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("study:\n  name: x\nbaseline:\n  model:\n    backbone: resnet1\n", ":5: baseline.model.backbone: unknown timm backbone 'resnet1'"),
        ("study:\n  name: x\n  typo: 1\n", ":3: study.typo: unknown key 'typo'"),
        (
            "study:\n  name: x\nbaseline:\n  dataset: {name: market1501, root: /no/such/dir}\n",
            ":4: baseline.dataset.root: dataset folder not found",
        ),
        ("study:\n  name: x\nbaseline:\n  dataset: {name: market1501}\n", ":4: baseline.dataset: dataset 'market1501' needs 'root'"),
    ],
)
def test_validate_rejects_bad_specs_with_one_line_and_exit_2(tmp_path, text, fragment):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text, encoding="utf-8")
    result = run_cli("validate", str(spec))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert not (tmp_path / "studies").exists()


def test_launch_of_a_bad_spec_launches_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("study:\n  name: x\nablation:\n  design: grid\n", encoding="utf-8")
    result = run_cli("launch", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert "ablation.design" in result.stderr
    assert not (tmp_path / "studies").exists()


def test_summarize_unknown_study_is_a_clear_error(tmp_path):
    result = run_cli("summarize", "nothing-here", cwd=tmp_path)
    assert result.returncode == 2
    assert "no results for study 'nothing-here'" in result.stderr


def test_data_synth_writes_a_market_layout_dataset(tmp_path):
    out = tmp_path / "synth"
    result = run_cli("data", "synth", "--out", str(out), "--train-ids", "4", "--test-ids", "3")
    assert result.returncode == 0, result.stderr
    for folder in ("bounding_box_train", "query", "bounding_box_test", "masks/bounding_box_train"):
        assert any((out / folder).iterdir()), folder
    names = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    assert names[0].startswith("0001_c")
    # Same seed, same bytes: a second generation elsewhere is identical.
    again = tmp_path / "again"
    assert run_cli("data", "synth", "--out", str(again), "--train-ids", "4", "--test-ids", "3").returncode == 0
    first = sorted(p.read_bytes() for p in (out / "query").iterdir())
    second = sorted(p.read_bytes() for p in (again / "query").iterdir())
    assert first == second
