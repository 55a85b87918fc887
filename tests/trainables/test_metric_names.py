"""The evaluator reports under the names of search_spaces.metrics (the recorder, the store and
the summary read those names back)."""

from __future__ import annotations

import numpy as np

from search_spaces import metrics
from trainables.evaluation import evaluate


def test_evaluate_reports_the_defined_names():
    rng = np.random.default_rng(0)
    q_pids, g_pids = np.repeat(np.arange(6), 2), np.repeat(np.arange(6), 4)
    q_cams, g_cams = np.tile([1, 2], 6), np.tile([1, 2, 3, 3], 6)
    result = evaluate(rng.random((12, 24)), q_pids, g_pids, q_cams, g_cams)
    # rank-k for every reported k within max_rank (50 by default; the CMC saturates past the gallery)
    expected = {
        *(metrics.rank_key(k) for k in metrics.REPORTED_RANKS),
        metrics.MAP,
        metrics.MINP,
        metrics.NUM_VALID_QUERIES,
        metrics.NUM_QUERIES_WITHOUT_POSITIVE,
    }
    for metric in metrics.CAMERA_METRICS:
        expected.add(metric)
        expected.add(metrics.lowest_camera_key(metric))
        expected.update(metrics.camera_summary_key(summary, metric) for summary in metrics.CAMERA_SUMMARIES)
    assert expected <= set(result)
    assert set(result) - expected == {"cmc"}
    assert set(result[metrics.Q_MAP]) == {1, 2} and set(result[metrics.G_MAP]) == {1, 2, 3}
