"""Command-line overrides (``launch SPEC train.epochs=2``): set into the spec, validated like
the file, errors naming the override; ``--version``."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.errors import InputError, SpecError
from orchestrator.overrides import RECIPE_SECTIONS, SPEC_BLOCKS, parse_override
from orchestrator.spec import StudySpec, load_spec
from search_spaces import Recipe

SPEC = """study: {name: o}
baseline:
  train: {epochs: 12, lr_steps: [8], warmup_epochs: 2}
ablation:
  design: list
  variants: [{name: a}, {name: b, set: {model.neck: l2norm}}]
  seeds: [0]
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_key_prefixes_are_the_spec_blocks_and_the_recipe_sections():
    assert SPEC_BLOCKS == tuple(StudySpec.model_fields)
    assert RECIPE_SECTIONS == tuple(Recipe.model_fields)


def test_an_override_plans_what_the_edited_file_plans(spec, tmp_path):
    code, out, err = run("plan", str(spec), "--format", "json", "train.epochs=10", "ablation.seeds=[0, 1]", "baseline.train.lr_steps=[6]")
    assert code == 0, err
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        SPEC.replace("epochs: 12, lr_steps: [8]", "epochs: 10, lr_steps: [6]").replace("seeds: [0]", "seeds: [0, 1]"), encoding="utf-8"
    )
    expected = [(t.variant, t.seed, t.config_hash) for t in load_spec(edited).trials]
    planned = [(t["variant"], t["seed"], t["config_hash"]) for t in json.loads(out)["trials"]]
    assert planned == expected and len(planned) == 4
    assert {t["config"]["train"]["epochs"] for t in json.loads(out)["trials"]} == {10}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # validated like the file, the error at the override instead of a line of the file
        ("baseline.train.epochs=many", "override 'baseline.train.epochs=many': baseline.train.epochs: Input should be a valid integer"),
        ("train.epoch=2", "override 'train.epoch=2': baseline.train.epoch: unknown key 'epoch'"),
        ("train.epochs=5", "override 'train.epochs=5': baseline.train: "),  # lr_steps [8] beyond 5 epochs
        ("ablation.seeds=[0, 0]", "override 'ablation.seeds=[0, 0]': ablation.seeds"),
        ("tain.epochs=2", "override 'tain.epochs=2': unknown key 'tain'; a key starts with a block of the spec (plugins, study, baseline"),
        ("train.epochs", "override 'train.epochs': expected KEY=VALUE"),
        ("train..epochs=2", "override 'train..epochs=2': 'train..epochs' has an empty part"),
        ("train.epochs=[2", "override 'train.epochs=[2': the value is not valid YAML"),
        ("train.epochs.x=2", "override 'train.epochs.x=2': baseline.train.epochs is a value, not a section, in "),
    ],
)
def test_a_bad_override_is_one_line_naming_it_and_nothing_is_launched(spec, tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run("launch", str(spec), override)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {message}"), lines[0]
    assert not (tmp_path / "studies").exists()


def test_an_error_elsewhere_names_the_file_and_the_overrides_in_force(spec):
    spec.write_text(SPEC.replace("design: list", "design: lst"), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(spec, overrides=["train.epochs=10"])
    assert re.match(
        rf"{re.escape(str(spec))}:5: ablation.design: .* \(in {re.escape(str(spec))} with the overrides train.epochs=10\)",
        str(caught.value),
    )


def test_a_number_in_the_key_indexes_a_list(spec):
    loaded = load_spec(spec, overrides=["ablation.variants.1.name=l2"])
    assert sorted({t.variant for t in loaded.trials}) == ["a", "l2"]
    with pytest.raises(InputError, match=r"override 'ablation.variants.5.name=x': ablation.variants is a list of 2 items"):
        load_spec(spec, overrides=["ablation.variants.5.name=x"])


def test_values_are_yaml():
    assert parse_override("train.lr=3.0e-3").value == 0.003
    assert parse_override("model.neck=l2norm").value == "l2norm"
    assert parse_override("augment.random_erasing={p: 0.5}").value == {"p": 0.5}
    assert parse_override("train.lr_steps=[]").path == ("baseline", "train", "lr_steps")


def test_version():
    from importlib.metadata import version

    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"orchestrator {version('reid-ablation-orchestrator')}"
