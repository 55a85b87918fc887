"""The study figures: their numbers against pandas on the raw rows, and real, non-blank PNGs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.figures import camera_stats, completed_trials, curve_stats, variant_order, write_figures
from storage import ResultStore
from tests.orchestrator.fake_study import CAMERAS, EPOCHS, write_fake_study


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, list[dict]]:
    store = ResultStore(str(tmp_path_factory.mktemp("figures") / "results"))
    write_fake_study(store, "fake")
    return {table: store.read_rows(table, "fake") for table in ("trials", "cameras", "curves")}


def latest_completed(trials: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(trials).sort_values("finished_at").drop_duplicates("config_hash", keep="last")
    return frame[frame["status"] == "completed"]


def test_camera_numbers_are_means_over_seeds_of_the_latest_completed_trials(rows):
    kept = completed_trials("fake", rows["trials"])
    assert variant_order(kept) == ["baseline", "+apra", "+gem"]
    stats = camera_stats(kept, rows["cameras"]).set_index(["variant", "camera", "metric"])
    # Independently: keep the cameras rows of the latest completed trial of each config.
    done = latest_completed(rows["trials"])
    cameras = pd.DataFrame(rows["cameras"]).drop_duplicates(["config_hash", "camera", "metric"], keep="last")
    cameras = cameras[cameras["config_hash"].isin(done["config_hash"])]
    expected = cameras.groupby(["variant", "camera", "metric"])["value"].agg(["mean", "std", "count"])
    assert len(stats) == 3 * len(CAMERAS) * 2
    np.testing.assert_allclose(stats.loc[expected.index, "mean"], 100 * expected["mean"])
    np.testing.assert_allclose(stats.loc[expected.index, "std"], 100 * expected["std"])
    assert stats.loc[("+gem", 1, "q_mAP"), "n"] == 2  # seed 2 of +gem failed


def test_a_forced_rerun_counts_once_with_its_newer_rows(rows):
    kept = completed_trials("fake", rows["trials"])
    rerun = [r for r in rows["cameras"] if r["variant"] == "+apra" and r["seed"] == 0 and r["camera"] == 1 and r["metric"] == "q_mAP"]
    assert len(rerun) == 2  # the older and the newer attempt are both in the store
    stats = camera_stats(kept, rows["cameras"]).set_index(["variant", "camera", "metric"])
    others = [
        r["value"] for r in rows["cameras"] if r["variant"] == "+apra" and r["seed"] != 0 and r["camera"] == 1 and r["metric"] == "q_mAP"
    ]
    assert stats.loc[("+apra", 1, "q_mAP"), "mean"] == pytest.approx(100 * np.mean([rerun[-1]["value"], *others]))


def test_curves_are_mean_per_variant_and_epoch(rows):
    kept = completed_trials("fake", rows["trials"])
    stats = curve_stats(kept, rows["curves"])
    assert sorted(stats["epoch"].unique()) == list(EPOCHS)
    done = latest_completed(rows["trials"])
    curves = pd.DataFrame(rows["curves"]).drop_duplicates(["config_hash", "epoch"], keep="last")
    curves = curves[curves["config_hash"].isin(done["config_hash"])]
    expected = curves.groupby(["variant", "epoch"])["mAP"].mean()
    ours = stats[stats["metric"] == "mAP"].set_index(["variant", "epoch"])["mean"]
    np.testing.assert_allclose(ours.loc[expected.index], 100 * expected)


def test_figures_are_real_non_blank_pngs(rows, tmp_path):
    import matplotlib.image

    written = write_figures("fake", rows["trials"], rows["cameras"], rows["curves"], tmp_path)
    assert [p.name for p in written] == ["camera_effects.png", "camera_bars.png", "camera_heatmap.png", "learning_curves.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 400
        assert image[..., :3].std() > 0.05  # not a blank canvas
    bars = matplotlib.image.imread(written[1])[..., :3]
    red = (bars[..., 0] > 0.9) & (bars[..., 1] < 0.15) & (bars[..., 2] < 0.15)
    assert red.sum() > 100  # the weakest camera is outlined in red, as in APRA Fig. 1


def test_no_data_draws_nothing(tmp_path):
    assert write_figures("fake", [], [], [], tmp_path) == []
    failed_only = [{"study": "fake", "config_hash": "a", "variant": "v", "seed": 0, "status": "failed", "finished_at": "x"}]
    assert write_figures("fake", failed_only, [], [], tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_camera_effects_use_a_diverging_scale_centred_at_zero_and_mute_what_is_not_significant():
    from analysis.camera_effects import CameraEffects
    from analysis.figures import camera_effects_figure
    from analysis.stats import Effect
    from analysis.weakest import WeakestCamera

    strong_gain = Effect(0.08, 0.05, 0.11, 0.001, 0.002, pairs=3)
    strong_loss = Effect(-0.02, -0.03, -0.01, 0.01, 0.02, pairs=3)
    noise = Effect(0.05, -0.10, 0.20, 0.4, 0.8, pairs=3)
    effects = CameraEffects(
        {"+x": "baseline"},
        WeakestCamera(2, "baseline"),
        [1, 2],
        ["+x"],
        {("+x", "q_mAP"): {1: strong_loss, 2: strong_gain}, ("+x", "g_mAP"): {1: noise, 2: strong_gain}},
    )
    fig = camera_effects_figure(effects)
    q_axes, g_axes, bar = fig.axes
    mappable = bar._colorbar.mappable  # the colour bar's scale (matplotlib keeps it on its axes)
    norm = mappable.norm
    assert mappable.get_cmap().name == "RdBu"
    assert norm.vcenter == 0 and norm.vmin == -norm.vmax == pytest.approx(-8.0)  # symmetric around 0
    q = q_axes.images[0].get_array()  # cells as drawn (RGBA): row +x, columns c1, c2
    loss, gain = q[0, 0, :3], q[0, 1, :3]
    assert gain[2] > gain[0] + 0.3 and loss[0] > loss[2]  # blue for the gain, red for the loss
    g = g_axes.images[0].get_array()
    noisy, real = g[0, 0, :3], g[0, 1, :3]
    assert noisy.min() > 0.75 and real.min() < 0.3  # the noisy camera is pale, the real gain is not
    unmuted = mappable.to_rgba(5.0)[:3]  # what +5.0 would look like were it significant
    assert np.all(noisy >= np.asarray(unmuted) - 1e-9) and np.ptp(noisy) < np.ptp(unmuted)
    texts = {t.get_text(): t.get_color() for t in g_axes.texts}
    assert texts["+5.0"] == "#777777" and texts["+8.0*"] != "#777777"
    assert "c2\n(weakest)" in [label.get_text() for label in q_axes.get_xticklabels()]
    assert [label.get_text() for label in q_axes.get_yticklabels()] == ["+x vs baseline"]
