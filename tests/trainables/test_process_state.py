"""A reused worker starts each trial as a fresh one would: torch's switches put back."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from trainables import process_state


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    gc.unfreeze()  # restore() froze the test process's objects; give them back to the collector


def test_restore_undoes_every_switch_a_trial_may_change():
    defaults = process_state.snapshot()
    try:
        torch.set_num_threads(max(1, defaults["threads"] + 1))
        torch.set_grad_enabled(not defaults["grad_enabled"])
        torch.set_default_dtype(torch.float64)
        torch.use_deterministic_algorithms(not defaults["deterministic"], warn_only=True)
        torch.set_float32_matmul_precision("medium" if defaults["float32_matmul_precision"] != "medium" else "high")
        torch.backends.cudnn.enabled = not defaults["cudnn_enabled"]
        torch.backends.cudnn.benchmark = not defaults["cudnn_benchmark"]
        torch.backends.cudnn.deterministic = not defaults["cudnn_deterministic"]
        torch.backends.cudnn.allow_tf32 = not defaults["cudnn_allow_tf32"]
        torch.backends.mkldnn.enabled = not defaults["mkldnn_enabled"]
        changed = process_state.snapshot()
        assert all(changed[key] != defaults[key] for key in defaults if key != "deterministic_warn_only"), changed
        process_state.restore(defaults)
        assert process_state.snapshot() == defaults
    finally:
        process_state.restore(defaults)


def test_the_process_defaults_are_taken_before_any_trial():
    # Imported by the trainable, before any trial of the worker runs.
    assert process_state.PROCESS_DEFAULTS["grad_enabled"] is True
    assert process_state.PROCESS_DEFAULTS["default_dtype"] == torch.float32


class Node:
    other: "Node"


def _dropped_cycle() -> weakref.ref:
    """A cycle like a finished trial's (the trainer and its hooks refer to each other), dropped."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_each_trials_cycles_are_freed_while_the_workers_own_objects_stay_frozen():
    gc.disable()  # only restore() may collect here
    try:
        first = _dropped_cycle()
        assert first() is not None
        process_state.restore()
        assert first() is None
        frozen = gc.get_freeze_count()
        assert frozen > 0  # the survivors (imports, this test) are out of the collector's way
        second = _dropped_cycle()  # made after the freeze: the next trial's garbage
        process_state.restore()
        assert second() is None
    finally:
        gc.enable()
