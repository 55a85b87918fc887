"""A study's figures, drawn as the papers draw them (PNG files).

* :func:`camera_effects` — cameras x variants, the paired difference to each row's contrast row
  in q-mAP and g-mAP on a diverging colour scale centred at zero; cells whose Holm-corrected
  p-value is not below 0.05 are muted (pale, grey text), so only the real effects stand out;
* :func:`camera_bars` — per-camera query-mAP and gallery-mAP bars, one panel per variant, the
  study's weakest camera outlined in red (APRA, Fig. 1 and section 4; the one definition of
  :mod:`analysis.summary`: lowest q-mAP of the table's reference row);
* :func:`camera_heatmap` — camera x variant heat maps of q-mAP and g-mAP, so the camera a
  module helps (or hurts) stands out across the whole ablation;
* :func:`learning_curves` — rank-1 and mAP per evaluation epoch, one line per variant (mean
  over seeds, a band of +- one std where there are several seeds; Robust-ReID Fig. 6 style).

Inputs are the result store's rows. Only the latest completed trial of each config counts (as
in the ablation table); a camera or curve row repeated by a forced rerun counts once, the one
read last (the store returns rows ordered by part file, i.e. by trial and write time).
Matplotlib's object API renders on the Agg canvas: no pyplot, no global backend state, no
display needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from storage import latest_per_config

METRIC_LABELS = {"q_mAP": "query-mAP", "g_mAP": "gallery-mAP"}
COLORS = {"q_mAP": "#4C72B0", "g_mAP": "#DD8452"}
DPI = 120


def completed_trials(study: str, trials: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """config_hash -> variant, variant_index, seed for the latest completed trial of each config."""
    latest = [r for r in latest_per_config(r for r in trials if r.get("study") == study) if r.get("status") == "completed"]
    frame = pd.DataFrame(
        [
            {"config_hash": r["config_hash"], "variant": r["variant"], "variant_index": r.get("variant_index", 0), "seed": r.get("seed")}
            for r in latest
        ],
        columns=["config_hash", "variant", "variant_index", "seed"],
    )
    return frame


def variant_order(kept: pd.DataFrame) -> list[str]:
    """Variants in the study's plan order."""
    ordered = kept.sort_values("variant_index", kind="stable")
    return list(dict.fromkeys(ordered["variant"]))


def camera_stats(kept: pd.DataFrame, cameras: Sequence[dict[str, Any]], target: str | None = None) -> pd.DataFrame:
    """Mean and std over seeds of each variant x camera x metric (values in %), of the trial's
    own test set, or of the evaluation target ``target`` (its rows' metrics ``<label>/q_mAP``,
    returned without the label: a target's cameras are its own)."""
    frame = pd.DataFrame(list(cameras))
    if frame.empty or kept.empty or not {"config_hash", "camera", "metric", "value"} <= set(frame.columns):
        return pd.DataFrame(columns=["variant", "camera", "metric", "mean", "std", "n"])
    frame = frame[frame["config_hash"].isin(kept["config_hash"])]
    metric = frame["metric"].astype(str)
    if target is None:
        frame = frame[~metric.str.contains("/", regex=False)]
    else:
        frame = frame[metric.str.startswith(f"{target}/")].assign(metric=lambda f: f["metric"].str.slice(len(target) + 1))
    frame = frame.drop_duplicates(["config_hash", "camera", "metric"], keep="last")
    frame = frame.drop(columns=["variant"], errors="ignore").merge(kept[["config_hash", "variant"]], on="config_hash")
    frame["value"] = 100 * frame["value"].astype(float)
    stats = frame.groupby(["variant", "camera", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    return stats.rename(columns={"count": "n"}).fillna({"std": 0.0})


def curve_stats(kept: pd.DataFrame, curves: Sequence[dict[str, Any]], metrics: Sequence[str] = ("rank1", "mAP")) -> pd.DataFrame:
    """Mean and std over seeds of each variant x evaluation epoch (values in %)."""
    frame = pd.DataFrame(list(curves))
    present = [m for m in metrics if m in frame.columns]
    if frame.empty or kept.empty or not present or "epoch" not in frame.columns:
        return pd.DataFrame(columns=["variant", "epoch", "metric", "mean", "std", "n"])
    frame = frame[frame["config_hash"].isin(kept["config_hash"])]
    frame = frame.drop_duplicates(["config_hash", "epoch"], keep="last")
    frame = frame.drop(columns=["variant"], errors="ignore").merge(kept[["config_hash", "variant"]], on="config_hash")
    long = frame.melt(id_vars=["variant", "epoch"], value_vars=present, var_name="metric").dropna(subset=["value"])
    long["value"] = 100 * long["value"].astype(float)
    stats = long.groupby(["variant", "epoch", "metric"])["value"].agg(["mean", "std", "count"]).reset_index()
    return stats.rename(columns={"count": "n"}).fillna({"std": 0.0})


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _camera_label(camera: Any) -> str:
    return f"c{int(camera)}"


def camera_bars(
    stats: pd.DataFrame, variants: list[str], path: Path, weakest: int | None = None, test_set: str | None = None
) -> Path | None:
    """APRA Fig. 1: per camera, q-mAP and g-mAP bars; the study's ``weakest`` camera is
    outlined in red in every panel and the dashed line is the average camera q-mAP;
    ``test_set`` names an evaluation target the bars are of."""
    variants = [v for v in variants if v in set(stats["variant"])]
    if not variants:
        return None
    columns = min(3, len(variants))
    rows = math.ceil(len(variants) / columns)
    fig = _figure(4.2 * columns, 3.1 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False)).ravel()
    cameras = sorted(stats["camera"].unique())
    x = np.arange(len(cameras))
    width = 0.4
    for ax, variant in zip(axes, variants):
        mine = stats[stats["variant"] == variant]
        q_means = []
        for offset, metric in ((-width / 2, "q_mAP"), (width / 2, "g_mAP")):
            table = mine[mine["metric"] == metric].set_index("camera").reindex(cameras)
            means, stds = table["mean"].to_numpy(float), table["std"].to_numpy(float)
            show_err = bool((table["n"].fillna(0) > 1).any())
            ax.bar(
                x + offset,
                np.nan_to_num(means),
                width,
                yerr=stds if show_err else None,
                capsize=2,
                color=COLORS[metric],
                label=METRIC_LABELS[metric],
            )
            if metric == "q_mAP":
                q_means = means
        if weakest in cameras:
            index = cameras.index(weakest)
            top = np.nanmax(np.append(mine.loc[mine["camera"] == weakest, "mean"].to_numpy(float), 0.0))
            ax.add_patch(_outline(index, top))
        if len(q_means) and not np.all(np.isnan(q_means)):
            ax.axhline(np.nanmean(q_means), color="#4C72B0", linestyle="--", linewidth=1, label="average camera q-mAP")
        ax.set_title(variant, fontsize=10)
        ax.set_xticks(x, [_camera_label(c) for c in cameras])
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(variants) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("mAP (%)")
    axes[0].legend(loc="upper right", fontsize=8)
    title = "Per-camera query-mAP and gallery-mAP" + (f" on evaluation target '{test_set}'" if test_set else "")
    if weakest is not None:
        title += f" (weakest camera c{int(weakest)}, the reference row's lowest q-mAP, outlined in red)"
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def _outline(index: int, height: float):
    from matplotlib.patches import Rectangle

    return Rectangle((index - 0.45, 0), 0.9, height + 2, fill=False, edgecolor="red", linewidth=2, zorder=3)


def camera_heatmap(stats: pd.DataFrame, variants: list[str], path: Path, test_set: str | None = None) -> Path | None:
    """Camera x variant heat maps of q-mAP and g-mAP (mean over seeds, in %); ``test_set``
    names an evaluation target they are of."""
    variants = [v for v in variants if v in set(stats["variant"])]
    metrics = [m for m in ("q_mAP", "g_mAP") if m in set(stats["metric"])]
    if not variants or not metrics:
        return None
    cameras = sorted(stats["camera"].unique())
    fig = _figure(max(4.0, 0.7 * len(cameras) + 2.2) * len(metrics), 0.45 * len(variants) + 1.8)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)).ravel()
    grids = [
        stats[stats["metric"] == m].pivot(index="variant", columns="camera", values="mean").reindex(index=variants, columns=cameras)
        for m in metrics
    ]
    finite = np.concatenate([g.to_numpy(float).ravel() for g in grids])
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 100.0)
    image = None
    for ax, metric, grid in zip(axes, metrics, grids):
        values = grid.to_numpy(float)
        image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high if high > low else low + 1, aspect="auto")
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                shade = (value - low) / (high - low) if high > low else 0.5
                ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=8, color="black" if shade > 0.6 else "white")
        ax.set_xticks(range(len(cameras)), [_camera_label(c) for c in cameras])
        ax.set_yticks(range(len(variants)), variants if ax is axes[0] else [""] * len(variants))
        ax.set_title(METRIC_LABELS[metric] + " (%)" + (f", target '{test_set}'" if test_set else ""), fontsize=10)
        ax.set_xlabel("camera")
    fig.colorbar(image, ax=list(axes), shrink=0.9, label="mAP (%)")
    return _save(fig, path)


def camera_effects(effects, path: Path) -> Path | None:
    """:func:`camera_effects_figure` saved as a PNG at ``path`` (None when there is nothing to draw)."""
    fig = camera_effects_figure(effects)
    return None if fig is None else _save(fig, path)


def camera_effects_figure(effects):
    """Cameras x variants heat maps of the paired difference of each row to its contrast row
    (percentage points) in q-mAP and g-mAP: a diverging colour map centred at zero (blue gain, red loss),
    non-significant cells (Holm-corrected p >= 0.05, or no interval) drawn pale with grey
    text; the weakest camera's column is labelled."""
    if effects is None or not effects.variants or not effects.effects:
        return None
    from matplotlib.colors import TwoSlopeNorm

    metrics = [m for m in ("q_mAP", "g_mAP") if any((v, m) in effects.effects for v in effects.variants)]
    cameras, variants = effects.cameras, effects.variants
    grids = {m: np.full((len(variants), len(cameras)), np.nan) for m in metrics}
    significant = {m: np.zeros((len(variants), len(cameras)), bool) for m in metrics}
    for m in metrics:
        for row, variant in enumerate(variants):
            for col, camera in enumerate(cameras):
                effect = effects.effects.get((variant, m), {}).get(camera)
                if effect is not None:
                    grids[m][row, col] = 100 * effect.mean
                    significant[m][row, col] = effect.significant
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    bound = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    fig = _figure(max(4.0, 0.8 * len(cameras) + 2.4) * len(metrics), 0.5 * len(variants) + 2.0)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)).ravel()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    mappable = ScalarMappable(norm=norm, cmap=colormaps["RdBu"])
    for ax, metric in zip(axes, metrics):
        values = grids[metric]
        colours = mappable.to_rgba(np.nan_to_num(values))
        # Muting: cells that are not significant are blended 75% towards white; missing ones blank.
        muted = ~significant[metric]
        colours[muted, :3] = 0.25 * colours[muted, :3] + 0.75
        colours[~np.isfinite(values)] = (1.0, 1.0, 1.0, 1.0)
        ax.imshow(colours, aspect="auto")
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                strong = significant[metric][row, col]
                text = f"{value:+.1f}" + ("*" if strong else "")
                color = ("white" if abs(value) > 0.6 * bound else "black") if strong else "#777777"
                ax.text(col, row, text, ha="center", va="center", fontsize=8, color=color, fontweight="bold" if strong else "normal")
        labels = [_camera_label(c) + ("\n(weakest)" if c == effects.weakest_camera else "") for c in cameras]
        ax.set_xticks(range(len(cameras)), labels)
        rows = [f"{v} vs {effects.contrast_of(v)}" for v in variants]
        ax.set_yticks(range(len(variants)), rows if ax is axes[0] else [""] * len(variants))
        ax.set_title(f"{METRIC_LABELS[metric]}: difference to the contrast row (points)", fontsize=10)
        ax.set_xlabel("camera")
    fig.colorbar(mappable, ax=list(axes), shrink=0.9, label="difference (percentage points)")
    fig.suptitle("Per-camera effects (* and full colour: Holm-corrected p < 0.05; pale: not significant)", fontsize=10)
    return fig


def learning_curves(stats: pd.DataFrame, variants: list[str], path: Path) -> Path | None:
    """Rank-1 and mAP per evaluation epoch, one line per variant (band: +- std over seeds)."""
    variants = [v for v in variants if v in set(stats["variant"])]
    metrics = [m for m in ("rank1", "mAP") if m in set(stats["metric"])]
    if not variants or not metrics:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _figure(4.6 * len(metrics), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)).ravel()
    for ax, metric in zip(axes, metrics):
        for variant in variants:
            line = stats[(stats["variant"] == variant) & (stats["metric"] == metric)].sort_values("epoch")
            if line.empty:
                continue
            epochs, mean, std = line["epoch"].to_numpy(float), line["mean"].to_numpy(float), line["std"].to_numpy(float)
            (drawn,) = ax.plot(epochs, mean, marker="o", markersize=3, label=variant)
            if (line["n"] > 1).any():
                ax.fill_between(epochs, mean - std, mean + std, color=drawn.get_color(), alpha=0.15, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(("rank-1" if metric == "rank1" else metric) + " (%)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Learning curves (evaluation epochs)", fontsize=11)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_figures(
    study: str,
    trials: Sequence[dict[str, Any]],
    cameras: Sequence[dict[str, Any]],
    curves: Sequence[dict[str, Any]],
    out_dir: Path,
    summary=None,
) -> list[Path]:
    """Draw every figure the data allows into ``out_dir``; returns the PNG files written.
    ``summary`` (:func:`analysis.summary.summarize` of the same rows, computed if not
    given) supplies the weakest camera and the per-camera effects."""
    kept = completed_trials(study, trials)
    if kept.empty:
        return []
    if summary is None:
        from analysis.summary import summarize

        summary = summarize(study, list(trials), cameras)
    variants = variant_order(kept)
    per_camera = camera_stats(kept, cameras)
    written = [
        camera_effects(summary.cameras, out_dir / "camera_effects.png"),
        camera_bars(per_camera, variants, out_dir / "camera_bars.png", summary.weakest_camera),
        camera_heatmap(per_camera, variants, out_dir / "camera_heatmap.png"),
        learning_curves(curve_stats(kept, curves), variants, out_dir / "learning_curves.png"),
    ]
    # Each evaluation target (eval.targets) on its own cameras, its weakest camera outlined.
    for label in sorted(summary.target_weakest):
        stats = camera_stats(kept, cameras, target=label)
        weakest = summary.target_weakest[label].camera
        written.append(camera_bars(stats, variants, out_dir / f"camera_bars_{label}.png", weakest, test_set=label))
        written.append(camera_heatmap(stats, variants, out_dir / f"camera_heatmap_{label}.png", test_set=label))
    return [path for path in written if path is not None]
