"""``orchestrator k8s render`` of a study with a file plugin: the plugin's source rides in the
ConfigMap, mounted beside the spec in every Ray pod, and the spec the pods read plans the same
trials (same hashes, same plugin identity) as the local spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.k8s_render import SPEC_KEY, RenderOptions, render_manifests, write_manifests
from orchestrator.spec import load_spec
from search_spaces.plugins import loaded_plugins, unload_plugin
from tests.k8s.test_manifests import crd_schemas, documents_in, validate_documents  # noqa: F401 (fixture)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "se_placement.yaml"


@pytest.fixture
def loaded():
    yield load_spec(EXAMPLE)
    for name in list(loaded_plugins()):
        unload_plugin(name)


def mount_as_a_pod_sees_it(manifests: dict, folder: Path) -> Path:
    """Write the ConfigMap's keys where the pod's volume ``items`` put them."""
    data = manifests["configmap.yaml"]["data"]
    volume = manifests["rayjob.yaml"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"][0]
    for item in volume["configMap"]["items"]:
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]], encoding="utf-8")
    return folder / SPEC_KEY


def test_the_plugin_travels_in_the_configmap_and_plans_the_same_trials(loaded, crd_schemas, tmp_path):  # noqa: F811
    manifests = render_manifests(loaded, RenderOptions())
    write_manifests(manifests, tmp_path / "out")
    for _, documents in documents_in(tmp_path / "out"):
        validate_documents(documents, crd_schemas)
    source = (EXAMPLE.parent / "se_block.py").read_text(encoding="utf-8")
    assert source in manifests["configmap.yaml"]["data"].values()
    cluster = manifests["rayjob.yaml"]["spec"]["rayClusterSpec"]
    for pod in (cluster["headGroupSpec"], cluster["workerGroupSpecs"][0]):
        items = pod["template"]["spec"]["volumes"][0]["configMap"]["items"]
        assert {item["path"] for item in items} == {SPEC_KEY, "plugins/se_block/se_block.py"}

    local = {t.variant: (t.config_hash, t.config.plugins) for t in loaded.trials}
    unload_plugin("se_block")
    in_pod = load_spec(mount_as_a_pod_sees_it(manifests, tmp_path / "mount"))
    assert in_pod.plugins[0].root == (tmp_path / "mount" / "plugins" / "se_block").resolve()
    assert {t.variant: (t.config_hash, t.config.plugins) for t in in_pod.trials} == local


def test_a_study_without_plugins_renders_no_items(crd_schemas):  # noqa: F811
    manifests = render_manifests(load_spec(EXAMPLE.parents[1] / "quickstart.yaml"), RenderOptions())
    volume = manifests["rayjob.yaml"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"][0]
    assert "items" not in volume["configMap"] and list(manifests["configmap.yaml"]["data"]) == [SPEC_KEY]
