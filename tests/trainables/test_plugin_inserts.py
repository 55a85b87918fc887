"""Inserted modules from plugins are built, trained and reloaded like APRA and DRANet: their
section's parameters become module kwargs, declared data needs are passed, their loss terms
join the objective at their section's weight, checkpoints name and reload their plugin."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from pydantic import Field, ValidationError

from search_spaces import TrialConfig
from search_spaces.plugins import PluginError, load_plugin, loaded_plugins, unload_plugin
from search_spaces.registry import loading_plugin
from search_spaces.trial_config import AugmentSection, LossSection, StagedInsert
from trainables.data.augment import AUGMENTATIONS, BatchAugmentation, register_augmentation
from trainables.losses import LOSSES, LossTerm, register_loss
from trainables.models import ReIDModel
from trainables.models.checkpoint import load_checkpoint, save_checkpoint
from trainables.models.inserts import INSERTS, InsertedModule, LossTargets, ModuleOutput, register_insert
from trainables.trial import build_augmenter, build_objective, model_kwargs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins"


@pytest.fixture
def se_plugin():
    plugin = load_plugin(str(EXAMPLE / "se_block.py"))
    yield plugin
    for name in list(loaded_plugins()):
        unload_plugin(name)


class CameraProbeConfig(StagedInsert):
    LOSS_WEIGHTS: ClassVar[dict[str, str]] = {"loss_probe": "weight"}
    weight: float = Field(0.5, ge=0.0)


class CameraProbe(InsertedModule):
    """Identity on the features; a camera classifier on their pooled mean as its loss term."""

    needs = ("num_cameras",)

    def __init__(self, *, channels: int, num_cameras: int):
        super().__init__()
        self.head = torch.nn.Linear(channels, num_cameras)

    def forward(self, x):
        if self.training:
            self._aux = self.head(x.mean(dim=(2, 3)))
        return x

    def loss_terms(self, output: ModuleOutput, targets: LossTargets):
        return {"loss_probe": torch.nn.functional.cross_entropy(output.aux, targets.cameras)}


@pytest.fixture
def probe():
    with loading_plugin("probe_plugin"):
        register_insert("probe", config=CameraProbeConfig)(CameraProbe)
    yield
    unload_plugin("probe_plugin")
    assert "probe" not in INSERTS


def test_the_example_plugin_is_placed_after_each_stage_it_names(se_plugin):
    config = TrialConfig.model_validate({"model": {"se": {"stages": [1, 3], "reduction": 4}}})
    kwargs = model_kwargs(config, num_classes=5)
    assert [(s["module"], s["stage"], s["kwargs"]) for s in kwargs["inserts"]] == [("se", 1, {"reduction": 4}), ("se", 3, {"reduction": 4})]
    model = ReIDModel(**kwargs).train()
    out = model(torch.randn(4, 3, 64, 32))
    assert out.logits.shape == (4, 5) and [m.name for m in out.modules] == ["se", "se"]
    assert config.plugins == {"se_block": se_plugin.identity}


def test_a_plugin_module_gets_its_data_needs_and_its_loss_term_is_weighted(probe):
    config = TrialConfig.model_validate({"model": {"probe": {"stages": [2], "weight": 0.25}}})
    kwargs = model_kwargs(config, num_classes=4, num_cameras=3)
    assert kwargs["inserts"] == [{"module": "probe", "stage": 2, "kwargs": {"num_cameras": 3}}]
    model = ReIDModel(**kwargs).train()
    objective = build_objective(config)
    labels, cameras = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 0])
    out = model(torch.randn(4, 3, 64, 32))
    terms = objective(out, labels, cameras)
    probe_loss = torch.nn.functional.cross_entropy(out.aux_logits[0], cameras)
    assert terms.parts["loss_probe"] == pytest.approx(probe_loss.item(), rel=1e-5)
    assert terms.parts["loss"] == pytest.approx(terms.parts["loss_id"] + terms.parts["loss_triplet"] + 0.25 * probe_loss.item(), rel=1e-5)
    unweighted = type(objective)()  # a term without a weight is an error, not silently dropped
    with pytest.raises(ValueError, match="contributes the loss term 'loss_probe' but no weight"):
        unweighted(out, labels, cameras)


def test_a_checkpoint_names_its_plugin_and_reloads_it_strictly(se_plugin, tmp_path):
    config = TrialConfig.model_validate({"model": {"se": {"stages": [2]}}})
    model = ReIDModel(**model_kwargs(config, num_classes=3))
    path = save_checkpoint(tmp_path / "se.pt", model)
    assert torch.load(path, weights_only=True)["plugins"] == {"se_block": se_plugin.identity}
    unload_plugin("se_block")
    reloaded, _ = load_checkpoint(path, plugin_dirs=[EXAMPLE])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
    unload_plugin("se_block")
    edited = tmp_path / "edited"
    edited.mkdir()
    shutil.copy(EXAMPLE / "se_block.py", edited / "se_block.py")
    with open(edited / "se_block.py", "a", encoding="utf-8") as handle:
        handle.write("# edited\n")
    with pytest.raises(PluginError, match="is sha256:.* but the trial was planned with"):
        load_checkpoint(path, plugin_dirs=[edited])


@pytest.mark.slow  # a real one-epoch trial in a fresh interpreter (~30 s on 2 cores)
def test_python_dash_m_trainables_loads_the_plugins_a_trial_file_names(tiny_market, tmp_path):
    trial = tmp_path / "trial.yaml"
    trial.write_text(
        f"plugins: ['{EXAMPLE / 'se_block.py'}']\n"
        f"dataset: {{name: market1501, root: '{tiny_market}', height: 64, width: 32}}\n"
        "model: {se: {stages: [1]}}\n"
        "train: {epochs: 1, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: []}\n",
        encoding="utf-8",
    )
    result = subprocess.run([sys.executable, "-m", "trainables", str(trial), "--threads", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "epoch=1" in result.stdout and "mAP=" in result.stdout
    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('missing dependency')\n", encoding="utf-8")
    trial.write_text(f"plugins: ['{broken}']\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainables", str(trial)], capture_output=True, text=True)
    assert result.returncode == 2 and f"{broken}:1:" in result.stderr and "missing dependency" in result.stderr


def test_a_backbone_registered_by_a_plugin_gives_its_trials_the_plugin_identity(tmp_path):
    (tmp_path / "lab_backbone.py").write_text(
        "from timm.models import register_model\n"
        "from timm.models.resnet import resnet10t\n\n\n"
        "@register_model\n"
        "def lab_resnet(pretrained=False, **kwargs):\n"
        "    return resnet10t(pretrained=False, **kwargs)\n",
        encoding="utf-8",
    )
    try:
        plugin = load_plugin(str(tmp_path / "lab_backbone.py"))
        assert plugin.backbones == ("lab_resnet",)
        assert TrialConfig.model_validate({"model": {"backbone": "lab_resnet"}}).plugins == {"lab_backbone": plugin.identity}
        assert TrialConfig.model_validate({"model": {"backbone": "resnet10t"}}).plugins == {}
        assert (
            ReIDModel(**model_kwargs(TrialConfig.model_validate({"model": {"backbone": "lab_resnet"}}), num_classes=3)).feature_dim == 512
        )
    finally:
        unload_plugin("lab_backbone")


class InvertConfig(AugmentSection):
    p: float = Field(0.5, ge=0.0, le=1.0)


class Invert(BatchAugmentation):
    """Negate each image with probability ``p``."""

    def __init__(self, *, p: float):
        self.p = p

    def __call__(self, x, generator):
        chosen = torch.rand(x.shape[0], generator=generator, device=x.device) < self.p
        return torch.where(chosen.view(-1, 1, 1, 1), -x, x)


def test_a_plugin_augmentation_is_configured_by_its_section_and_applied_last():
    with loading_plugin("invert_plugin"):
        register_augmentation("invert", config=InvertConfig)(Invert)
    try:
        on = TrialConfig.model_validate({"augment": {"flip": False, "pad": 0, "invert": {"enabled": True, "p": 1.0}}})
        off = TrialConfig.model_validate({"augment": {"flip": False, "pad": 0, "invert": {"enabled": False, "p": 1.0}}})
        assert off == TrialConfig.model_validate({"augment": {"flip": False, "pad": 0}})  # off = absent
        images = torch.randint(0, 256, (3, 16, 8, 3), dtype=torch.uint8)
        plain = build_augmenter(off, torch.device("cpu"))(images)
        inverted = build_augmenter(on, torch.device("cpu"))(images)
        assert torch.allclose(inverted, -plain)
        with pytest.raises(ValidationError, match="augment.invert.p"):
            TrialConfig.model_validate({"augment": {"invert": {"enabled": True, "p": 2.0}}})
    finally:
        unload_plugin("invert_plugin")
    assert "invert" not in AUGMENTATIONS


class NormConfig(LossSection):
    target: float = Field(1.0, gt=0.0)


class FeatureNorm(LossTerm):
    """Squared distance of the features' L2 norms to ``target``."""

    def __init__(self, *, target: float):
        self.target = target

    def __call__(self, output, targets):
        return (output.features.float().norm(dim=1) - self.target).pow(2).mean()


def test_a_plugin_loss_term_joins_the_objective_at_its_weight():
    with loading_plugin("norm_plugin"):
        register_loss("norm", config=NormConfig)(FeatureNorm)
    try:
        config = TrialConfig.model_validate({"loss": {"norm": {"enabled": True, "weight": 0.5, "target": 2.0}}})
        assert TrialConfig.model_validate({"loss": {"norm": {"weight": 0.5}}}) == TrialConfig()  # off = absent
        model = ReIDModel(**model_kwargs(config, num_classes=2)).train()
        labels = torch.tensor([0, 0, 1, 1])
        out = model(torch.randn(4, 3, 64, 32))
        terms = build_objective(config)(out, labels)
        expected = (out.features.float().norm(dim=1) - 2.0).pow(2).mean().item()
        assert terms.parts["loss_norm"] == pytest.approx(expected, rel=1e-5)
        assert terms.parts["loss"] == pytest.approx(terms.parts["loss_id"] + terms.parts["loss_triplet"] + 0.5 * expected, rel=1e-5)
    finally:
        unload_plugin("norm_plugin")
    assert "norm" not in LOSSES


def test_a_plugin_dataset_reader_is_a_dataset_name_and_part_of_identity(tiny_market, tmp_path):
    from trainables.data.adapters import read_dataset

    (tmp_path / "lab_data.py").write_text(
        "from trainables.data.adapters import register_adapter\n"
        "from trainables.data.adapters.market_layout import read_market_layout\n\n\n"
        "@register_adapter('lab_market', description='the lab copy of a Market-layout set')\n"
        "def read_lab(root):\n"
        "    return read_market_layout('lab_market', root)\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="unknown dataset 'lab_market'; known: cuhk03np"):
        TrialConfig.model_validate({"dataset": {"name": "lab_market", "root": str(tiny_market)}})
    try:
        plugin = load_plugin(str(tmp_path / "lab_data.py"))
        config = TrialConfig.model_validate({"dataset": {"name": "lab_market", "root": str(tiny_market)}})
        assert config.plugins == {"lab_data": plugin.identity}
        assert len(read_dataset("lab_market", tiny_market).train) > 0
    finally:
        unload_plugin("lab_data")


def registered_inserts() -> list[str]:
    from search_spaces.trial_config import INSERT_SECTIONS

    return [*INSERT_SECTIONS.names(), "se"]  # the built-ins, and the example plugin's module


@pytest.mark.parametrize("name", registered_inserts())
@pytest.mark.parametrize("stage", [1, 3])
def test_every_registered_insert_trains_after_every_stage(name, stage, se_plugin):
    """The registry-wide check (timm's habit): each registered module, built from its own
    section switched on after a stage, keeps shapes and gives gradients through its terms."""
    from search_spaces.trial_config import INSERT_SECTIONS

    section = INSERT_SECTIONS.get(name).placed_at(stage)
    config = TrialConfig.model_validate({"model": {name: section.model_dump()}, "train": {"ids_per_batch": 2, "images_per_id": 2}})
    assert config.model.active_inserts()[name].placements() == (stage,)
    model = ReIDModel(**model_kwargs(config, num_classes=2, num_cameras=2)).train()
    out = model(torch.randn(4, 3, 64, 32))
    terms = build_objective(config)(out, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
    terms.total.backward()
    inserted = [m for m in model.inserted if m.insert_name == name]
    assert inserted and all(p.grad is not None for m in inserted for p in m.parameters() if p.requires_grad)


def test_a_plugin_module_after_a_missing_stage_is_a_problem_at_its_key(se_plugin):
    from trainables.compat import check_trial_config

    problems = check_trial_config(TrialConfig.model_validate({"model": {"se": {"stages": [1, 9]}}}))
    assert [path for path, _ in problems] == ["model.se.stages"]
    assert "'resnet10t' has no stage 9; available stages: 0 (act1" in problems[0][1]
