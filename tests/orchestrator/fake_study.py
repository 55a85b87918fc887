"""A small study's result rows written straight into a result store (no training), for the
report, figure and summary tests. Numbers are random but consistent: a trial's weakest and
average camera metrics are computed from its camera rows, as the trainable does."""

from __future__ import annotations

import json

import numpy as np

from storage import ResultStore

CAMERAS = (1, 2, 3, 4, 5, 6)
EPOCHS = (1, 2, 3)


def write_fake_study(
    store: ResultStore,
    study: str = "fake",
    *,
    variants: tuple[str, ...] = ("baseline", "+apra", "+gem"),
    seeds: tuple[int, ...] = (0, 1, 2),
    leave_one_out_parts: tuple[str, ...] = (),
    failed: tuple[tuple[str, int], ...] = (("+gem", 2),),
    rerun: tuple[str, int] | None = ("+apra", 0),
    rng_seed: int = 0,
) -> None:
    """Write trials, cameras and curves rows; ``failed`` (variant, seed) pairs fail, ``rerun``
    is written twice (an older and a newer, different result: only the newer may count)."""
    rng = np.random.default_rng(rng_seed)
    if leave_one_out_parts:
        variants = ("full", *(f"w/o {part}" for part in leave_one_out_parts))
    for index, variant in enumerate(variants):
        for seed in seeds:
            attempts = 2 if rerun == (variant, seed) else 1
            for attempt in range(attempts):
                config_hash = f"{study}-{index}-{seed}"
                finished = f"2026-01-0{1 + attempt}T00:00:{index:02d}+00:00"
                status = "failed" if (variant, seed) in failed else "completed"
                level = 0.35 + 0.08 * index + 0.02 * rng.standard_normal()
                q = {cam: float(np.clip(level + 0.12 * rng.standard_normal() - (0.15 if cam == 4 else 0), 0.01, 0.99)) for cam in CAMERAS}
                g = {cam: float(np.clip(q[cam] - 0.05 + 0.03 * rng.standard_normal(), 0.01, 0.99)) for cam in CAMERAS}
                meta = {}
                if leave_one_out_parts:
                    off = [] if variant == "full" else [variant[len("w/o ") :]]
                    meta = {"design": "leave_one_out", "parts": list(leave_one_out_parts), "off": off}
                trial = {
                    "study": study,
                    "trial_id": config_hash,
                    "config_hash": config_hash,
                    "variant": variant,
                    "variant_index": index,
                    "seed": seed,
                    "status": status,
                    "error": "NaN loss" if status == "failed" else None,
                    "finished_at": finished,
                    "design": meta.get("design", "one_at_a_time"),
                    "variant_meta": json.dumps(meta),
                }
                tables = {"trials": [trial]}
                if status == "completed":
                    trial.update(
                        rank1=float(np.clip(level + 0.25 + 0.02 * rng.standard_normal(), 0, 1)),
                        mAP=level,
                        lowest_q_mAP=min(q.values()),
                        avg_q_mAP=float(np.mean(list(q.values()))),
                        lowest_g_mAP=min(g.values()),
                        avg_g_mAP=float(np.mean(list(g.values()))),
                    )
                    base = {k: trial[k] for k in ("study", "trial_id", "config_hash", "variant", "seed")}
                    tables["cameras"] = [
                        {**base, "epoch": EPOCHS[-1], "camera": cam, "metric": metric, "value": values[cam]}
                        for metric, values in (("q_mAP", q), ("g_mAP", g))
                        for cam in CAMERAS
                    ]
                    tables["curves"] = [
                        {
                            **base,
                            "epoch": epoch,
                            "loss": 3.0 / epoch,
                            "rank1": trial["rank1"] * epoch / EPOCHS[-1],
                            "mAP": level * epoch / EPOCHS[-1],
                        }
                        for epoch in EPOCHS
                    ]
                store.write_trial(study, config_hash, tables)
