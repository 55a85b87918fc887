"""A bad ``continues`` is one error line at its YAML key and line, exit 2, nothing launched."""

from __future__ import annotations

import pytest

from tests.orchestrator.test_bad_inputs import assert_nothing_launched, run_launch

HEAD = "study: {name: s}\nbaseline:\n  train: {epochs: 2, lr_steps: [], warmup_epochs: 0}\nablation:\n  design: list\n  variants:\n"
SWA = "set: {train.swa.enabled: true}"

CASES = [
    (
        "names no variant",
        f"    - {{name: a}}\n    - {{name: b, continues: c, {SWA}}}\n",
        "spec.yaml:8: ablation.variants[1].continues: variant 'b' continues 'c', which is no variant of this study; variants: a, b",
    ),
    (
        "cycle",
        f"    - {{name: a, continues: b, {SWA}}}\n    - {{name: b, continues: a, {SWA}}}\n",
        "spec.yaml:7: ablation.variants[0].continues: variants continue each other in a cycle: 'a' -> 'b' -> 'a'",
    ),
    (
        "no cycles to run",
        "    - {name: a}\n    - {name: b, continues: a}\n",
        "spec.yaml:8: ablation.variants[1].continues: variant 'b' continues 'a' but runs no continuation epochs",
    ),
    (
        "another model",
        "    - {name: a}\n    - {name: b, continues: a, set: {train.swa.enabled: true, model.pooling: gem}}\n",
        "variant 'b' continues 'a' but sets model.pooling to 'gem' (parent: 'avg')",
    ),
    (
        "init_from by hand",
        "    - {name: a, set: {train.swa.enabled: true, train.init_from: 0123456789abcdef}}\n",
        "spec.yaml:7: ablation.variants[0].set['train.init_from']: train.init_from is set by a variant's 'continues'",
    ),
]


@pytest.mark.parametrize("name, variants, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_continuations(name, variants, fragment, tmp_path, monkeypatch):
    code, lines = run_launch(tmp_path, HEAD + variants, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert_nothing_launched(tmp_path)


def test_a_search_design_cannot_continue(tmp_path, monkeypatch):
    text = (
        "study: {name: s}\nablation:\n  design: optuna\n  variants: [{name: a, continues: b}]\n"
        "  search: {num_samples: 2, space: {train.lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}}}\n"
    )
    code, lines = run_launch(tmp_path, text, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:2: ablation: 'continues' needs a parent variant planned in advance; design 'optuna' samples its trials" in lines[0]
