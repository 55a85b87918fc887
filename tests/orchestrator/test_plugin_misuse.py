"""Plugins that misbehave while importing end the command in one line at their own file and line
(exit 2, nothing written), and a spec beside its plugin runs from the plugin's own folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.spec import load_spec
from search_spaces.plugins import loaded_plugins, unload_plugin
from tests.cli import run_orchestrator

REPO = Path(__file__).resolve().parents[2]
SPEC = "plugins: [{plugin}.py]\nstudy: {{name: p}}\nbaseline:\n  dataset: {{name: synthetic, height: 64, width: 32}}\n"


def write_plugin(folder: Path, name: str, body: str) -> Path:
    (folder / f"{name}.py").write_text(body, encoding="utf-8")
    spec = folder / "study.yaml"
    spec.write_text(SPEC.format(plugin=name), encoding="utf-8")
    return spec


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_plugin_calling_sys_exit_is_refused_at_its_line(tmp_path):
    spec = write_plugin(tmp_path, "exits", "import sys\n\nsys.exit(3)\n")
    result = run_orchestrator("validate", str(spec), cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"error: {tmp_path / 'exits.py'}:3: plugin 'exits' called sys.exit(3)")
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    "body",
    [
        "import time\n\nwhile True:\n    time.sleep(0.2)\n",
        # A plugin's own blanket except cannot swallow the deadline.
        "x = 0\nwhile True:\n    try:\n        x += 1\n    except Exception:\n        pass\n",
    ],
    ids=["sleeping", "swallowing"],
)
def test_a_plugin_import_that_never_returns_ends_at_the_timeout_naming_the_flag(tmp_path, body):
    spec = write_plugin(tmp_path, "stuck", body)
    started = time.monotonic()
    result = run_orchestrator("--plugin-timeout", "2", "validate", str(spec), cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"{tmp_path / 'stuck.py'}:" in line
    assert "did not finish importing within 2 s" in line and "--plugin-timeout SECONDS" in line
    assert elapsed < 60  # 2 s of import plus the command's own start on a loaded machine


def test_a_slow_plugin_import_passes_within_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_ORCH_PLUGIN_TIMEOUT", "30")
    spec = write_plugin(tmp_path, "slow_but_fine", "import time\n\ntime.sleep(0.3)\n")
    try:
        assert load_spec(spec).plugins[0].name == "slow_but_fine"
    finally:
        unload_plugin("slow_but_fine")


def test_a_plugin_replacing_a_timm_backbone_is_refused(tmp_path):
    body = (
        "from timm.models import register_model\n"
        "from timm.models.resnet import BasicBlock, _create_resnet\n\n\n"
        "@register_model\n"
        "def resnet10t(pretrained=False, **kwargs):\n"
        "    return _create_resnet('resnet18', pretrained, block=BasicBlock, layers=[1, 1, 1, 1], **kwargs)\n"
    )
    spec = write_plugin(tmp_path, "shadow", body)
    result = run_orchestrator("validate", str(spec), cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"error: {tmp_path / 'shadow.py'}:5: plugin 'shadow' registers backbone 'resnet10t', a name timm already has")


def test_the_example_spec_plans_from_its_own_folder_with_the_same_hashes(tmp_path):
    """The plugin identity hashes the local files imported during the plugin's import; torch's
    ``_classes`` module reports a relative ``__file__``, which once resolved against the working
    folder into a file that is not there."""
    folder = REPO / "examples" / "plugins"
    result = run_orchestrator("plan", "se_placement.yaml", "--format", "json", cwd=folder, timeout=300)
    assert result.returncode == 0, result.stderr
    from_own_folder = {t["variant"]: t["config_hash"] for t in json.loads(result.stdout)["trials"]}
    try:
        elsewhere = {t.variant: t.config_hash for t in load_spec(folder / "se_placement.yaml").trials}
        assert loaded_plugins()["se_block"].files == ("se_block.py",)
    finally:
        unload_plugin("se_block")
    assert from_own_folder == elsewhere and len(elsewhere) == 4
