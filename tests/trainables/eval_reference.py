"""Brute-force reference for ``trainables.evaluation.evaluate``, used only by the tests.

Written plainly and independently of ``rank.py``: one Python loop per query, float64, each
ranking built by a stable ``np.lexsort`` on (distance, is_positive) so that on equal distances
negatives come first (the pessimistic tie rule). g-mAP re-ranks with the other cameras'
positives actually removed (APRA section 4), instead of reusing the main ranking.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _ranks_of_positives(dist: np.ndarray, is_pos: np.ndarray) -> np.ndarray:
    """1-based ranks of the positives in the ranking of ``dist`` (ties: negatives first)."""
    order = np.lexsort((is_pos.astype(np.int64), dist))  # last key is the primary key
    return np.nonzero(is_pos[order])[0] + 1


def _average_precision(ranks: np.ndarray) -> float:
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def _summary(name: str, values: dict[int, float]) -> dict[str, Any]:
    cams = sorted(values)
    vals = [values[c] for c in cams]
    lowest = min(vals)
    lowest_cam = [c for c in cams if values[c] == lowest][0]
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / len(vals)
    return {
        f"lowest_{name}": lowest,
        f"lowest_{name}_camera": lowest_cam,
        f"avg_{name}": mean,
        f"std_{name}": var**0.5,
        f"spread_{name}": max(vals) - lowest,
    }


def reference_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> dict[str, Any]:
    """Same keys and semantics as ``evaluate``; raises ValueError when no query is valid."""
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids, dtype=np.int64), np.asarray(g_pids, dtype=np.int64)
    q_camids, g_camids = np.asarray(q_camids, dtype=np.int64), np.asarray(g_camids, dtype=np.int64)
    num_q, num_g = distmat.shape

    first_ranks: list[int] = []
    aps: list[float] = []
    inps: list[float] = []
    q_aps: dict[int, list[float]] = {}
    q_r1: dict[int, list[float]] = {}
    g_aps: dict[int, list[float]] = {}
    skipped = 0
    for q in range(num_q):
        keep = [g for g in range(num_g) if g_pids[g] != -1 and not (g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])]
        keep = np.array(keep, dtype=np.int64)
        if len(keep) == 0:
            skipped += 1
            continue
        dist = distmat[q, keep]
        is_pos = g_pids[keep] == q_pids[q]
        if not is_pos.any():
            skipped += 1
            continue
        ranks = _ranks_of_positives(dist, is_pos)
        first_ranks.append(int(ranks[0]))
        aps.append(_average_precision(ranks))
        inps.append(len(ranks) / ranks[-1])
        cam = int(q_camids[q])
        q_aps.setdefault(cam, []).append(aps[-1])
        q_r1.setdefault(cam, []).append(1.0 if ranks[0] == 1 else 0.0)
        for c in sorted(set(int(x) for x in g_camids[keep][is_pos])):
            # Positives of other cameras leave the ranking; every negative stays.
            sub = np.array([k for k in range(len(keep)) if not is_pos[k] or g_camids[keep[k]] == c])
            sub_ranks = _ranks_of_positives(dist[sub], is_pos[sub])
            g_aps.setdefault(c, []).append(_average_precision(sub_ranks))

    if not aps:
        raise ValueError("no query has a valid positive")
    n = len(aps)
    cmc = np.zeros(max_rank, dtype=np.float64)
    for k in range(1, max_rank + 1):
        cmc[k - 1] = sum(1 for r in first_ranks if r <= k) / n

    def at(k: int) -> float:
        return sum(1 for r in first_ranks if r <= k) / n

    per_camera = {
        "q_mAP": {c: sum(v) / len(v) for c, v in q_aps.items()},
        "g_mAP": {c: sum(v) / len(v) for c, v in g_aps.items()},
        "q_rank1": {c: sum(v) / len(v) for c, v in q_r1.items()},
    }
    out: dict[str, Any] = {
        "rank1": at(1),
        "rank5": at(5),
        "rank10": at(10),
        # rank-20 and rank-50 where the CMC reaches them (rank-1/5/10 always)
        **{f"rank{k}": at(k) for k in (20, 50) if k <= max(max_rank, 10)},
        "mAP": sum(aps) / n,
        "mINP": sum(inps) / n,
        "cmc": cmc,
        "num_valid_queries": n,
        "num_queries_without_positive": skipped,
        **per_camera,
    }
    for name, values in per_camera.items():
        out.update(_summary(name, values))
    return out
