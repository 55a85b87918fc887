"""Each row's contrast (``compare_to``): defaults per design, explicit names, null, and the
errors that point at the YAML key; rows written by the user that would vanish as duplicates."""

from __future__ import annotations

import textwrap

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec
from search_spaces import AblationSpec, Recipe, expand
from search_spaces.contrasts import reference_row


def contrasts(ablation: dict) -> dict[str, str | None]:
    trials = expand(Recipe(), AblationSpec.model_validate(ablation))
    return {trial.variant: trial.contrast for trial in trials}


def test_one_at_a_time_rows_are_compared_with_the_baseline():
    got = contrasts(
        {
            "design": "one_at_a_time",
            "axes": {"loss.triplet.margin": [0.1, 0.5]},
            "variants": [{"name": "+re", "set": {"augment.random_erasing.p": 0.5}}],
        }
    )
    assert got == {"baseline": None, "loss.triplet.margin=0.1": "baseline", "loss.triplet.margin=0.5": "baseline", "+re": "baseline"}


def test_a_list_compares_with_its_first_row_unless_a_row_names_another():
    got = contrasts(
        {
            "design": "list",
            "variants": [
                {"name": "softmax", "set": {"loss.triplet.kind": "none"}},
                {"name": "softmax+re", "set": {"loss.triplet.kind": "none", "augment.random_erasing.p": 0.5}},
                {"name": "triplet", "compare_to": "softmax"},
                {"name": "triplet+re", "set": {"augment.random_erasing.p": 0.5}, "compare_to": "triplet"},
            ],
        }
    )
    assert got == {"softmax": None, "softmax+re": "softmax", "triplet": "softmax", "triplet+re": "triplet"}


def test_null_makes_a_reference_and_the_block_sets_the_default():
    got = contrasts(
        {
            "design": "list",
            "compare_to": "b",
            "variants": [
                {"name": "a", "set": {"loss.triplet.margin": 0.2}},
                {"name": "b", "set": {"loss.triplet.margin": 0.4}},
                {"name": "c", "set": {"loss.triplet.margin": 0.6}, "compare_to": None},
                {"name": "d", "set": {"loss.triplet.margin": 0.8}, "compare_to": "a"},
            ],
        }
    )
    assert got == {"a": "b", "b": None, "c": None, "d": "a"}


def test_leave_one_out_compares_with_the_row_that_switches_nothing_off():
    got = contrasts(
        {
            "design": "leave_one_out",
            "parts": [
                {"name": "margin", "set": {"loss.triplet.margin": 0.5}},
                {"name": "erasing", "set": {"augment.random_erasing.p": 0.5}},
            ],
            "variants": [
                {"name": "w/o margin", "without": ["margin"]},
                {"name": "w/o erasing", "without": ["erasing"]},
                {"name": "all", "without": []},
            ],
        }
    )
    assert got == {"w/o margin": "all", "w/o erasing": "all", "all": None}


def test_reference_row_rule():
    assert reference_row(["x", "baseline", "y"], "list") == "baseline"
    assert reference_row(["a", "b"], "leave_one_out", {"a": ["p"], "b": []}) == "b"
    assert reference_row(["a", "b"], "grid") == "a"
    assert reference_row([], "list") is None


def spec_text(variants: str, extra: str = "") -> str:
    return (
        textwrap.dedent(
            """
        study:
          name: s
        ablation:
          design: list
        {extra}  variants:
        {variants}
        """
        )
        .format(variants=textwrap.indent(textwrap.dedent(variants).strip("\n"), "    "), extra=extra)
        .lstrip("\n")
    )


@pytest.mark.parametrize(
    "variants, extra, line, key, fragment",
    [
        (
            """
            - name: a
            - name: b
              set: {loss.triplet.margin: 0.5}
              compare_to: nope
            """,
            "",
            9,
            "ablation.variants[1].compare_to",
            "names 'nope', which is no variant of this study; variants: a, b",
        ),
        (
            """
            - name: a
            - name: b
              set: {loss.triplet.margin: 0.5}
              compare_to: b
            """,
            "",
            9,
            "ablation.variants[1].compare_to",
            "'b' is compared with itself",
        ),
        (
            """
            - name: a
              compare_to: b
            - name: b
              set: {loss.triplet.margin: 0.5}
              compare_to: a
            """,
            "",
            7,
            "ablation.variants[0].compare_to",
            "in a cycle: 'a' -> 'b' -> 'a'",
        ),
        (
            """
            - name: a
            - name: b
              set: {loss.triplet.margin: 0.5}
            """,
            "  compare_to: zzz\n",
            5,
            "ablation.compare_to",
            "ablation.compare_to names 'zzz'",
        ),
    ],
)
def test_bad_contrasts_name_their_key_and_line(tmp_path, variants, extra, line, key, fragment):
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text(variants, extra), encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert (err.value.line, err.value.key) == (line, key)
    assert fragment in str(err.value)


def test_a_written_variant_equal_to_another_row_is_refused_naming_both(tmp_path):
    # APRA is off in the baseline, so its lambda changes nothing: the row would vanish.
    path = tmp_path / "spec.yaml"
    path.write_text(
        spec_text(
            """
            - name: baseline
            - name: apra lambda
              set: {model.apra.lam: 0.05}
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert (err.value.line, err.value.key) == (7, "ablation.variants[1]")
    assert "'apra lambda' resolves to the same trial config as 'baseline'" in str(err.value)


def test_rows_a_design_generates_may_coincide_and_run_once():
    # A grid over a switch and its parameter: the off rows are one config, planned once.
    trials = expand(
        Recipe(),
        AblationSpec.model_validate({"design": "grid", "axes": {"model.apra.stages": [[], [1]], "model.apra.lam": [0.01, 0.1]}}),
    )
    assert len(trials) == 3 and len({t.config_hash for t in trials}) == 3
    assert sum(t.config.model.apra.stages == () or t.config.model.apra.stages == [] for t in trials) == 1


def test_parts_and_search_designs_take_no_compare_to():
    with pytest.raises(Exception, match="a part has no 'compare_to'"):
        expand(
            Recipe(),
            AblationSpec.model_validate(
                {
                    "design": "leave_one_out",
                    "parts": [{"name": "GeM", "set": {"model.pooling": "avg"}, "compare_to": "x"}],
                    "variants": [{"name": "x"}],
                }
            ),
        )
    with pytest.raises(ValueError, match="samples its rows"):
        AblationSpec.model_validate(
            {
                "design": "optuna",
                "compare_to": "x",
                "search": {"num_samples": 2, "space": {"train.lr": {"type": "uniform", "low": 0.001, "high": 0.01}}},
            }
        )
