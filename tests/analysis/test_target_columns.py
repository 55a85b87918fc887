"""An evaluation target's table columns (``duke/mAP``, ``duke/weakest_q_mAP``): read from the
trial rows and the target's own camera rows, paired like every column, and kept apart from the
trial's own cameras (the weakest camera, the per-camera effects)."""

from __future__ import annotations

import statistics

import pytest

from analysis.formats import to_markdown
from analysis.summary import summarize


def trial(variant: str, seed: int, index: int, **metrics) -> dict:
    return {
        "study": "s",
        "variant": variant,
        "variant_index": index,
        "seed": seed,
        "config_hash": f"{variant}-{seed}",
        "status": "completed",
        "finished_at": "2026-01-01",
        **metrics,
    }


def cameras(variant: str, seed: int, metric: str, values: list[float]) -> list[dict]:
    return [
        {"config_hash": f"{variant}-{seed}", "camera": camera, "metric": metric, "value": value}
        for camera, value in enumerate(values, start=1)
    ]


TRIALS = [
    trial("baseline", 0, 0, mAP=0.60, **{"duke/mAP": 0.20}),
    trial("baseline", 1, 0, mAP=0.62, **{"duke/mAP": 0.24}),
    trial("baseline", 2, 0, mAP=0.61, **{"duke/mAP": 0.22}),
    trial("+apra", 0, 1, mAP=0.63, **{"duke/mAP": 0.25}),
    trial("+apra", 1, 1, mAP=0.64, **{"duke/mAP": 0.30}),
    trial("+apra", 2, 1, mAP=0.62, **{"duke/mAP": 0.26}),
]
# Own dataset: 3 cameras, camera 2 the baseline's weakest. The target: 5 cameras, its camera 4
# the baseline's weakest there, and lower than any own camera (it must not become the study's).
CAMERAS = [
    *cameras("baseline", 0, "q_mAP", [0.7, 0.5, 0.6]),
    *cameras("baseline", 0, "duke/q_mAP", [0.3, 0.2, 0.3, 0.05, 0.2]),
    *cameras("baseline", 1, "q_mAP", [0.7, 0.4, 0.6]),
    *cameras("baseline", 1, "duke/q_mAP", [0.3, 0.2, 0.3, 0.10, 0.2]),
    *cameras("baseline", 2, "q_mAP", [0.7, 0.5, 0.6]),
    *cameras("baseline", 2, "duke/q_mAP", [0.3, 0.2, 0.3, 0.03, 0.2]),
    *cameras("+apra", 0, "q_mAP", [0.7, 0.6, 0.6]),
    *cameras("+apra", 0, "duke/q_mAP", [0.3, 0.2, 0.3, 0.10, 0.2]),
    *cameras("+apra", 1, "q_mAP", [0.7, 0.5, 0.6]),
    *cameras("+apra", 1, "duke/q_mAP", [0.3, 0.2, 0.3, 0.20, 0.2]),
    *cameras("+apra", 2, "q_mAP", [0.7, 0.6, 0.6]),
    *cameras("+apra", 2, "duke/q_mAP", [0.3, 0.2, 0.3, 0.09, 0.2]),
]
METRICS = ("mAP", "weakest_q_mAP", "duke/mAP", "duke/weakest_q_mAP")


@pytest.fixture(scope="module")
def summary():
    return summarize("s", TRIALS, CAMERAS, metrics=METRICS)


def test_a_targets_column_is_paired_like_any_other(summary):
    apra = next(row for row in summary.rows if row.variant == "+apra")
    stats = apra.stats["duke/mAP"]
    assert stats.values == {0: 0.25, 1: 0.30, 2: 0.26}
    differences = [0.05, 0.06, 0.04]
    assert stats.effect.mean == pytest.approx(statistics.fmean(differences))
    assert stats.effect.pairs == 3 and stats.effect.low < stats.effect.mean < stats.effect.high


def test_a_targets_weakest_camera_is_its_own_and_the_studys_stays_on_the_own_cameras(summary):
    assert summary.weakest_camera == 2 and {label: w.camera for label, w in summary.target_weakest.items()} == {"duke": 4}
    apra = next(row for row in summary.rows if row.variant == "+apra")
    assert apra.stats["weakest_q_mAP"].values == {0: 0.6, 1: 0.5, 2: 0.6}
    assert apra.stats["duke/weakest_q_mAP"].values == {0: 0.10, 1: 0.20, 2: 0.09}
    assert apra.stats["duke/weakest_q_mAP"].effect.mean == pytest.approx(statistics.fmean([0.05, 0.10, 0.06]))
    # The per-camera effects are the own dataset's three cameras only.
    assert summary.cameras.cameras == [1, 2, 3]


def test_the_headers_name_the_target_and_its_weakest_camera(summary):
    assert summary.headers() == [
        ("mAP", "mAP"),
        ("weakest_q_mAP", "weakest q-mAP (c2)"),
        ("duke/mAP", "duke mAP"),
        ("duke/weakest_q_mAP", "duke weakest q-mAP (c4)"),
    ]
    table = to_markdown(summary)
    assert "| duke mAP | duke weakest q-mAP (c4) |" in table
    assert "| +apra | 3 |" in table and "+5.0 [" in table  # duke/mAP: 26.3 vs 22.0, paired difference +5.0 points


def test_the_camera_figures_draw_the_own_cameras_only():
    from analysis.figures import camera_stats, completed_trials

    stats = camera_stats(completed_trials("s", TRIALS), CAMERAS)
    assert set(stats["camera"]) == {1, 2, 3} and set(stats["metric"]) == {"q_mAP"}


def test_each_evaluation_target_gets_its_own_camera_figures(summary, tmp_path):
    from analysis.figures import camera_stats, completed_trials, write_figures

    kept = completed_trials("s", TRIALS)
    duke = camera_stats(kept, CAMERAS, target="duke")
    assert set(duke["camera"]) == {1, 2, 3, 4, 5} and set(duke["metric"]) == {"q_mAP"}
    # The target's camera 4 of +apra, mean over its seeds, in %: 0.10, 0.20, 0.09.
    cell = duke[(duke["variant"] == "+apra") & (duke["camera"] == 4)]["mean"].item()
    assert cell == pytest.approx(100 * statistics.fmean([0.10, 0.20, 0.09]))
    written = {path.name for path in write_figures("s", TRIALS, CAMERAS, [], tmp_path, summary=summary)}
    assert {"camera_bars.png", "camera_bars_duke.png", "camera_heatmap_duke.png"} <= written
