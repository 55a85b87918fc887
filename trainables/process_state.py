"""The process-wide state a trial may change, put back before the next trial in the same worker.

Ray Tune reuses a worker (and its imports of torch and timm) for the next trial of a study
(``reuse_actors``); the next trial must start as it would in a fresh process. A trial seeds its
own generators (``seed_everything``) and sets its thread count; what it or a plugin may change
on top -- torch's global switches, gradient mode, the default dtype -- is snapshotted when this
module is imported (before any trial runs) and restored by :func:`restore`, which also frees the
previous trial's memory and moves what is left (the worker's imports) out of the garbage
collector's reach (:func:`gc.freeze`).
"""

from __future__ import annotations

import gc
from typing import Any

import torch


def snapshot() -> dict[str, Any]:
    """Torch's process-wide switches a trial could leave changed."""
    return {
        "threads": torch.get_num_threads(),
        "grad_enabled": torch.is_grad_enabled(),
        "default_dtype": torch.get_default_dtype(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        # (covers CUDA matmul TF32; reading the legacy flag beside it is an error in torch 2.14)
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_enabled": torch.backends.cudnn.enabled,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
    }


PROCESS_DEFAULTS = snapshot()


def restore(defaults: dict[str, Any] = PROCESS_DEFAULTS) -> None:
    """Put torch's switches back to ``defaults`` and release the previous trial's memory."""
    torch.set_num_threads(defaults["threads"])
    torch.set_grad_enabled(defaults["grad_enabled"])
    torch.set_default_dtype(defaults["default_dtype"])
    torch.use_deterministic_algorithms(defaults["deterministic"], warn_only=defaults["deterministic_warn_only"])
    torch.set_float32_matmul_precision(defaults["float32_matmul_precision"])
    torch.backends.cudnn.enabled = defaults["cudnn_enabled"]
    torch.backends.cudnn.benchmark = defaults["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = defaults["cudnn_deterministic"]
    torch.backends.cudnn.allow_tf32 = defaults["cudnn_allow_tf32"]
    torch.backends.mkldnn.enabled = defaults["mkldnn_enabled"]
    gc.collect()  # the previous trial's model, optimizer and batches (the trainer and its hooks form cycles)
    # What survives is the worker's own: its imports (torch, timm, Ray: some 500k objects) and
    # Ray's session. Frozen, the collector no longer walks it: the collection above then costs
    # ~0 s instead of 0.2 s per trial, and so do the collector's own passes during training.
    gc.freeze()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
