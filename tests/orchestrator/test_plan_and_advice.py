"""``orchestrator plan --format json`` and the from-scratch warning of validate/launch."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from orchestrator.advice import scratch_training_warnings
from orchestrator.cli import app
from orchestrator.spec import load_spec
from search_spaces import TrialConfig
from search_spaces.hashing import config_hash

SPEC = """study: {name: s}
baseline:
  model: {backbone: resnet10t}
ablation:
  design: list
  variants:
    - {name: base}
    - {name: gem, set: {model.pooling: gem}}
  seeds: [0, 3]
"""


def test_plan_json_lists_every_trial_with_its_resolved_config(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    result = CliRunner().invoke(app, ["plan", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["study"] == "s" and payload["design"] == "list"
    trials = payload["trials"]
    assert [(t["variant"], t["seed"]) for t in trials] == [("base", 0), ("base", 3), ("gem", 0), ("gem", 3)]
    assert trials[2]["changes"] == {"model.pooling": "gem"} and trials[0]["changes"] == {}
    assert [t["compare_to"] for t in trials] == [None, None, "base", "base"]
    for trial in trials:
        config = TrialConfig.model_validate(trial["config"])  # the full resolved config
        assert config_hash(config) == trial["config_hash"] and config.seed == trial["seed"]
    bad = CliRunner().invoke(app, ["plan", str(path), "--format", "yaml"])
    assert bad.exit_code == 2 and "--format must be text or json" in bad.stderr


def test_large_backbone_from_scratch_on_a_real_dataset_warns_naming_the_key(tiny_market, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: {tiny_market}}}\n  model:\n    backbone: resnet50\n  train: {{ids_per_batch: 8}}\n"
    )
    lines = scratch_training_warnings(load_spec(path))
    assert len(lines) == 1
    assert lines[0].startswith(
        f"warning: {path}:5: baseline.model.backbone: resnet50 (23.5M parameters) trains from random weights on market1501"
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "trains from random weights" in result.stderr
    for model in ("{backbone: resnet50, pretrained: true}", "{backbone: resnet18}"):
        path.write_text(f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: {tiny_market}}}\n  model: {model}\n")
        assert scratch_training_warnings(load_spec(path)) == []
    path.write_text("study: {name: s}\nbaseline:\n  model: {backbone: resnet50}\n")  # synthetic: no ImageNet advice
    assert scratch_training_warnings(load_spec(path)) == []


def test_weights_that_cannot_be_fetched_from_here_warn(tiny_market, tmp_path, monkeypatch):
    from orchestrator.advice import weights_warnings
    from trainables.models import pretrained

    path = tmp_path / "spec.yaml"
    path.write_text(
        f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: {tiny_market}}}\n  model: {{backbone: resnet50, pretrained: true}}\n"
    )
    monkeypatch.setattr(pretrained, "cached_file", lambda repo: None)
    monkeypatch.setattr(pretrained, "hub_url", lambda: "http://127.0.0.1:1")
    lines = weights_warnings(load_spec(path))
    assert (
        len(lines) == 1
        and ":4: baseline.model.pretrained: ImageNet weights 'resnet50.tv_in1k' are not in the Hugging Face cache" in lines[0]
    )
    monkeypatch.setattr(pretrained, "cached_file", lambda repo: tmp_path / "model.safetensors")
    assert weights_warnings(load_spec(path)) == []
