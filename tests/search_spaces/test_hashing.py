import json
import subprocess
import sys

from search_spaces import TrialConfig, canonical_json, config_hash, flat_config, flatten


def test_hash_ignores_key_order_and_explicit_defaults():
    implicit = TrialConfig.model_validate({"model": {"neck": "l2norm"}, "seed": 2})
    explicit = TrialConfig.model_validate(
        {"seed": 2, "model": {"pooling": "avg", "neck": "l2norm", "backbone": "resnet10t"}, "loss": {"label_smoothing": 0.1}}
    )
    assert config_hash(implicit) == config_hash(explicit)


def test_hash_changes_with_any_value():
    base = TrialConfig()
    assert config_hash(base) != config_hash(TrialConfig(seed=1))
    assert config_hash(base) != config_hash(TrialConfig.model_validate({"loss": {"triplet": {"margin": 0.31}}}))


def test_hash_is_stable_across_processes():
    config = TrialConfig.model_validate({"augment": {"random_erasing": {"p": 0.5}}, "seed": 7})
    code = (
        "from search_spaces import TrialConfig, config_hash;"
        "print(config_hash(TrialConfig.model_validate({'seed': 7, 'augment': {'random_erasing': {'p': 0.5}}})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == config_hash(config)


def test_canonical_json_round_trips():
    config = TrialConfig.model_validate({"train": {"lr_steps": [3, 8]}})
    assert TrialConfig.model_validate(json.loads(canonical_json(config))) == config


def test_flatten_and_flat_config():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}
    flat = flat_config(TrialConfig())
    assert flat["loss.triplet.margin"] == 0.3
    assert flat["train.lr_steps"] == [20, 25]
