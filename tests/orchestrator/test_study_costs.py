"""A study's cost before it runs (plan: from earlier trials of the same recipes) and while it runs
(status: spent and left, the study folder's size); the table's compute per row and in all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.compute_cost import Compute, compute_by_variant, compute_note, study_compute
from orchestrator.rows import trial_row
from orchestrator.spec import load_spec
from orchestrator.study_costs import plan_cost_lines, status_lines
from storage import ResultStore
from tests.cli import run_orchestrator

SPEC = """\
study: {{name: {name}}}
ablation:
  design: one_at_a_time
  variants:
    - {{name: +erasing, set: {{augment.random_erasing.p: 0.5}}}}
    - {{name: +lr, set: {{train.lr: 0.01}}}}
  seeds: {seeds}
resources: {{cpus_per_trial: 2, gpus_per_trial: {gpus}}}
output: {{store: {store}}}
"""


def spec_file(tmp_path: Path, name: str, seeds: list[int], gpus: float = 0.0) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, seeds=seeds, gpus=gpus, store=tmp_path / "results"), encoding="utf-8")
    return path


def with_adaptive(path: Path, block: str) -> Path:
    """The spec at ``path`` with ``block`` under ``ablation:`` (after its seeds)."""
    text = path.read_text(encoding="utf-8")
    seeds = next(line for line in text.splitlines(keepends=True) if line.startswith("  seeds:"))
    path.write_text(text.replace(seeds, seeds + block), encoding="utf-8")
    return path


def record(store: ResultStore, loaded, wall: dict[str, float], cpus: float = 2.0) -> None:
    """Rows as the recorder writes them, for the variants in ``wall`` (seconds each)."""
    for trial in loaded.trials:
        if trial.variant not in wall:
            continue
        seconds = wall[trial.variant] + trial.seed  # seeds differ a little
        extra = {"wall_seconds": seconds, "cpus": cpus, "gpus": 0.0, "cpu_seconds": seconds * cpus, "gpu_seconds": 0.0}
        row = trial_row(
            loaded.name,
            trial,
            0,
            status="completed",
            error=None,
            final={"mAP": 0.5},
            started_at=None,
            finished_at="2026-01-01T00:00:00+00:00",
            extra=extra,
        )
        store.write_trial(loaded.name, trial.trial_id, {"trials": [row]})


def test_plan_estimates_from_earlier_trials_of_the_same_recipes(tmp_path):
    earlier = load_spec(spec_file(tmp_path, "earlier", [0, 1]))
    store = ResultStore(str(tmp_path / "results"))
    record(store, earlier, {"baseline": 600.0, "+erasing": 1200.0})  # +lr never ran

    later = load_spec(spec_file(tmp_path, "later", [7, 8, 9]))
    (line,) = plan_cost_lines(later)
    # baseline: mean(600, 601) s, +erasing: mean(1200, 1201) s, each x 3 seeds x 2 CPUs.
    expected = 3 * 2 * (600.5 + 1200.5) / 3600
    assert line == (
        f"cost: about {expected:.1f} CPU-h (from 4 earlier trial(s) of the same recipes; "
        "3 of 9 trials have no earlier trial of their recipe and are not counted)"
    )
    on_gpu = load_spec(spec_file(tmp_path, "gpu", [3], gpus=0.5))
    (line,) = plan_cost_lines(on_gpu)
    assert line.startswith(f"cost: about {0.5 * (600.5 + 1200.5) / 3600:.2f} GPU-h")


def test_plan_says_when_it_cannot_estimate(tmp_path):
    loaded = load_spec(spec_file(tmp_path, "fresh", [0]))
    assert plan_cost_lines(loaded) == [
        f"cost: cannot estimate, no result store yet at {tmp_path / 'results'} (a launch records each trial's compute)"
    ]
    (tmp_path / "results").mkdir()
    assert plan_cost_lines(loaded) == ["cost: cannot estimate, no trial of these recipes in the store yet"]


def test_plan_on_the_command_line_shows_an_adaptive_studys_waves_and_cost(tmp_path):
    path = with_adaptive(spec_file(tmp_path, "ada", [0, 1, 2]), "  adaptive: {max_seeds: 6, smallest_effect: 2.5}\n")
    store = ResultStore(str(tmp_path / "results"))
    record(store, load_spec(spec_file(tmp_path, "earlier", [0])), {"baseline": 360.0, "+erasing": 360.0, "+lr": 360.0})
    result = run_orchestrator("plan", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "9 trials; 'vs': the row each variant is compared with (its compare_to)" in lines
    assert any(
        line.startswith(
            "adaptive seeds: the 9 trials above are the first wave (seeds 0, 1, 2); then each open comparison gets 2 more seeds a wave (looks at 3, 5, 6 seeds, seeds 3, 4, 5)"
        )
        for line in lines
    ), lines
    assert "at most 18 trials (6 seeds x 3 rows)" in lines
    # 360 s x 2 CPUs = 0.2 CPU-h a trial.
    assert "cost of the first wave: about 1.8 CPU-h (from 3 earlier trial(s) of the same recipes)" in lines
    assert "cost at most: about 3.6 CPU-h (from 3 earlier trial(s) of the same recipes)" in lines
    listed = run_orchestrator("plan", str(path), "--format", "json", cwd=tmp_path, timeout=120)
    payload = json.loads(listed.stdout)
    assert len(payload["trials"]) == 9 and {t["seed"] for t in payload["trials"]} == {0, 1, 2}
    assert payload["adaptive"] == {
        "max_seeds": 6,
        "smallest_effect": 2.5,
        "seeds_per_wave": 2,
        "seeds": [0, 1, 2, 3, 4, 5],
        "looks": [3, 5, 6],
        "first_wave_trials": 9,
        "max_trials": 18,
    }


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("  adaptive: {max_seeds: 3, smallest_effect: 1}\n", "ablation.adaptive.max_seeds: max_seeds must exceed the first wave's 3 seeds"),
        ("  adaptive: {max_seeds: 8, smallest_effect: 0}\n", "ablation.adaptive.smallest_effect: Input should be greater than 0"),
        ("  adaptive: {max_seeds: 8, smallest_effect: 1, waves: 2}\n", "ablation.adaptive.waves: unknown key 'waves'"),
    ],
)
def test_a_bad_adaptive_block_is_one_line_at_its_key(tmp_path, key, message):
    path = with_adaptive(spec_file(tmp_path, "bad", [0, 1, 2]), key)
    result = run_orchestrator("validate", str(path), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{path}:8: {message}" in line, line


def test_a_first_wave_of_two_seeds_is_refused(tmp_path):
    from orchestrator.errors import SpecError

    path = with_adaptive(spec_file(tmp_path, "two", [0, 1]), "  adaptive: {max_seeds: 8, smallest_effect: 1}\n")
    with pytest.raises(SpecError, match="first wave of at least 3 seeds"):
        load_spec(path)


def test_status_gives_compute_spent_and_left_and_the_folder_size(tmp_path):
    loaded = load_spec(spec_file(tmp_path, "st", [0, 1]))
    store = ResultStore(str(tmp_path / "results"))
    record(store, loaded, {"baseline": 1800.0})  # 1800 and 1801 s at 2 CPUs
    folder = tmp_path / "study"
    (folder / "ray" / "x").mkdir(parents=True)
    (folder / "ray" / "x" / "result.json").write_bytes(b"r" * 2_500_000)
    rows = store.read_rows("trials", "st")
    compute, size = status_lines(loaded, rows, pending=4, study_dir=folder)
    assert (
        compute
        == f"  compute: {2 * 3601 / 3600:.1f} CPU-h spent, about {4 * 2 * 1800.5 / 3600:.1f} CPU-h left (4 trials at the mean of the finished)"
    )
    assert size == f"  study folder: 2.5 MB, no checkpoint files ({folder})"
    (folder / "ray" / "x" / "checkpoint_000001").mkdir()
    (folder / "ray" / "x" / "checkpoint_000001" / "trainer.pt").write_bytes(b"m")
    assert ", 1 checkpoint file(s)" in status_lines(loaded, rows, pending=0, study_dir=folder)[-1]


def test_the_tables_compute_per_row_and_in_all():
    rows = [
        {"variant": "a", "cpu_seconds": 7200.0, "gpu_seconds": 0.0},
        {"variant": "a", "cpu_seconds": 3600.0, "gpu_seconds": 0.0, "status": "failed"},
        {"variant": "b", "cpu_seconds": 36000.0, "gpu_seconds": 5400.0},
        {"variant": "c"},  # written before compute was recorded
    ]
    by_variant = compute_by_variant(rows)
    assert by_variant["a"] == Compute(0.0, 3.0, trials=2) and by_variant["a"].text() == "3.0 CPU-h"
    assert by_variant["b"].text() == "1.5 GPU-h"
    assert by_variant["c"].text() == "-"
    total = study_compute(rows)
    assert total.text() == "1.5 GPU-h" and total.unrecorded == 1
    note = compute_note(rows)
    assert note.startswith("Compute: 1.5 GPU-h in all, GPU-hours") and "3 trials" in note and "1 trials recorded before compute was" in note
    assert compute_note([{"variant": "a"}]) is None
