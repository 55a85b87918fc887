"""Which rule for "the weakest camera" keeps the paired test honest? A simulation, no training.

Draws A/A studies (no variant does anything) from the noise model of
``tests/analysis/aa_model.py`` -- cameras 4-6 nearly tied for the lowest, so which one looks
weakest is decided by noise -- and reads each variant's paired difference to the baseline at
the weakest camera chosen three ways:

* ``reference``: the camera with the lowest mean q-mAP of the baseline row, on all its seeds
  (the rule the table used before: the choice sees the seeds it then tests);
* ``cross-fitted``: seed by seed, the camera lowest on the baseline's *other* seeds;
* ``pooled``: the camera lowest on the mean over every row and seed (what
  :mod:`analysis.weakest` does now).

Prints, per rule, the mean difference (bias, in points: should be 0) and the share of
comparisons a two-sided paired t-test at 5% rejects (should be 0.05), with its Monte Carlo
standard error. Run from the repository root::

    python benchmarks/weakest_camera_rules.py --studies 3000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.analysis.aa_model import aa_study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=3000)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rng-seed", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(args.rng_seed)
    rules = ("reference", "cross-fitted", "pooled")
    gains: dict[str, list[float]] = {rule: [] for rule in rules}
    rejected = dict.fromkeys(rules, 0)
    for _ in range(args.studies):
        _, cameras = aa_study(rng, args.variants, args.seeds)
        q: dict[str, dict[int, dict[int, float]]] = {}
        for row in cameras:
            if row["metric"] == "q_mAP":
                variant, seed = row["config_hash"].rsplit("-", 1)
                q.setdefault(variant, {}).setdefault(int(seed), {})[row["camera"]] = row["value"]
        base = q["baseline"]
        ids = sorted(base[0])
        lowest = lambda trials: min(ids, key=lambda c: np.mean([t[c] for t in trials]))  # noqa: E731
        reference = lowest(list(base.values()))
        pooled = lowest([t for seeds in q.values() for t in seeds.values()])
        crossed = {s: lowest([base[o] for o in base if o != s]) for s in base}
        pick = {"reference": lambda s: reference, "cross-fitted": crossed.__getitem__, "pooled": lambda s: pooled}
        for variant in (v for v in q if v != "baseline"):
            for rule in rules:
                differences = [q[variant][s][pick[rule](s)] - base[s][pick[rule](s)] for s in range(args.seeds)]
                gains[rule].append(float(np.mean(differences)))
                rejected[rule] += stats.ttest_1samp(differences, 0.0).pvalue < 0.05
    comparisons = args.studies * args.variants
    error = math.sqrt(0.05 * 0.95 / comparisons)
    print(f"{comparisons} A/A comparisons, {args.seeds} seeds; a fair rule: bias 0, rejects 0.05 (MC error {error:.4f})")
    for rule in rules:
        print(f"rule={rule} bias_points={100 * np.mean(gains[rule]):+.2f} rejects={rejected[rule] / comparisons:.4f}")


if __name__ == "__main__":
    main()
