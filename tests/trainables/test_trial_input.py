"""``python -m trainables`` takes a trial in every shape the orchestrator prints one, with the
threads its study's trials use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.spec import load_spec
from trainables.trial_input import TrialInputError, choose_trial, read_file

SPEC = """study: {name: t}
baseline:
  train: {epochs: 4, lr_steps: [], warmup_epochs: 0}
ablation:
  design: list
  variants: [{name: a}, {name: b, set: {model.neck: l2norm}}]
  seeds: [0, 1]
resources: {cpus_per_trial: 3}
"""


@pytest.fixture
def files(tmp_path):
    spec = tmp_path / "study.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(spec), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    plan = tmp_path / "plan.json"
    plan.write_text(result.stdout, encoding="utf-8")
    return spec, plan, {(t.variant, t.seed): t for t in load_spec(spec).trials}


def choose(path, **selection):
    return choose_trial(path, read_file(path), **selection)


def test_a_plan_and_a_spec_give_the_planned_trial_and_the_studys_threads(files, tmp_path):
    spec, plan, planned = files
    want = planned[("b", 1)]
    for chosen in (
        choose(plan, variant="b", seed=1),
        choose(plan, config_hash=want.config_hash[:10]),
        choose(spec, config_hash=want.config_hash),
        choose(spec, variant="b", seed=1),
    ):
        assert chosen.config == want.config and chosen.label == f"b seed=1 [{want.config_hash[:8]}]"
        assert chosen.threads == 3  # resources.cpus_per_trial, as Ray runs the study's trials
    # One trial cut out of the plan, as it prints it.
    one = tmp_path / "one.json"
    one.write_text(json.dumps(json.loads(plan.read_text())["trials"][1]), encoding="utf-8")
    assert choose(one).config == planned[("a", 1)].config and choose(one).threads == 3


def test_a_bare_trial_config_runs_with_the_default_one_thread(tmp_path):
    trial = tmp_path / "trial.yaml"
    trial.write_text("seed: 4\ntrain: {epochs: 2, lr_steps: [], warmup_epochs: 0}\n", encoding="utf-8")
    chosen = choose(trial)
    assert chosen.config.seed == 4 and chosen.config.train.epochs == 2 and chosen.threads == 1


def test_an_ambiguous_or_empty_choice_lists_the_trials(files):
    spec, plan, planned = files
    with pytest.raises(TrialInputError, match=r"^2 trials match; choose one with --hash, or --variant and --seed: b seed=0"):
        choose(plan, variant="b")
    with pytest.raises(TrialInputError, match=r"^no trial matches; the trials: a seed=0 .*, b seed=1"):
        choose(spec, config_hash="ffffffffffff")


def test_the_command_says_what_it_would_run_and_refuses_bad_input_with_exit_2(files, tmp_path):
    spec, plan, planned = files
    want = planned[("a", 0)]
    shown = subprocess.run(
        [sys.executable, "-m", "trainables", str(plan), "--hash", want.config_hash[:8], "--show"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and shown.stdout.strip() == f"a seed=0 [{want.config_hash[:8]}]: 3 thread(s), device auto", shown.stderr
    bad = subprocess.run([sys.executable, "-m", "trainables", str(plan), "--seed", "7"], capture_output=True, text=True)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {plan}: no trial matches"), bad.stderr
