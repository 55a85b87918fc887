"""Every paper preset for a real dataset, run short on the Market-layout fixture: one trial of
its most complete row, at its own recipe but 1 epoch (SWA: one 1-epoch cycle), 64x32 input,
a 4 x 4 batch and no ImageNet download (the tests never fetch weights). Full training is for
GPUs; this checks that each preset's recipe builds, trains and evaluates end to end."""

from __future__ import annotations

import pytest

from orchestrator.preset_library import preset_text
from orchestrator.spec import load_spec
from search_spaces import TrialConfig
from search_spaces.hashing import config_hash
from trainables.data.datasets import load_reid_data
from trainables.trial import RuntimeOptions, run_trial

pytestmark = pytest.mark.slow

# preset -> the row to run (the one with the most parts on)
ROWS = {
    "apra_table2": "+APRA",
    "apra_explore_market_to_duke": "+APRA",
    "dranet_table4": "Baseline+RCAM+RSAM",
    "robust_reid_table2": "Robust-ReID",
    "robust_reid_table3": "3 +LR scheme",
    "implicit_attention_table1": "Full Body (triplet)",
    "implicit_attention_fig3": "U.B. p=0.5",
}


def shortened(config: TrialConfig) -> TrialConfig:
    tree = config.model_dump(mode="json")
    tree["dataset"].update(height=64, width=32)
    tree["model"].update(pretrained=False, pretrained_sha256=None)
    tree["train"].update(epochs=1, ids_per_batch=4, images_per_id=4, warmup_epochs=0, lr_steps=[], eval_every=1)
    if tree["train"]["swa"]["enabled"]:
        tree["train"]["swa"].update(cycles=1, cycle_epochs=1, swag_samples=2)
    return TrialConfig.model_validate(tree)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_preset_row_trains_and_evaluates_on_the_market_fixture(name, tiny_market, tiny_duke, tmp_path):
    path = tmp_path / f"{name}.yaml"
    path.write_text(preset_text(name, str(tiny_market), target_root=str(tiny_duke)), encoding="utf-8")
    trials = load_spec(path).trials
    trial = next(t for t in trials if t.variant == ROWS[name])
    config = shortened(trial.config)
    data = load_reid_data(config.dataset, augment=config.augment)
    runtime = RuntimeOptions(threads=1, checkpoint_path=str(tmp_path / "{hash}.pt"))
    if config.train.init_from:  # a continued row (Robust-ReID Table 3): its parent, shortened, first
        parent = shortened(next(t for t in trials if t.config_hash == config.train.init_from).config)
        run_trial(parent, data, report=lambda m: None, runtime=runtime)
        config = TrialConfig.model_validate(
            {**config.model_dump(mode="json"), "train": {**config.train.model_dump(mode="json"), "init_from": config_hash(parent)}}
        )
    final = run_trial(config, data, report=lambda m: None, runtime=runtime)
    assert 0.0 < final["mAP"] <= 1.0 and final["rank1"] <= final["rank5"]
    if config.augment.implicit_attention.is_active():
        assert 0.0 < final["composite_partner_share"] <= 1.0 and 0.0 <= final["composite_rate"] <= final["composite_partner_share"]
    if config.loss.center.weight > 0:
        assert final["loss_center"] > 0
    for target in config.eval.targets:  # evaluated on the Duke-layout fixture's 8 cameras
        assert 0.0 < final[f"{target.label}/mAP"] <= 1.0 and f"{target.label}/cam/c08/q_mAP" in final
