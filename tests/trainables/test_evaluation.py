"""``trainables.evaluation`` against the brute-force reference in ``eval_reference.py``.

Every metric must agree to 1e-6 (in practice to rounding) on random cases, edge cases
(queries without a positive, one camera, distractors, junk, a gallery shorter than max_rank,
ties, infinities) and hypothesis-generated matrices full of ties.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trainables.evaluation.rank as rank_module
from tests.trainables.eval_reference import reference_evaluate
from trainables.evaluation import (
    RankingAccumulator,
    evaluate,
    evaluate_features,
    iter_distance_chunks,
    pairwise_distance,
)

TOL = 1e-6
SCALARS = ("rank1", "rank5", "rank10", "mAP", "mINP")
PER_CAMERA = ("q_mAP", "g_mAP", "q_rank1")


def assert_matches(result: dict[str, Any], expected: dict[str, Any], tol: float = TOL) -> None:
    assert set(result) == set(expected)
    for key, want in expected.items():
        got = result[key]
        if isinstance(want, dict):
            assert set(got) == set(want), key
            for cam in want:
                assert got[cam] == pytest.approx(want[cam], abs=tol), (key, cam)
                assert type(got[cam]) is float
        elif isinstance(want, np.ndarray):
            assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == want.shape, key
            np.testing.assert_allclose(got, want, atol=tol, rtol=0, err_msg=key)
        elif isinstance(want, float):
            assert got == pytest.approx(want, abs=tol), key
            assert type(got) is float, key
        else:
            assert got == want, key


def random_case(seed: int, num_q: int = 40, num_g: int = 300, num_ids: int = 25, num_cams: int = 4, ties: bool = False):
    """Features near per-id centres plus noise, so rankings are neither trivial nor random;
    gallery with distractors (0) and junk (-1)."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = rng.integers(-1, num_ids + 1, num_g)
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    centres = rng.normal(size=(num_ids + 2, 8))
    qf = centres[q_pids + 1] + rng.normal(scale=0.9, size=(num_q, 8))
    gf = centres[g_pids + 1] + rng.normal(scale=0.9, size=(num_g, 8))
    dist = np.sqrt(((qf[:, None, :] - gf[None]) ** 2).sum(-1)).astype(np.float32)
    if ties:
        dist = np.round(dist * 2) / 2  # many equal distances, positives tied with negatives
    return dist, q_pids, g_pids, q_cams, g_cams


PATHS = ("sparse", "dense", "levels", "torch")


def use_path(path: str) -> dict[str, Any]:
    """Module settings that force one path of the candidate scan: numpy scanning 8 flags at a
    time (sparse), numpy flag by flag (dense), numpy counting per positive after a one-row
    first block (levels), or the torch path used on CUDA, here on CPU."""
    return {
        "_DENSE": 2.0 if path == "sparse" else -1.0,
        "_LEVEL_COST": 0.0 if path == "levels" else math.inf,
        "_FIRST_BLOCK_ROWS": 1 if path == "levels" else 16,
        "_NUMPY_ON_CPU": path != "torch",
    }


@pytest.fixture(params=PATHS)
def scan_mode(request, monkeypatch):
    """Run a test on each path of the candidate scan (see ``use_path``)."""
    for name, value in use_path(request.param).items():
        monkeypatch.setattr(rank_module, name, value)
    return request.param


# -- a hand-computed example ---------------------------------------------------------------------


def test_hand_computed_example(scan_mode):
    # gallery: g0 pid1/c0 (same pid+camera as q0), g1 pid1/c1, g2 pid2/c0, g3 distractor/c1,
    # g4 junk/c2, g5 pid1/c2
    g_pids, g_cams = [1, 1, 2, 0, -1, 1], [0, 1, 0, 1, 2, 2]
    q_pids, q_cams = [1, 2], [0, 1]
    dist = np.array(
        [
            # q0 ranks: g2 .2, g3 .3, g1 .4 (+), g5 .6 (+)  -> positives at 3 and 4
            [0.1, 0.4, 0.2, 0.3, 0.05, 0.6],
            # q1 ranks: g1 .1, g3 .3 (ties g2: negative first), g2 .3 (+), g0 .5, g5 .9 -> 3
            [0.5, 0.1, 0.3, 0.3, 0.0, 0.9],
        ],
        dtype=np.float32,
    )
    res = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    ap0, ap1 = (1 / 3 + 2 / 4) / 2, 1 / 3
    assert res["num_valid_queries"] == 2 and res["num_queries_without_positive"] == 0
    assert res["mAP"] == pytest.approx((ap0 + ap1) / 2)
    assert res["mINP"] == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert (res["rank1"], res["rank5"], res["rank10"]) == (0.0, 1.0, 1.0)
    np.testing.assert_allclose(res["cmc"], [0, 0, 1, 1, 1])
    assert res["q_mAP"] == pytest.approx({0: ap0, 1: ap1})
    # g-mAP: q0 keeps only g1 (camera 1) or only g5 (camera 2): rank 3 each; q1: g2, rank 3.
    assert res["g_mAP"] == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    assert res["q_rank1"] == {0: 0.0, 1: 0.0}
    assert res["lowest_q_mAP"] == pytest.approx(ap1) and res["lowest_q_mAP_camera"] == 1
    assert res["avg_q_mAP"] == pytest.approx((ap0 + ap1) / 2)
    assert res["spread_q_mAP"] == pytest.approx(ap0 - ap1)
    assert res["std_q_mAP"] == pytest.approx((ap0 - ap1) / 2)
    assert res["lowest_g_mAP_camera"] == 0  # all equal: the smallest camera id
    assert_matches(res, reference_evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5))


# -- random cases ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["numpy32", "torch32", "numpy64", "torch64", "torch16", "int"])
def test_random_cases_match_reference(seed, kind, scan_mode):
    dist, qp, gp, qc, gc = random_case(seed, ties=seed % 2 == 1)
    if kind == "int":
        dist = np.round(dist * 4).astype(np.int32)
    elif kind == "torch16":
        dist = dist.astype(np.float16)
    expected = reference_evaluate(dist.astype(np.float64), qp, gp, qc, gc, max_rank=20)
    matrix = {
        "numpy32": lambda: dist,
        "torch32": lambda: torch.from_numpy(dist),
        "numpy64": lambda: dist.astype(np.float64),
        "torch64": lambda: torch.from_numpy(dist.astype(np.float64)),
        "torch16": lambda: torch.from_numpy(dist),
        "int": lambda: dist,
    }[kind]()
    ids = (torch.from_numpy(qp), gp.tolist(), qc, torch.from_numpy(gc)) if kind.startswith("torch") else (qp, gp, qc, gc)
    assert_matches(evaluate(matrix, *ids, max_rank=20), expected)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 40])
def test_chunk_rows_do_not_change_results(chunk_rows, scan_mode):
    dist, qp, gp, qc, gc = random_case(11, ties=True)
    assert_matches(evaluate(dist, qp, gp, qc, gc, chunk_rows=chunk_rows), reference_evaluate(dist, qp, gp, qc, gc))


def test_realistic_scale_sample():
    """A few hundred queries against a few thousand images: the bucketing over many rows."""
    dist, qp, gp, qc, gc = random_case(5, num_q=120, num_g=2500, num_ids=300, num_cams=6)
    assert_matches(evaluate(dist, qp, gp, qc, gc), reference_evaluate(dist, qp, gp, qc, gc))


# -- edge cases ------------------------------------------------------------------------------------


def test_queries_without_valid_positive_are_left_out(scan_mode):
    dist, qp, gp, qc, gc = random_case(3)
    qp = qp.copy()
    qp[:5] = 999  # pid absent from the gallery
    gp = np.where(gp == qp[5], -1, gp)  # every image of query 5's pid becomes junk
    res = evaluate(dist, qp, gp, qc, gc)
    expected = reference_evaluate(dist, qp, gp, qc, gc)
    assert res["num_queries_without_positive"] >= 6
    assert res["num_valid_queries"] + res["num_queries_without_positive"] == len(qp)
    assert_matches(res, expected)


def test_same_camera_positives_do_not_count():
    # The only image of the query's pid is from the query's camera: no valid positive.
    dist = np.array([[0.1, 0.2], [0.3, 0.1]], dtype=np.float32)
    res = evaluate(dist, [1, 2], [1, 2], [0, 0], [0, 1], max_rank=2)
    assert res["num_valid_queries"] == 1 and res["num_queries_without_positive"] == 1
    assert res["mAP"] == 1.0 and res["q_mAP"] == {0: 1.0} and res["g_mAP"] == {1: 1.0}


def test_a_single_camera_everywhere_has_no_valid_query():
    dist, qp, gp, qc, gc = random_case(1, num_cams=1)
    with pytest.raises(ValueError, match="no query has a valid positive"):
        evaluate(dist, qp, gp, qc, gc)


def test_a_single_gallery_camera():
    dist, qp, gp, qc, gc = random_case(2)
    gc = np.full_like(gc, 7)
    res = evaluate(dist, qp, gp, qc, gc)
    assert list(res["g_mAP"]) == [7] and res["lowest_g_mAP_camera"] == 7
    assert res["spread_g_mAP"] == 0.0 and res["std_g_mAP"] == 0.0
    assert_matches(res, reference_evaluate(dist, qp, gp, qc, gc))


def test_distractors_are_ordinary_negatives():
    # A distractor (pid 0) closer than the positive pushes it to rank 2.
    dist = np.array([[0.5, 0.1, 0.9]], dtype=np.float32)
    res = evaluate(dist, [3], [3, 0, 5], [0], [1, 1, 1], max_rank=3)
    assert res["mAP"] == 0.5 and res["rank1"] == 0.0 and res["cmc"].tolist() == [0.0, 1.0, 1.0]


def test_junk_is_removed_from_every_ranking():
    # Junk (pid -1) closer than the positive does not count as a negative.
    dist = np.array([[0.5, 0.1, 0.9]], dtype=np.float32)
    res = evaluate(dist, [3], [3, -1, 5], [0], [1, 1, 1])
    assert res["mAP"] == 1.0 and res["rank1"] == 1.0


def test_query_with_junk_pid_has_no_positive():
    dist = np.array([[0.1, 0.2], [0.2, 0.1]], dtype=np.float32)
    res = evaluate(dist, [-1, 2], [-1, 2], [0, 0], [1, 1])
    assert res["num_valid_queries"] == 1 and res["num_queries_without_positive"] == 1


def test_gallery_smaller_than_max_rank_saturates():
    dist, qp, gp, qc, gc = random_case(4, num_q=6, num_g=9, num_ids=3)
    res = evaluate(dist, qp, gp, qc, gc, max_rank=50)
    assert res["cmc"].shape == (50,) and res["cmc"][-1] == 1.0
    assert np.all(np.diff(res["cmc"]) >= 0)
    assert_matches(res, reference_evaluate(dist, qp, gp, qc, gc, max_rank=50))


def test_max_rank_smaller_than_ten_still_reports_rank10():
    dist, qp, gp, qc, gc = random_case(6)
    res = evaluate(dist, qp, gp, qc, gc, max_rank=1)
    ref = reference_evaluate(dist, qp, gp, qc, gc, max_rank=1)
    assert res["cmc"].shape == (1,)
    assert_matches(res, ref)


def test_ties_rank_negatives_before_positives(scan_mode):
    # positive and negative at the same distance: the negative comes first -> AP 1/2.
    dist = np.array([[1.0, 1.0]], dtype=np.float32)
    res = evaluate(dist, [1], [1, 2], [0], [1, 1])
    assert res["mAP"] == 0.5 and res["rank1"] == 0.0 and res["mINP"] == 0.5


def test_collapsed_model_does_not_score_perfect_map(scan_mode):
    dist, qp, gp, qc, gc = random_case(7)
    collapsed = np.zeros_like(dist)
    res = evaluate(collapsed, qp, gp, qc, gc)
    assert res["mAP"] < 0.5 and res["rank1"] < 0.5
    assert_matches(res, reference_evaluate(collapsed, qp, gp, qc, gc))


def test_ties_among_positives_do_not_matter():
    dist = np.array([[0.2, 0.2, 0.2, 0.1]], dtype=np.float32)
    res = evaluate(dist, [1], [1, 1, 1, 2], [0], [1, 2, 3, 1])
    # ranks 2, 3, 4 whatever the order among the tied positives
    assert res["mAP"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    assert res["g_mAP"] == pytest.approx({1: 0.5, 2: 0.5, 3: 0.5})


def test_infinities_negative_values_and_signed_zero(scan_mode):
    rng = np.random.default_rng(8)
    values = np.array([-np.inf, -2.5, -0.0, 0.0, 1.0, np.inf], dtype=np.float32)
    dist = values[rng.integers(0, len(values), (30, 60))]
    _, qp, gp, qc, gc = random_case(8, num_q=30, num_g=60, num_ids=6)
    for matrix in (dist, dist.astype(np.float64), torch.from_numpy(dist)):
        assert_matches(evaluate(matrix, qp, gp, qc, gc), reference_evaluate(dist, qp, gp, qc, gc))


def test_negative_zero_ties_with_zero():
    # A negative at -0.0 and a positive at +0.0 (and the reverse) are tied: negative first.
    for neg, pos in ((-0.0, 0.0), (0.0, -0.0)):
        dist = np.array([[pos, neg]], dtype=np.float32)
        assert evaluate(dist, [1], [1, 2], [0], [1, 1])["mAP"] == 0.5


def test_camera_summary_keys_and_per_camera_rank1():
    dist, qp, gp, qc, gc = random_case(9)
    res = evaluate(dist, qp, gp, qc, gc)
    for name in PER_CAMERA:
        values = res[name]
        assert all(isinstance(c, int) for c in values)
        assert res[f"lowest_{name}"] == min(values.values())
        assert values[res[f"lowest_{name}_camera"]] == res[f"lowest_{name}"]
        assert res[f"avg_{name}"] == pytest.approx(np.mean(list(values.values())))
        assert res[f"spread_{name}"] == pytest.approx(max(values.values()) - min(values.values()))
    for key in SCALARS:
        assert 0.0 <= res[key] <= 1.0


# -- hypothesis: small matrices full of ties ------------------------------------------------------


@st.composite
def tie_heavy_cases(draw):
    num_q = draw(st.integers(1, 7))
    num_g = draw(st.integers(1, 18))
    levels = draw(st.sampled_from([[0.0, 1.0], [0.0, 1.0, 2.0, 3.0], [-np.inf, -1.0, -0.0, 0.0, 2.0, np.inf]]))
    dist = np.array(draw(st.lists(st.sampled_from(levels), min_size=num_q * num_g, max_size=num_q * num_g)), dtype=np.float32)
    q_pids = draw(st.lists(st.integers(-1, 3), min_size=num_q, max_size=num_q))
    g_pids = draw(st.lists(st.integers(-1, 3), min_size=num_g, max_size=num_g))
    q_cams = draw(st.lists(st.integers(0, 2), min_size=num_q, max_size=num_q))
    g_cams = draw(st.lists(st.integers(0, 2), min_size=num_g, max_size=num_g))
    chunk_rows = draw(st.sampled_from([None, 1, 2, 5]))
    path = draw(st.sampled_from(PATHS))
    return dist.reshape(num_q, num_g), q_pids, g_pids, q_cams, g_cams, chunk_rows, path


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tie_heavy_cases(), st.integers(1, 12))
def test_property_matches_reference(case, max_rank):
    dist, qp, gp, qc, gc, chunk_rows, path = case
    try:
        expected = reference_evaluate(dist, qp, gp, qc, gc, max_rank=max_rank)
    except ValueError:
        expected = None
    saved = {name: getattr(rank_module, name) for name in use_path(path)}
    for name, value in use_path(path).items():
        setattr(rank_module, name, value)
    try:
        for matrix in (dist, torch.from_numpy(dist.astype(np.float64))):
            if expected is None:
                with pytest.raises(ValueError, match="no query has a valid positive"):
                    evaluate(matrix, qp, gp, qc, gc, max_rank=max_rank, chunk_rows=chunk_rows)
            else:
                assert_matches(evaluate(matrix, qp, gp, qc, gc, max_rank=max_rank, chunk_rows=chunk_rows), expected)
    finally:
        for name, value in saved.items():
            setattr(rank_module, name, value)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_property_metrics_are_fractions_and_consistent(seed):
    dist, qp, gp, qc, gc = random_case(seed, num_q=12, num_g=40, num_ids=5, num_cams=3, ties=seed % 2 == 0)
    try:
        res = evaluate(dist, qp, gp, qc, gc, max_rank=10)
    except ValueError:
        return
    for key in SCALARS:
        assert 0.0 <= res[key] <= 1.0
    assert res["rank1"] <= res["rank5"] <= res["rank10"]
    assert res["cmc"][0] == res["rank1"] and res["cmc"][9] == res["rank10"]
    assert np.all(np.diff(res["cmc"]) >= 0)
    lo, hi = min(res["q_mAP"].values()), max(res["q_mAP"].values())
    assert lo - 1e-12 <= res["mAP"] <= hi + 1e-12  # mAP is a weighted mean of the q-mAPs


# -- input validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "distmat": a["distmat"][:, :-1]}, "must have shape"),
        (lambda a: {**a, "distmat": a["distmat"][0]}, "must be 2-D"),
        (lambda a: {**a, "q_camids": a["q_camids"][:-1]}, "q_pids and q_camids must have the same length"),
        (lambda a: {**a, "g_pids": a["g_pids"][:-1]}, "g_pids and g_camids must have the same length"),
        (lambda a: {**a, "q_pids": a["q_pids"].astype(np.float32)}, "q_pids must hold integers"),
        (lambda a: {**a, "g_camids": torch.from_numpy(a["g_camids"]).float()}, "g_camids must hold integers"),
        (lambda a: {**a, "q_pids": a["q_pids"][:, None]}, "q_pids must be 1-D"),
        (lambda a: {**a, "max_rank": 0}, "max_rank must be an integer >= 1"),
        (lambda a: {**a, "distmat": a["distmat"].astype(np.complex64)}, "real numbers"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    dist, qp, gp, qc, gc = random_case(0, num_q=5, num_g=12)
    args = dict(distmat=dist, q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc, max_rank=5)
    with pytest.raises(ValueError, match=message):
        evaluate(**change(args))


@pytest.mark.parametrize("where", ["positive", "negative", "junk", "row_without_positive"])
@pytest.mark.parametrize("kind", ["numpy32", "numpy64", "torch32"])
def test_nan_raises_value_error(where, kind, scan_mode):
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    qp, gp, qc, gc = [1, 9], [1, 2, -1, 3], [0, 0], [1, 1, 1, 1]
    row, col = {"positive": (0, 0), "negative": (0, 3), "junk": (0, 2), "row_without_positive": (1, 1)}[where]
    dist[row, col] = np.nan
    matrix = {"numpy32": dist, "numpy64": dist.astype(np.float64), "torch32": torch.from_numpy(dist)}[kind]
    with pytest.raises(ValueError, match="must not contain NaN"):
        evaluate(matrix, qp, gp, qc, gc, chunk_rows=1)


def test_accumulator_requires_every_row_once():
    dist, qp, gp, qc, gc = random_case(0, num_q=6, num_g=20)
    acc = RankingAccumulator(qp, gp, qc, gc)
    acc.add(0, dist[:3])
    with pytest.raises(ValueError, match="overlap"):
        acc.add(2, dist[2:4])
    with pytest.raises(ValueError, match="missing"):
        acc.result()
    with pytest.raises(ValueError, match="gallery distances"):
        acc.add(3, dist[3:, :5])
    acc.add(3, torch.from_numpy(dist[3:]))
    assert_matches(acc.result(), reference_evaluate(dist, qp, gp, qc, gc))


# -- distances and evaluation from features -------------------------------------------------------


def _features(seed: int, num_q: int = 30, num_g: int = 200, dim: int = 16):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(1, 12, num_q), rng.integers(0, 12, num_g)
    qc, gc = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    centres = rng.normal(size=(12, dim))
    qf = (centres[qp] + rng.normal(scale=1.0, size=(num_q, dim))).astype(np.float32)
    gf = (centres[gp] + rng.normal(scale=1.0, size=(num_g, dim))).astype(np.float32)
    return qf, gf, qp, gp, qc, gc


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distance_matches_float64_brute_force(metric):
    qf, gf, *_ = _features(0)
    q, g = qf.astype(np.float64), gf.astype(np.float64)
    if metric == "euclidean":
        want = np.sqrt(((q[:, None] - g[None]) ** 2).sum(-1))
    else:
        qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
        want = 1.0 - qn @ gn.T
    for chunk_size in (None, 1, 7):
        got = pairwise_distance(torch.from_numpy(qf), gf, metric=metric, chunk_size=chunk_size)
        assert got.dtype == torch.float32 and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_iter_distance_chunks_cover_every_row_once():
    qf, gf, *_ = _features(1)
    full = pairwise_distance(qf, gf, chunk_size=4)
    spans = []
    for start, stop, chunk in iter_distance_chunks(qf, gf, chunk_size=4):
        spans.append((start, stop))
        torch.testing.assert_close(chunk, full[start:stop], rtol=0, atol=0)
    assert spans[0][0] == 0 and spans[-1][1] == len(qf)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [None, 1, 8])
def test_evaluate_features_equals_evaluate_of_the_matrix(metric, chunk_size):
    qf, gf, qp, gp, qc, gc = _features(2)
    qt, gt = torch.from_numpy(qf), torch.from_numpy(gf)
    dist = pairwise_distance(qt, gt, metric=metric, chunk_size=chunk_size)
    res = evaluate_features(qt, gt, qp, gp, qc, gc, metric=metric, chunk_size=chunk_size)
    assert_matches(res, evaluate(dist, qp, gp, qc, gc), tol=1e-12)
    assert_matches(res, reference_evaluate(dist.numpy(), qp, gp, qc, gc))


def test_evaluate_features_accepts_half_precision_and_numpy():
    qf, gf, qp, gp, qc, gc = _features(3)
    q16, g16 = torch.from_numpy(qf).bfloat16(), torch.from_numpy(gf).bfloat16()
    half = evaluate_features(q16, g16, qp, gp, qc, gc)
    ref = reference_evaluate(pairwise_distance(q16, g16).numpy(), qp, gp, qc, gc)
    assert_matches(half, ref)
    assert_matches(evaluate_features(qf, gf, qp, gp, qc, gc), evaluate_features(torch.from_numpy(qf), gf, qp, gp, qc, gc), tol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda q, g: (q[:, :-1], g), "same feature dimension"),
        (lambda q, g: (q[0], g), "must be 2-D"),
        (lambda q, g: (np.where(np.arange(q.size).reshape(q.shape) == 3, np.nan, q), g), "must be finite"),
        (lambda q, g: (q, g[:-1]), "one row per id"),
    ],
)
def test_evaluate_features_bad_input(change, message):
    qf, gf, qp, gp, qc, gc = _features(4)
    q, g = change(qf, gf)
    with pytest.raises(ValueError, match=message):
        evaluate_features(q, g, qp, gp, qc, gc)


def test_unknown_metric_lists_the_known_ones():
    qf, gf, *_ = _features(5)
    with pytest.raises(ValueError, match="euclidean, cosine"):
        pairwise_distance(qf, gf, metric="manhattan")
    with pytest.raises(ValueError, match="euclidean, cosine"):
        iter_distance_chunks(qf, gf, metric="manhattan")  # checked at the call, not lazily
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        iter_distance_chunks(qf, gf, chunk_size=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_reference():
    dist, qp, gp, qc, gc = random_case(12, num_q=80, num_g=900, num_ids=40, ties=True)
    expected = reference_evaluate(dist, qp, gp, qc, gc)
    assert_matches(evaluate(torch.from_numpy(dist).cuda(), qp, gp, qc, gc), expected)
    half = torch.from_numpy(dist).cuda().half()
    assert_matches(evaluate(half, qp, gp, qc, gc), reference_evaluate(dist.astype(np.float16), qp, gp, qc, gc))
    qf, gf, qp, gp, qc, gc = _features(6)
    on_gpu = evaluate_features(torch.from_numpy(qf).cuda(), torch.from_numpy(gf).cuda(), qp, gp, qc, gc)
    on_cpu = evaluate(pairwise_distance(torch.from_numpy(qf).cuda(), torch.from_numpy(gf).cuda()).cpu(), qp, gp, qc, gc)
    assert_matches(on_gpu, on_cpu, tol=1e-9)
    assert math.isfinite(on_gpu["mAP"])


def test_levels_path_without_numpy_popcount(monkeypatch):
    """numpy < 2 has no ``bitwise_count``: the per-positive counts fall back to count_nonzero."""
    for name, value in use_path("levels").items():
        monkeypatch.setattr(rank_module, name, value)
    monkeypatch.setattr(rank_module, "_popcount", None)
    dist, qp, gp, qc, gc = random_case(13, ties=True)
    assert_matches(evaluate(dist, qp, gp, qc, gc), reference_evaluate(dist, qp, gp, qc, gc))


def test_benchmark_data_and_baseline_agree_with_evaluate(monkeypatch):
    """benchmarks/eval_bench.py on a tiny scale: its argsort-loop baseline and evaluate agree."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_bench.py"
    spec = importlib.util.spec_from_file_location("eval_bench", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "eval_bench", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    scale = bench.Scale("tiny", num_ids=30, num_cameras=4, num_query=60, num_gallery=400, num_distractors=50, cameras_per_id=3.0)
    data = bench.make_data(scale, dim=32, seed=0, device="cpu")
    assert data.qf.shape == (60, 32) and data.gf.shape == (400, 32)
    assert int((data.g_pids == 0).sum()) == 50
    dist = pairwise_distance(data.qf, data.gf).numpy()
    ids = (data.q_pids, data.g_pids, data.q_cams, data.g_cams)
    r1, m_ap = bench.argsort_loop(dist, *ids)
    res = evaluate(dist, *ids)
    assert (r1, m_ap) == (pytest.approx(res["rank1"]), pytest.approx(res["mAP"]))


def test_inputs_are_left_untouched_and_grad_tensors_accepted(scan_mode):
    dist, qp, gp, qc, gc = random_case(14, ties=True)
    before = dist.copy()
    tensor = torch.from_numpy(dist.copy()).requires_grad_()
    assert_matches(evaluate(tensor, qp, gp, qc, gc), evaluate(dist, qp, gp, qc, gc), tol=0)
    np.testing.assert_array_equal(dist, before)
    np.testing.assert_array_equal(tensor.detach().numpy(), before)
