"""A noise model of an ablation study in which no variant does anything (A/A), for simulating
many tables without training.

A trial's value of camera c at seed s is

    m_c + u_s + e_(v,s) + e_(v,s,c)

with m_c the camera's true mean (one deliberately weak camera, and cameras whose means lie
close enough that which one is lowest is decided by noise), u_s a seed effect shared by every
variant at that seed (same data order and initialisation: the reason pairing by seed helps),
e_(v,s) a trial effect common to all of its cameras and e_(v,s,c) camera noise. The overall
metrics follow from the cameras: mAP is their mean plus a little noise, rank-1 tracks mAP.
Spreads are of the order measured on the synthetic study (a few points of mAP between seeds).
Every variant, the reference included, draws from the same distribution: any star is a false
positive.
"""

from __future__ import annotations

import json

import numpy as np

CAMERA_MEANS = (0.62, 0.58, 0.55, 0.47, 0.46, 0.45)  # cameras 4-6 nearly tied for the lowest


def aa_study(rng: np.random.Generator, variants: int, seeds: int) -> tuple[list[dict], list[dict]]:
    """(trial rows, camera rows) of one simulated study: ``variants`` rows besides the
    reference ``baseline``, each at ``seeds`` seeds."""
    names = ["baseline", *(f"+v{i}" for i in range(variants))]
    seed_effect = rng.normal(0.0, 0.03, size=seeds)
    trials, cameras = [], []
    for index, name in enumerate(names):
        for seed in range(seeds):
            trial_effect = rng.normal(0.0, 0.015)
            q = np.asarray(CAMERA_MEANS) + seed_effect[seed] + trial_effect + rng.normal(0.0, 0.04, size=len(CAMERA_MEANS))
            g = q - 0.05 + rng.normal(0.0, 0.02, size=len(CAMERA_MEANS))
            mAP = float(q.mean() + rng.normal(0.0, 0.005))
            key = f"{name}-{seed}"
            trials.append(
                {
                    "study": "aa",
                    "variant": name,
                    "variant_index": index,
                    "seed": seed,
                    "config_hash": key,
                    "status": "completed",
                    "finished_at": "2026-01-01",
                    "variant_meta": json.dumps({"compare_to": None if index == 0 else "baseline"}),
                    "mAP": mAP,
                    "rank1": mAP + 0.25 + float(rng.normal(0.0, 0.01)),
                    "avg_q_mAP": float(q.mean()),
                    "avg_g_mAP": float(g.mean()),
                }
            )
            for camera in range(len(CAMERA_MEANS)):
                cameras.append({"config_hash": key, "camera": camera + 1, "metric": "q_mAP", "value": float(q[camera])})
                cameras.append({"config_hash": key, "camera": camera + 1, "metric": "g_mAP", "value": float(g[camera])})
    return trials, cameras
