"""The metric and status names: one definition each, consistent with one another."""

from __future__ import annotations

import pytest

from search_spaces import metrics
from storage.result_store import DONE_STATUSES


def test_camera_summary_names():
    assert metrics.camera_summary_key(metrics.LOWEST, metrics.Q_MAP) == metrics.LOWEST_Q_MAP == "lowest_q_mAP"
    assert metrics.lowest_camera_key(metrics.G_MAP) == "lowest_g_mAP_camera"
    # "weakest" names only the table's columns (the study's weakest camera), never a trial's own.
    assert metrics.WEAKEST_Q_MAP == "weakest_q_mAP" and "weakest" not in metrics.CAMERA_SUMMARIES
    with pytest.raises(ValueError, match="unknown camera summary 'median'"):
        metrics.camera_summary_key("median", metrics.Q_MAP)


def test_statuses_and_table_metrics():
    assert DONE_STATUSES is metrics.DONE_STATUSES == (metrics.COMPLETED, metrics.PRUNED)
    assert metrics.FAILED not in DONE_STATUSES
    assert set(metrics.DEFAULT_TABLE_METRICS) <= set(metrics.TABLE_METRIC_HEADERS)
    assert metrics.EVALUATION_MARKER == metrics.MAP
