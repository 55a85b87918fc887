"""ImageNet weights by pinned timm tag, and the weights' identity in the trial config.

No test downloads anything: the weight files are written by the tests, into a Hugging Face
cache layout or passed as files; the "offline" hub is an address that refuses or drops
connections.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from search_spaces import TrialConfig
from search_spaces.hashing import config_hash
from trainables.models import ReIDModel
from trainables.models import pretrained as pretrained_module
from trainables.models.checkpoint import load_checkpoint, save_checkpoint
from trainables.models.pretrained import PretrainedWeightsError, cached_file, create_pretrained_backbone, weights_file

TAG = "resnet10t.c3_in1k"


def write_weights(path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full timm state dict (classifier included, as on the hub) with recognisable values."""
    torch.manual_seed(seed)
    state = {k: v.clone().contiguous() for k, v in timm.create_model("resnet10t").state_dict().items()}
    save_file(state, str(path))
    return state


def fake_hub_cache(root, repo: str, state_seed: int = 0) -> dict[str, torch.Tensor]:
    """``<root>/models--org--name/{refs/main, snapshots/<rev>/model.safetensors}``: the hub cache layout."""
    folder = root / ("models--" + repo.replace("/", "--"))
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    return write_weights(snapshot / "model.safetensors", state_seed)


def test_a_cached_tag_loads_through_timm_without_the_classifier(tmp_path, monkeypatch):
    state = fake_hub_cache(tmp_path, "timm/" + TAG)
    monkeypatch.setattr(pretrained_module, "cached_file", lambda repo: cached_file(repo, cache_dir=tmp_path))
    monkeypatch.setattr(pretrained_module, "hub_answers", lambda *a: pytest.fail("a cached tag must not touch the network"))
    model = ReIDModel(backbone="resnet10t", num_classes=5, pretrained=TAG)
    loaded = model.backbone.state_dict()
    assert "fc.weight" not in loaded
    for key, value in loaded.items():
        if key in state:
            assert torch.equal(value, state[key]), key
    assert torch.equal(model.backbone.conv1[0].weight, state["conv1.0.weight"])
    assert model.build_kwargs["pretrained"] == TAG


def test_a_file_loads_through_timm_and_a_checkpoint_never_reloads_it(tmp_path):
    state = write_weights(tmp_path / "w.safetensors", seed=3)
    net = create_pretrained_backbone(TAG, tmp_path / "w.safetensors", num_classes=0, global_pool="")
    assert torch.equal(net.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])
    model = ReIDModel(backbone="resnet10t", num_classes=3)
    model.backbone.load_state_dict(net.state_dict())
    kwargs = {**model.build_kwargs, "pretrained": TAG}
    save_checkpoint(tmp_path / "c.pt", model, kwargs)
    reloaded, saved_kwargs = load_checkpoint(tmp_path / "c.pt")  # would download if the tag were kept
    assert saved_kwargs["pretrained"] is None
    assert torch.equal(reloaded.backbone.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a sandbox's or proxy's black hole)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.mark.parametrize("hub", ["refused", "silent", "no such host"])
def test_offline_fails_within_seconds_with_one_clear_line(monkeypatch, silent_server, hub):
    url = {"refused": "http://127.0.0.1:1", "silent": silent_server, "no such host": "http://hub.invalid"}[hub]
    monkeypatch.setattr(pretrained_module, "cached_file", lambda repo: None)
    monkeypatch.setattr(pretrained_module, "hub_url", lambda: url)
    started = time.perf_counter()
    with pytest.raises(PretrainedWeightsError) as err:
        weights_file(TAG, timeout=1.0)
    assert time.perf_counter() - started < 3.0
    message = str(err.value)
    assert "\n" not in message and TAG in message and "pretrained_path" in message and f"{url} did not answer within 1 s" in message


def test_an_answering_hub_is_not_offline(silent_server):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    assert pretrained_module.hub_answers(f"http://127.0.0.1:{server.server_port}", 2.0) is None
    thread.join(5)
    server.server_close()
    assert pretrained_module.hub_answers(silent_server, 0.5) is not None


def test_unknown_tags_list_the_known_ones():
    with pytest.raises(PretrainedWeightsError, match="unknown timm weight tag 'resnet10t.nope'; tags of resnet10t: resnet10t.c3_in1k"):
        weights_file("resnet10t.nope")


def test_weights_are_part_of_the_trial_identity(tmp_path):
    base = TrialConfig.model_validate({"model": {"backbone": "resnet50"}})
    tagged = TrialConfig.model_validate({"model": {"backbone": "resnet50", "pretrained": True}})
    assert tagged.model.pretrained == "resnet50.tv_in1k"  # true resolves to the pinned tag
    assert config_hash(tagged) == config_hash(
        TrialConfig.model_validate({"model": {"backbone": "resnet50", "pretrained": "resnet50.tv_in1k"}})
    )
    assert config_hash(tagged) != config_hash(base)
    assert config_hash(tagged) != config_hash(
        TrialConfig.model_validate({"model": {"backbone": "resnet50", "pretrained": "resnet50.a1_in1k"}})
    )

    weights = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(2)}, weights)
    first = TrialConfig.model_validate({"model": {"pretrained_path": str(weights)}})
    assert first.model.pretrained_sha256 is not None and len(first.model.pretrained_sha256) == 64
    again = TrialConfig.model_validate(first.model_dump(mode="json"))  # a worker re-validates: same file, same config
    assert config_hash(again) == config_hash(first)
    torch.save({"a": torch.ones(2)}, weights)  # same path, other weights: another trial
    other = TrialConfig.model_validate({"model": {"pretrained_path": str(weights)}})
    assert config_hash(other) != config_hash(first)
    with pytest.raises(ValueError, match="does not match"):
        TrialConfig.model_validate(first.model_dump(mode="json"))  # the file changed since planning


@pytest.mark.parametrize(
    "model, message",
    [
        ({"backbone": "resnet10t", "pretrained": True}, "no pinned weight tag for backbone 'resnet10t'"),
        ({"backbone": "resnet50", "pretrained": "resnet18.tv_in1k"}, "must be a weight tag of the backbone"),
        ({"backbone": "resnet50", "pretrained": True, "pretrained_path": "/w.pth"}, "not both"),
        ({"backbone": "hacnn", "last_stride": 1}, None),
        ({"last_stride": 3}, "less than or equal to 2"),
    ],
)
def test_bad_weight_and_stride_settings(model, message):
    if message is None:
        TrialConfig.model_validate({"model": model})  # the model checks refuse it (see test_bad_inputs)
        return
    with pytest.raises(ValueError, match=message):
        TrialConfig.model_validate({"model": model})
