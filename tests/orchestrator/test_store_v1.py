"""A study stored before config hashes were versioned is recognised by today's code.

``tests/fixtures/store_v1`` is the study folder (spec copy and Parquet store) of a real 2-trial
study run with the code of identity version 1; see ``tests/fixtures/README.md``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from pydantic import create_model

from orchestrator.launch import pending_trials
from orchestrator.spec import load_spec
from search_spaces import TrialConfig, config_hash
from search_spaces.trial_config import ModelConfig
from storage import ResultStore
from tests.cli import run_orchestrator
from tests.search_spaces.test_identity import GrownLoss

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store_v1"
STORED = {"9c52347e1fd39ea0": "baseline", "10fd09e19562c0b0": "+random_erasing"}


@pytest.fixture
def study(tmp_path, monkeypatch) -> Path:
    """A copy of the stored study as ``studies/store_v1`` under the working directory."""
    folder = tmp_path / "studies" / "store_v1"
    shutil.copytree(FIXTURE, folder)
    monkeypatch.chdir(tmp_path)
    return folder


def test_the_stored_trials_are_the_planned_ones_and_nothing_is_pending(study):
    loaded = load_spec(study / "spec.yaml")
    store = ResultStore(str(study / "results"))
    rows = store.read_rows("trials", "store_v1")
    assert {row["config_hash"]: row["variant"] for row in rows} == STORED
    assert {t.config_hash: t.variant for t in loaded.trials} == STORED
    assert pending_trials(loaded, store) == []
    for row in rows:  # the stored config itself still hashes to the stored identity
        assert config_hash(TrialConfig.model_validate(json.loads(row["config_json"]))) == row["config_hash"]
        assert row.get("identity_version") is None  # written before versions were recorded: version 1


def test_the_stored_trials_are_still_done_once_the_config_has_grown(study, monkeypatch):
    # New fields at defaults that keep today's behaviour, as other branches are adding them.
    model = create_model("GrownModel", __base__=ModelConfig, warm_start=(bool, False), head_stride=(int, 2))
    grown = create_model("GrownTrialConfig", __base__=TrialConfig, model=(model, model()), loss=(GrownLoss, GrownLoss()))
    monkeypatch.setattr(sys.modules["search_spaces.expand"], "TrialConfig", grown)
    loaded = load_spec(study / "spec.yaml")
    assert all(isinstance(t.config, grown) for t in loaded.trials)
    assert pending_trials(loaded, ResultStore(str(study / "results"))) == []


def test_plan_and_status_show_the_stored_trials_done(study):
    plan = run_orchestrator("plan", "studies/store_v1/spec.yaml", cwd=study.parents[1], timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert all(digest in plan.stdout for digest in STORED)
    status = run_orchestrator("status", "store_v1", cwd=study.parents[1], timeout=300)
    assert status.returncode == 0, status.stderr
    assert "done 2, running 0, failed 0, pruned 0, pending 0" in status.stdout and "finished" in status.stdout


@pytest.mark.integration
def test_relaunching_the_stored_study_runs_nothing(study):
    parts = sorted(p.name for p in (study / "results").rglob("*.parquet"))
    result = run_orchestrator("launch", "studies/store_v1/spec.yaml", cwd=study.parents[1], timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2 trials planned, 2 already completed, 0 to run" in result.stdout
    assert "| baseline | 1 |" in result.stdout  # the table is built from the stored rows
    assert sorted(p.name for p in (study / "results").rglob("*.parquet")) == parts
