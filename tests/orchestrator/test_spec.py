import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec
from orchestrator.yaml_source import load_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_quickstart_spec_loads_and_expands():
    loaded = load_spec(EXAMPLES / "quickstart.yaml")
    assert loaded.name == "quickstart"
    assert len(loaded.trials) >= 4
    assert {t.variant for t in loaded.trials} >= {"baseline"}


def test_yaml_lines_are_indexed(tmp_path):
    path = write(
        tmp_path,
        """
        study:
          name: x
        ablation:
          variants:
            - name: a
              set: {model.neck: l2norm}
        """,
    )
    source = load_yaml(path)
    assert source.lines[("study", "name")] == 2
    assert source.lines[("ablation", "variants", 0)] == 5
    assert source.lines[("ablation", "variants", 0, "set", "model.neck")] == 6
    assert source.line_of(("ablation", "variants", 0, "set", "model.neck", "deeper")) == 6


@pytest.mark.parametrize(
    "text, line, key, fragment",
    [
        ("study:\n  name: x\n  colour: red\n", 3, "study.colour", "unknown key 'colour'"),
        ("study:\n  description: no name\n", None, "study.name", "required key is missing"),
        ("study:\n  name: x\nbaseline:\n  train:\n    epochs: many\n", 5, "baseline.train.epochs", "valid integer"),
        ("study:\n  name: 'bad name!'\n", 2, "study.name", "should match pattern"),
        ("study:\n  name: x\nresources:\n  gpus_per_trial: -1\n", 4, "resources.gpus_per_trial", "greater than or equal to 0"),
        (
            "study:\n  name: x\nablation:\n  design: grid\n  axes:\n    loss.triplet.margn: [0.1]\n",
            6,
            "ablation.axes['loss.triplet.margn'][0]",
            "did you mean 'loss.triplet.margin'",
        ),
        (
            "study:\n  name: x\nablation:\n  variants:\n    - name: v\n      set:\n        loss.triplet.margin: -1\n",
            7,
            "ablation.variants[0].set['loss.triplet.margin']",
            "greater than or equal to 0",
        ),
        ("study:\n  name: x\nablation:\n  design: sobol\n", 4, "ablation.design", "unknown design 'sobol'"),
        ("- just\n- a list\n", 1, None, "must be a YAML mapping"),
        ("study: {name: [x\n", 2, None, "invalid YAML"),
    ],
)
def test_bad_specs_name_key_and_line(tmp_path, text, line, key, fragment):
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    err = caught.value
    assert fragment in str(err)
    assert err.file == str(path)
    assert err.key == key
    if line is not None:
        assert err.line == line
        assert str(err).startswith(f"{path}:{line}: ")
    assert "\n" not in str(err)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")


def test_default_output_locations(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_spec(write(tmp_path, "study:\n  name: s1\n"))
    assert loaded.spec.study_dir() == tmp_path / "studies" / "s1"
    assert loaded.spec.store_uri() == str(tmp_path / "studies" / "s1" / "results")
    assert [t.variant for t in loaded.trials] == ["baseline"]
