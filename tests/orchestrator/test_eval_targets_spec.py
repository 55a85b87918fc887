"""``eval.targets`` in a spec: checked by ``validate`` and ``launch`` like the training dataset
(one line at the target's YAML key, exit 2, nothing launched), and its table columns."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app


def study(market: Path, targets: str, extra: str = "") -> str:
    head = textwrap.dedent(
        f"""\
        study: {{name: s}}
        baseline:
          dataset: {{name: market1501, root: '{market}', height: 64, width: 32}}
          train: {{epochs: 1, warmup_epochs: 0, lr_steps: [], ids_per_batch: 8}}
          eval:
            targets:
        """
    )
    return head + textwrap.indent(textwrap.dedent(targets), "      ") + textwrap.dedent(extra)


def run(command: str, tmp_path: Path, text: str, monkeypatch) -> tuple[int, list[str], str]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, [command, str(tmp_path / "spec.yaml")])
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()], result.stdout


def bad_layout(tmp_path: Path) -> Path:
    (tmp_path / "half" / "query").mkdir(parents=True)
    return tmp_path / "half"


# (case, targets block (YAML list, line 7 on), extra spec text, expected fragment of the one error line)
CASES = [
    (
        "missing folder",
        "- {label: duke, name: dukemtmc, root: /no/such/duke}\n",
        "",
        "spec.yaml:7: baseline.eval.targets[0].root: evaluation target 'duke': dataset folder not found: /no/such/duke",
    ),
    (
        "second target's folder",
        "- {label: duke, name: dukemtmc, root: '{duke}'}\n- label: msmt\n  name: msmt17\n  root: /no/msmt\n",
        "",
        "spec.yaml:10: baseline.eval.targets[1].root: evaluation target 'msmt': dataset folder not found: /no/msmt",
    ),
    (
        "unknown adapter",
        "- {label: duke, name: duke_mtmc, root: '{duke}'}\n",
        "",
        "spec.yaml:7: baseline.eval.targets[0].name: unknown dataset 'duke_mtmc'; known: ",
    ),
    (
        "bad layout",
        "- {label: duke, name: dukemtmc, root: '{half}'}\n",
        "",
        "spec.yaml:7: baseline.eval.targets[0].root: evaluation target 'duke': dataset 'dukemtmc': missing folder(s) bounding_box_train, bounding_box_test",
    ),
    (
        "cameras beyond the reader's",
        "- {label: m2, name: market1501, root: '{duke}'}\n",
        "",
        "spec.yaml:7: baseline.eval.targets[0].root: evaluation target 'm2': dataset 'market1501': bad image file names",
    ),
    (
        "reserved label",
        "- {label: rank1, name: dukemtmc, root: '{duke}'}\n",
        "",
        "spec.yaml:7: baseline.eval.targets[0].label: target label 'rank1' is a metric or key name of its own",
    ),
    (
        "duplicate label",
        "- {label: duke, name: dukemtmc, root: '{duke}'}\n- {label: duke, name: market1501, root: '{duke}'}\n",
        "",
        "spec.yaml:6: baseline.eval.targets: target label 'duke' is used twice",
    ),
    (
        "column of no target",
        "- {label: duke, name: dukemtmc, root: '{duke}'}\n",
        "report:\n  metrics: [mAP, duke/mAP, msmt/mAP]\n",
        "spec.yaml:9: report.metrics[2]: column 'msmt/mAP' is of evaluation target 'msmt', which this study does not evaluate (its targets: duke)",
    ),
    (
        "unknown target column",
        "- {label: duke, name: dukemtmc, root: '{duke}'}\n",
        "report:\n  metrics: [duke/loss]\n",
        "spec.yaml:9: report.metrics: unknown metric 'duke/loss'; a table can show: rank1, ",
    ),
]


@pytest.mark.parametrize("command", ["validate", "launch"])
@pytest.mark.parametrize("case, targets, extra, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_targets_are_one_line_at_their_key(command, case, targets, extra, fragment, tiny_market, tiny_duke, tmp_path, monkeypatch):
    import ray

    targets = targets.replace("{duke}", str(tiny_duke)).replace("{half}", str(bad_layout(tmp_path)))
    code, lines, _ = run(command, tmp_path, study(tiny_market, targets, extra), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert not ray.is_initialized()
    assert not (tmp_path / "studies").exists()


def test_a_target_set_by_a_variant_is_checked_at_the_variant(tiny_market, tmp_path, monkeypatch):
    text = study(tiny_market, "[]\n").replace("    targets:\n      []\n", "    targets: []\n") + textwrap.dedent(
        """\
        ablation:
          design: list
          variants:
            - name: plain
            - name: transfer
              set:
                eval.targets: [{label: duke, name: dukemtmc, root: /no/duke}]
        """
    )
    code, lines, _ = run("validate", tmp_path, text, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert (
        "spec.yaml:13: ablation.variants[1].set['eval.targets'][0].root" in lines[0]
        and "evaluation target 'duke': dataset folder not found: /no/duke" in lines[0]
    )


def test_a_good_target_validates_and_plans_one_trial_per_seed(tiny_market, tiny_duke, tmp_path, monkeypatch):
    targets = f"- {{label: duke, name: dukemtmc, root: '{tiny_duke}'}}\n"
    extra = "report:\n  metrics: [rank1, mAP, duke/rank1, duke/mAP, duke/weakest_q_mAP]\n"
    code, lines, out = run("validate", tmp_path, study(tiny_market, targets, extra), monkeypatch)
    assert code == 0, lines
    assert "OK — study 's', design list, 1 variants, 1 trials" in out
