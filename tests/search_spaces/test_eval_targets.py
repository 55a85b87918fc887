"""``eval.targets``: the config section, its identity, and the names its metrics take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from search_spaces import TrialConfig, config_hash
from search_spaces import metrics
from search_spaces.trial_config import DatasetConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DUKE = {"label": "duke", "name": "dukemtmc", "root": "/data/DukeMTMC-reID"}


def recorded(count: int) -> list[tuple[str, dict]]:
    """The first ``count`` hashes recorded before versioning, with the config each was taken of."""
    out = []
    for line in (FIXTURES / "config_hashes_v1.jsonl").read_text(encoding="utf-8").splitlines()[:count]:
        record = json.loads(line)
        tree: dict = {}
        for path, value in record["set"].items():
            *parents, leaf = path.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        out.append((record["hash"], tree))
    return out


def with_targets(tree: dict, targets: list) -> dict:
    return {**tree, "eval": {**tree.get("eval", {}), "targets": targets}}


def test_an_empty_target_list_keeps_every_stored_hash():
    records = recorded(40)
    assert [config_hash(TrialConfig.model_validate(with_targets(tree, []))) for _, tree in records] == [digest for digest, _ in records]


def test_a_target_is_part_of_the_identity():
    plain = config_hash(TrialConfig())
    duke = config_hash(TrialConfig.model_validate({"eval": {"targets": [DUKE]}}))
    renamed = config_hash(TrialConfig.model_validate({"eval": {"targets": [{**DUKE, "label": "dk"}]}}))
    assert len({plain, duke, renamed}) == 3
    # Written with or without its defaults, the same target is the same trial.
    spelled = {**DUKE, "height": None, "width": None, "msmt17_with_val": True}  # an option of another reader resets
    assert config_hash(TrialConfig.model_validate({"eval": {"targets": [spelled]}})) == duke


def test_a_target_follows_the_trials_image_size_unless_it_sets_its_own():
    config = TrialConfig.model_validate(
        {"dataset": {"height": 256, "width": 128}, "eval": {"targets": [DUKE, {**DUKE, "label": "small", "height": 128}]}}
    )
    same, small = (target.dataset_for(config.dataset) for target in config.eval.targets)
    assert same == DatasetConfig(name="dukemtmc", root="/data/DukeMTMC-reID", height=256, width=128)
    assert (small.height, small.width) == (128, 128)


@pytest.mark.parametrize(
    "targets, location, fragment",
    [
        ([{**DUKE, "label": "mAP"}], ("eval", "targets", 0, "label"), "target label 'mAP' is a metric or key name of its own"),
        ([{**DUKE, "label": "Cam"}], ("eval", "targets", 0, "label"), "target label 'Cam' is a metric or key name of its own"),
        ([{**DUKE, "label": "weakest_camera"}], ("eval", "targets", 0, "label"), "is a metric or key name of its own"),
        ([{**DUKE, "label": "duke/test"}], ("eval", "targets", 0, "label"), "must be a letter then up to 31 letters, digits, '_' or '-'"),
        ([{**DUKE, "label": "2duke"}], ("eval", "targets", 0, "label"), "must be a letter then"),
        ([DUKE, {**DUKE, "label": "Duke", "name": "market1501"}], ("eval", "targets"), "target label 'Duke' is used twice"),
        ([{"label": "duke", "root": "/data"}], ("eval", "targets", 0, "name"), "Field required"),
        ([{"label": "duke", "name": "dukemtmc"}], ("eval", "targets", 0), "dataset 'dukemtmc' needs 'root'"),
        ([{**DUKE, "name": "duke"}], ("eval", "targets", 0, "name"), "unknown dataset 'duke'; known: cuhk03np, dukemtmc, folder"),
        ([{**DUKE, "split": "test"}], ("eval", "targets", 0, "split"), "Extra inputs are not permitted"),
    ],
)
def test_bad_targets_are_refused_at_their_key(targets, location, fragment):
    with pytest.raises(ValidationError) as caught:
        TrialConfig.model_validate({"eval": {"targets": targets}})
    error = caught.value.errors()[0]
    assert tuple(error["loc"]) == location and fragment in error["msg"], error


def test_target_metric_names():
    assert metrics.target_key("duke", metrics.MAP) == "duke/mAP"
    assert metrics.parse_camera_key("duke/cam/c08/q_mAP") == (8, "duke/q_mAP")
    assert metrics.parse_camera_key("duke/cam/c03/rank1") == (3, "duke/rank1")
    assert metrics.parse_camera_key("cam/c03/g_mAP") == (3, "g_mAP")
    assert metrics.parse_camera_key("duke/mAP") is None
    assert metrics.split_target_metric("duke/q_mAP") == ("duke", "q_mAP")
    assert metrics.split_target_metric("weakest_camera/q_mAP") == (None, "weakest_camera/q_mAP")
    assert metrics.split_target_metric("mAP") == (None, "mAP")


@pytest.mark.parametrize(
    "name, header",
    [
        ("mAP", "mAP"),
        ("duke/mAP", "duke mAP"),
        ("duke/rank1", "duke rank-1"),
        ("msmt-v2/weakest_g_mAP", "msmt-v2 weakest g-mAP"),
        ("duke/avg_q_mAP", "duke avg q-mAP"),
        ("duke/loss", None),  # not a table metric behind the label either
        ("duke/cam/c01/q_mAP", None),
        ("cam/mAP", None),  # a reserved label
        ("duke/", None),
        ("/mAP", None),
    ],
)
def test_table_metric_headers(name, header):
    assert metrics.table_metric_header(name) == header


def test_a_targets_weakest_camera_columns():
    assert metrics.target_weakest_metric("duke/weakest_q_mAP") == ("duke", "q_mAP")
    assert metrics.target_weakest_metric("duke/weakest_g_mAP") == ("duke", "g_mAP")
    assert metrics.target_weakest_metric("duke/mAP") is None
    assert metrics.target_weakest_metric("weakest_q_mAP") is None  # the trial's own dataset: analysis.summary's
