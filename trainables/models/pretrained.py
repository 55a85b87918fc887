"""ImageNet weights through timm's own loading, pinned by tag, failing fast where offline.

``model.pretrained: resnet50.tv_in1k`` names one set of weights exactly: timm's tag for
torchvision's ImageNet ResNet-50 (the weights Bag of Tricks starts from; timm's untagged
``resnet50`` is a different training). The file comes from the Hugging Face hub cache when it
is there; otherwise it is downloaded once into that cache (``HF_HUB_CACHE``) where the machine
reaches the hub. Where it does not, :func:`weights_file` fails within ``timeout`` seconds with
one line saying what to do, instead of hanging in the hub client's retries (a minute of
backoff on a failed name lookup): one HTTP request to the hub, through the environment's
proxies, must be answered first.

The model is then built by ``timm.create_model(tag, pretrained=True)`` with the file passed
through ``pretrained_cfg_overlay`` -- timm's own loader, so its per-model filters (classifier
removal for ``num_classes=0``, key remapping) apply exactly as in timm.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

#: Seconds to wait for the hub to answer before giving up.
CONNECT_TIMEOUT = 5.0
#: Weight files of a timm hub repository, in the order timm itself prefers them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class PretrainedWeightsError(RuntimeError):
    """Weights that cannot be found or fetched; the message is one line saying what to do."""


def pretrained_cfg(tag: str):
    """timm's pretrained config of a weight tag, or None when timm does not know the tag."""
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(tag) if "." in tag else None
    except RuntimeError:  # timm: "Invalid pretrained tag"
        return None


def hub_repo(tag: str) -> str:
    """The Hugging Face repository of a timm weight tag (``timm/resnet50.tv_in1k``)."""
    cfg = pretrained_cfg(tag)
    if cfg is None:
        import timm

        arch = tag.split(".")[0]
        known = timm.list_pretrained(f"{arch}.*")
        raise PretrainedWeightsError(f"unknown timm weight tag '{tag}'; tags of {arch}: {', '.join(known) or 'none'}")
    if not cfg.hf_hub_id:
        raise PretrainedWeightsError(f"timm weight tag '{tag}' is not on the Hugging Face hub; use model.pretrained_path with a local file")
    return cfg.hf_hub_id


def cached_file(repo: str, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The repository's weight file in the local hub cache (default ``HF_HUB_CACHE``), or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in WEIGHT_FILES:
        found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
        if isinstance(found, str):
            return Path(found)
    return None


def hub_url() -> str:
    """The hub endpoint a download talks to (``HF_ENDPOINT``, default https://huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_answers(url: str, timeout: float) -> str | None:
    """None when an HTTP request to ``url`` gets any answer within ``timeout`` seconds (through
    the environment's proxies, as the download would), else why not. A bare TCP connect is no
    test: a sandbox or proxy may accept connections it never answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # an HTTP error status is an answer: the hub is there
    except Exception as err:  # noqa: BLE001 - DNS, refused, timeout, TLS: all mean "not here"
        reason = getattr(err, "reason", err)
        return f"{type(reason).__name__}: {reason}"[:160]


def weights_file(tag: str, timeout: float = CONNECT_TIMEOUT) -> Path:
    """The local file of ``tag``'s weights: from the hub cache, else downloaded into it."""
    repo = hub_repo(tag)
    found = cached_file(repo)
    if found is not None:
        return found
    url = hub_url()
    advice = (
        f"fetch them where there is internet (python -c \"import timm; timm.create_model('{tag}', pretrained=True)\") "
        "and copy the Hugging Face cache here, or set model.pretrained_path to a local file"
    )
    problem = hub_answers(url, timeout)
    if problem is not None:
        raise PretrainedWeightsError(
            f"cannot download ImageNet weights '{tag}': {url} did not answer within {timeout:g} s "
            f"({problem}; no internet?) and they are not in the Hugging Face cache; {advice}"
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError

    last: Exception | None = None
    for filename in WEIGHT_FILES:
        try:
            return Path(hf_hub_download(repo, filename, etag_timeout=max(timeout, 10.0)))
        except EntryNotFoundError as err:
            last = err
        except Exception as err:  # noqa: BLE001 - the hub client raises many kinds; all mean "not fetched"
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise PretrainedWeightsError(f"cannot download ImageNet weights '{tag}' from {repo}: {first[:200]}; {advice}") from None
    raise PretrainedWeightsError(f"no weight file ({', '.join(WEIGHT_FILES)}) in {repo}: {last}")


def create_pretrained_backbone(tag: str, file: str | os.PathLike[str] | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model(tag, pretrained=True, **kwargs)`` loading ``file`` (default: the
    tag's cached or downloaded weights) through timm's own loader."""
    import timm

    source = Path(file) if file is not None else weights_file(tag)
    return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay={"file": str(source)}, **kwargs)
