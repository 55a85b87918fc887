"""Plugins named in a spec: loading, errors at the plugin's file and line, entry points, and
the identity a plugin gives the trials that use it (and only those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import load_spec
from search_spaces.plugins import ENTRY_POINT_GROUP, loaded_plugins, unload_plugin
from search_spaces.trial_config import INSERT_SECTIONS
from tests.cli import run_orchestrator

# A torch-free plugin: only a config section (what validation and identity need).
GATE = """
from pydantic import Field
from search_spaces.trial_config import StagedInsert, register_insert_section
{extra}

@register_insert_section("{name}")
class GateConfig(StagedInsert):
    width: int = Field(4, ge=1)
"""

SPEC = """\
plugins: [{plugins}]
study: {{name: gated}}
baseline:
  model: {{{name}: {{stages: [], width: 4}}}}
ablation:
  design: grid
  axes:
    model.{name}.stages: [[], [1], [2]]
    loss.triplet.margin: [0.3, 0.5]
"""


@pytest.fixture
def plugin_dir(tmp_path):
    yield tmp_path
    for name in list(loaded_plugins()):
        unload_plugin(name)


def write_study(folder: Path, name: str = "gate", extra: str = "", plugin_file: str = "gate_plugin.py") -> Path:
    (folder / plugin_file).write_text(GATE.format(name=name, extra=extra), encoding="utf-8")
    spec = folder / "study.yaml"
    spec.write_text(SPEC.format(plugins=plugin_file, name=name), encoding="utf-8")
    return spec


def hashes(spec: Path) -> dict[tuple, str]:
    trials = load_spec(spec).trials
    return {
        (
            t.config.model.active_inserts().get("gate") is not None and t.config.model.gate.stages,
            t.config.loss.triplet.margin,
        ): t.config_hash
        for t in trials
    }


def test_a_file_plugin_adds_its_section_and_its_identity_to_the_trials_using_it(plugin_dir):
    loaded = load_spec(write_study(plugin_dir))
    assert INSERT_SECTIONS.origin("gate") == "gate_plugin"
    assert len(loaded.trials) == 6
    using = [t for t in loaded.trials if "gate" in t.config.model.active_inserts()]
    assert len(using) == 4
    assert {tuple(t.config.plugins.items()) for t in using} == {(("gate_plugin", loaded.plugins[0].identity),)}
    assert all(t.config.plugins == {} for t in loaded.trials if t not in using)


def test_editing_the_plugin_changes_the_hashes_of_its_trials_only(plugin_dir):
    spec = write_study(plugin_dir)
    before = hashes(spec)
    unload_plugin("gate_plugin")
    (plugin_dir / "gate_plugin.py").write_text(GATE.format(name="gate", extra="# tuned"), encoding="utf-8")
    after = hashes(spec)
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {key for key in before if key[0]}  # every trial with the gate on, no other


def test_a_local_file_the_plugin_imports_is_part_of_its_identity(plugin_dir):
    (plugin_dir / "gate_helpers.py").write_text("WIDTH = 4\n", encoding="utf-8")
    spec = write_study(plugin_dir, extra="import gate_helpers  # noqa: F401")
    first = load_spec(spec).plugins[0]
    assert first.files == ("gate_plugin.py", "gate_helpers.py")
    unload_plugin("gate_plugin")
    (plugin_dir / "gate_helpers.py").write_text("WIDTH = 8\n", encoding="utf-8")
    assert load_spec(spec).plugins[0].identity != first.identity


def test_a_trial_without_the_plugin_keeps_the_hash_it_has_without_plugins(plugin_dir):
    spec = write_study(plugin_dir)
    plain = plugin_dir / "plain.yaml"
    plain.write_text("study: {name: plain}\nablation: {design: grid, axes: {loss.triplet.margin: [0.3, 0.5]}}\n", encoding="utf-8")
    without = {t.config.loss.triplet.margin: t.config_hash for t in load_spec(plain).trials}
    with_plugin = hashes(spec)
    assert {margin: h for (on, margin), h in with_plugin.items() if not on} == without


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("import os\n\nraise RuntimeError('no GPU here')\n", 3, "plugin 'broken' failed to import: RuntimeError: no GPU here"),
        ("x = 1\ndef f(:\n", 2, "plugin 'broken' failed to import: SyntaxError"),
        (
            "from search_spaces.trial_config import register_insert_section\nregister_insert_section('apra')(object)\n",
            2,
            "must subclass InsertSection",
        ),
    ],
)
def test_a_plugin_that_fails_to_import_is_one_error_at_its_file_and_line(plugin_dir, body, line, message):
    (plugin_dir / "broken.py").write_text(body, encoding="utf-8")
    spec = plugin_dir / "study.yaml"
    spec.write_text("plugins: [broken.py]\nstudy: {name: b}\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert (caught.value.file, caught.value.line) == (str(plugin_dir / "broken.py"), line)
    assert message in str(caught.value)
    assert "broken" not in loaded_plugins()


def test_a_plugin_registering_a_taken_name_fails_naming_the_holder(plugin_dir):
    spec = write_study(plugin_dir, name="apra")
    with pytest.raises(SpecError, match="inserted module 'apra' is already registered \\(by the package"):
        load_spec(spec)
    assert INSERT_SECTIONS.origin("apra") is None


def test_a_missing_plugin_file_is_an_error_at_the_spec_line(plugin_dir):
    spec = plugin_dir / "study.yaml"
    spec.write_text("study: {name: m}\nplugins:\n  - nowhere.py\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert caught.value.line == 3 and "plugin file not found" in str(caught.value)


def test_the_cli_reports_a_broken_plugin_in_one_line_with_exit_2(plugin_dir):
    (plugin_dir / "broken.py").write_text("import os\nundefined_name\n", encoding="utf-8")
    spec = plugin_dir / "study.yaml"
    spec.write_text("plugins: [broken.py]\nstudy: {name: b}\n", encoding="utf-8")
    result = run_orchestrator("validate", str(spec), cwd=plugin_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{plugin_dir / 'broken.py'}:2:" in lines[0] and "NameError" in lines[0]
    assert not (plugin_dir / "studies").exists()


def test_an_installed_entry_point_counts_by_package_name_and_version(plugin_dir, monkeypatch):
    package = plugin_dir / "site"
    (package / "lab_gate").mkdir(parents=True)
    (package / "lab_gate" / "__init__.py").write_text(GATE.format(name="labgate", extra=""), encoding="utf-8")
    info = package / "lab_gate-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-gate\nVersion: 1.2.0\n", encoding="utf-8")
    (info / "top_level.txt").write_text("lab_gate\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nlabgate = lab_gate\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(package))
    spec = plugin_dir / "study.yaml"
    spec.write_text(SPEC.format(plugins="labgate", name="labgate"), encoding="utf-8")
    trials = load_spec(spec).trials
    assert {tuple(t.config.plugins.items()) for t in trials} == {(), (("labgate", "lab-gate==1.2.0"),)}


def test_resume_finds_file_plugins_beside_the_original_spec(plugin_dir):
    from orchestrator.launch import load_for_resume
    from orchestrator.study_files import locate_study, record_launch

    spec = write_study(plugin_dir)
    planned = {t.config_hash for t in load_spec(spec).trials}
    unload_plugin("gate_plugin")
    study_dir = plugin_dir / "studies" / "gated"
    record_launch(
        study_dir,
        spec.read_text(),
        store_uri=str(study_dir / "results"),
        tracking_uri="sqlite:///x.db",
        address=None,
        spec_dir=str(plugin_dir),
    )
    resumed = load_for_resume(locate_study(str(study_dir)))
    assert {t.config_hash for t in resumed.trials} == planned


@pytest.mark.parametrize(
    ("drop", "where"),
    [
        # the section in the baseline (the spec's schema) and as an axis (a variant's change)
        ("", "baseline.model.gate: unknown key 'gate'"),
        ("baseline:\n  model: {gate: {stages: [], width: 4}}\n", "ablation.axes['model.gate.stages'][0]: unknown axis 'model.gate.stages'"),
    ],
)
def test_a_plugin_section_without_its_plugin_says_to_list_the_plugin(plugin_dir, drop, where):
    spec = write_study(plugin_dir)
    text = spec.read_text(encoding="utf-8").replace("plugins: [gate_plugin.py]\n", "")
    spec.write_text(text.replace(drop, "") if drop else text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    message = str(caught.value)
    assert where in message and message.endswith("if 'gate' is a plugin's section, list the plugin under the spec's top-level plugins:"), (
        message
    )
    # A misspelt built-in section gets its correction instead.
    spec.write_text("study: {name: s}\nbaseline:\n  model: {dranett: {stages: [1]}}\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"unknown key 'dranett'; did you mean 'model.dranet'\?$"):
        load_spec(spec)
