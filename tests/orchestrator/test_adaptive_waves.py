"""Adaptive seeds on the launch path (orchestrator.adaptive_waves) with Ray Tune stood in for:
after each wave only the open comparisons get seeds, new seeds continue after the largest, a
relaunch goes on where the store stands, and a failing trial never loops."""

from __future__ import annotations

from pathlib import Path

from analysis.formats import to_markdown
from analysis.seed_decisions import decision_texts
from analysis.summary import summarize
from orchestrator import phases
from orchestrator.adaptive_waves import run_adaptive, schedule_trials
from orchestrator.launch import pending_trials, study_axes
from orchestrator.rows import trial_row
from orchestrator.spec import load_spec
from orchestrator.tracking import StudyTracker
from orchestrator.tune_runner import RaySession, StudyRun, Tally
from storage import ResultStore

SPEC = """\
study: {name: ada, metric: mAP}
ablation:
  design: one_at_a_time
  variants:
    - {name: +huge, set: {train.lr: 0.01}}
    - {name: +same, set: {eval.max_rank: 20}}
    - {name: +noisy, set: {train.lr: 0.002}}
  seeds: [0, 1, 2]
  adaptive: {max_seeds: 7, smallest_effect: 0.5}
output: {dir: %s}
"""

# Per-seed noise of the "+noisy" row against the baseline: mean 0.2 points, sd about 2 points:
# far too wide for D = 0.5 and too small an effect to show, so it stays open to the end.
NOISE = {0: 2.1, 1: -1.9, 2: 0.4, 3: -2.5, 4: 2.6, 5: -0.6, 6: 1.3}


def metric(variant: str, seed: int) -> float:
    """mAP (a fraction) as the stand-in trainable reports it."""
    base = 0.5 + 0.01 * (seed % 3)
    return base + {"baseline": 0.0, "+huge": 0.30 + 0.002 * NOISE[seed], "+same": 0.0, "+noisy": 0.01 * NOISE[seed]}[variant]


class FakeTune:
    """Stands in for tune_runner.run_trials: writes each trial's row as the recorder would;
    (variant, seed) pairs in ``failing`` fail."""

    def __init__(self, store: ResultStore, failing: set[tuple[str, int]] = frozenset()):
        self.store, self.failing, self.waves = store, set(failing), []

    def __call__(self, run, trials, datasets, variant_order):
        self.waves.append(sorted((t.variant, t.seed) for t in trials))
        for trial in trials:
            failed = (trial.variant, trial.seed) in self.failing
            final = {} if failed else {"mAP": metric(trial.variant, trial.seed)}
            row = trial_row(
                "ada",
                trial,
                0,
                status="failed" if failed else "completed",
                error=None,
                final=final,
                started_at=None,
                finished_at="2026-01-01T00:00:00+00:00",
            )
            self.store.write_trial("ada", trial.trial_id, {"trials": [row]})
        return Tally(ran=len(trials), variant_order=variant_order)


def study(tmp_path: Path):
    path = tmp_path / "ada.yaml"
    path.write_text(SPEC % (tmp_path / "study"), encoding="utf-8")
    loaded = load_spec(path)
    store = ResultStore(str(tmp_path / "results"))
    tracker = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "ada", artifact_location=(tmp_path / "art").as_uri())
    tracker.start_study(params={}, tags={})
    lines: list[str] = []
    run = StudyRun(loaded, store, tracker, RaySession(loaded, None, lines.append), study_axes(loaded), lines.append)
    return loaded, store, run, lines


def launch(loaded, store, run, fake: FakeTune, monkeypatch) -> Tally:
    monkeypatch.setattr(phases.tune_runner, "run_trials", fake)
    return run_adaptive(run, pending_trials(loaded, store), {}, Tally(), lambda trials: None)


def test_only_open_comparisons_get_the_next_waves_seeds(tmp_path, monkeypatch):
    loaded, store, run, lines = study(tmp_path)
    fake = FakeTune(store)
    tally = launch(loaded, store, run, fake, monkeypatch)

    first = [(v, s) for v in ("+huge", "+noisy", "+same", "baseline") for s in (0, 1, 2)]
    # +huge (an effect of 30 points) and +same (identical results) are decided after the first
    # wave; +noisy and its contrast get seeds 3 and 4, then 5 and 6: the seeds after the largest.
    assert fake.waves == [
        sorted(first),
        [("+noisy", 3), ("+noisy", 4), ("baseline", 3), ("baseline", 4)],
        [("+noisy", 5), ("+noisy", 6), ("baseline", 5), ("baseline", 6)],
    ]
    assert tally.ran == 12 + 4 + 4
    rows = store.read_rows("trials", "ada")
    assert decision_texts(rows) == {
        "+huge": "effect, decided at 3 seeds",
        "+same": "no effect > 0.5, decided at 3 seeds",
        "+noisy": "undecided at 7",
    }
    assert any("next wave, seeds 3, 4 for +noisy, baseline: 4 trials" in line for line in lines), lines
    # The table says it per row, and how the decisions were taken.
    text = to_markdown(summarize("ada", rows, metrics=("mAP",)))
    # Seeds a decided row never ran (the baseline's 3-6 beside +huge's 0-2) were not failures.
    assert "Left out of the pairs" not in text
    table = text.splitlines()
    assert table[0] == "| variant | seeds | mAP | adaptive seeds |"
    by_variant = {line.split(" | ")[0].strip("| *"): line for line in table[2:6]}
    assert by_variant["baseline"].startswith("| baseline | 7 |") and by_variant["baseline"].endswith("| - |")
    assert by_variant["+huge"].startswith("| +huge | 3 |") and by_variant["+huge"].endswith("| effect, decided at 3 seeds |")
    assert by_variant["+noisy"].startswith("| +noisy | 7 |") and by_variant["+noisy"].endswith("| undecided at 7 |")
    assert "Adaptive seeds: looks at 3, 5, 7 seeds (at most 7)" in table[-1]

    # A relaunch finds everything decided or at N: it runs nothing.
    again = FakeTune(store)
    launch(loaded, store, run, again, monkeypatch)
    assert again.waves == []


def test_a_relaunch_continues_the_waves_where_the_store_stands(tmp_path, monkeypatch):
    loaded, store, run, _ = study(tmp_path)
    trials = schedule_trials(loaded)
    # An earlier launch ran the first wave and half of the second before its driver died.
    FakeTune(store)(run, [t for (v, s), t in trials.items() if s < 3] + [trials[("+noisy", 3)]], {}, ())
    fake = FakeTune(store)
    launch(loaded, store, run, fake, monkeypatch)
    assert fake.waves[0] == [("+noisy", 4), ("baseline", 3), ("baseline", 4)]
    assert fake.waves[1] == [("+noisy", 5), ("+noisy", 6), ("baseline", 5), ("baseline", 6)]


def test_a_failed_trial_ends_the_launch_and_runs_again_on_the_next(tmp_path, monkeypatch):
    loaded, store, run, _ = study(tmp_path)
    fake = FakeTune(store, failing={("baseline", 3)})
    launch(loaded, store, run, fake, monkeypatch)
    # The look at 5 seeds is taken without seed 3's pair; the waves go on to 7 seeds.
    assert len(fake.waves) == 3 and ("baseline", 3) in fake.waves[1]
    assert ("baseline", 3) not in fake.waves[2]
    healed = FakeTune(store)
    launch(loaded, store, run, healed, monkeypatch)
    assert healed.waves == [[("baseline", 3)]]


def test_a_wave_holds_the_same_configs_as_a_fixed_study_with_those_seeds(tmp_path):
    loaded, _, _, _ = study(tmp_path)
    trials = schedule_trials(loaded)
    assert sorted({s for _, s in trials}) == [0, 1, 2, 3, 4, 5, 6]
    first = {t.config_hash for t in loaded.trials}
    assert first == {t.config_hash for (v, s), t in trials.items() if s < 3}
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(
        (SPEC % (tmp_path / "f"))
        .replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2, 3, 4, 5, 6]")
        .replace("  adaptive: {max_seeds: 7, smallest_effect: 0.5}\n", ""),
        encoding="utf-8",
    )
    assert {t.config_hash for t in load_spec(fixed).trials} == {t.config_hash for t in trials.values()}
    assert all(t.variant_meta["adaptive"]["looks"] == [3, 5, 7] for t in trials.values())


def test_status_shows_which_comparisons_are_open_and_what_runs_next(tmp_path):
    from orchestrator.study_costs import adaptive_planned, status_lines

    loaded, store, run, _ = study(tmp_path)
    trials = schedule_trials(loaded)
    FakeTune(store)(run, [t for (v, s), t in trials.items() if s < 3], {}, ())  # the first wave, as a driver left it
    rows = store.read_rows("trials", "ada")
    lines = status_lines(loaded, rows, pending=4, study_dir=tmp_path / "study")
    assert lines[:6] == [
        "  adaptive seeds: 1 of 3 looks taken (3, 5, 7 seeds)",
        "    +huge vs baseline: effect, decided at 3 seeds",
        "    +same vs baseline: no effect > 0.5, decided at 3 seeds",
        "    +noisy vs baseline: open after 3 seeds",
        "    still open: +noisy; next: 4 trials at seeds 3, 4",
        f"  study folder: 0.0 MB, no checkpoint files ({tmp_path / 'study'})",
    ]
    assert adaptive_planned(loaded, rows) == 12 + 4
