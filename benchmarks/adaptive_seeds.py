"""Adaptive seeds by simulation: the error they keep, their power, and the seeds they save.

No training: studies are drawn from a noise model and decided by the study's own code
(:func:`analysis.seed_decisions.replay`, the function the launch decides its waves with).

**Noise model.** A one-at-a-time table: a reference row and ``m`` variants, each compared with
the reference on the study metric, paired by seed. Row ``j`` at seed ``s`` scores
``mu_j + u_s + e_js`` (points): ``u_s`` is what a seed does to every row alike (data order,
shared initialisation) and cancels in a pair; ``e_js ~ N(0, sigma^2 / 2)`` is the row's own
noise, so a paired difference has standard deviation ``sigma`` and two comparisons sharing the
reference are correlated (0.5), as in a real table. ``sigma`` is measured on the synthetic
study: the pooled standard deviation of the paired differences of mAP over its comparisons
(``--from-store STORE --study NAME``). The default, 2.7 points, is the quickstart's
random-erasing comparison at 8 seeds (``quickstart.yaml`` with ``seeds: [0, ..., 7]``,
differences -6.9 -14.6 -12.7 -10.3 -15.3 -11.4 -11.1 -9.6, sd 2.72, 7 df). Every quantity
printed is in units of sigma, so its value only names D and the effects in points.

**Effect mix.** ``--effects`` are the variants' true effects in units of sigma (default
``0 0.5 1 2 4``: one row without effect, one small, one of a seed's noise, two large, as an
ablation table of modules and tricks usually holds); ``--smallest-effect`` D in units of sigma
(default 1).

**What is printed.** ``false_positive_rate``: the share of A/A studies (every effect 0) in which
any comparison is declared an effect (the family-wise error, at most 0.05 by design), with its
Monte Carlo standard error; ``power``: the share of non-null comparisons of the mix declared an
effect; ``seeds_saved``: 1 - trials the adaptive studies ran / trials of the smallest fixed
design (every row the same seeds, paired t, Holm across the comparisons) whose power on the mix
is at least as high, simulated the same way. Also: the error of "no effect larger than D"
claims when every true effect is exactly D, and the saving against a fixed design at N seeds.

Usage: ``python benchmarks/adaptive_seeds.py [--studies 20000] [--first-wave 3] [--max-seeds 8]
[--seeds-per-wave 2] [--from-store studies/quickstart/results --study quickstart]``

Measured 2026-12-05 (defaults; ``--from-store`` on the 8-seed quickstart: sigma 2.72 points):
``false_positive_rate=0.0466 power=0.629 seeds_saved=0.076`` (SE 0.0015 over 20000 A/A
studies; power SE 0.004): 44.4 trials a study against 48 for the fixed design of the same
power (8 seeds); false effects on the mix's null row 0.026; "no effect > D" claimed with every
effect exactly D: 0.021 (SE 0.002). The saving grows with the share of clear effects: effects
``1 2 4`` sigma save 16.9% (power 0.888, fixed design 8 seeds), ``2 4 4`` save 29.3%
(4000 A/A studies, false positives 0.049, SE 0.003). Rows without an effect, or with one below
the noise, are rarely decided before N, and the reference row runs while any comparison is open.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.seed_decisions import AdaptivePlan, replay  # noqa: E402
from analysis.sequential import EFFECT, NO_EFFECT  # noqa: E402
from analysis.stats import ALPHA, holm  # noqa: E402

#: Pooled SD of the paired mAP differences (points) measured on the synthetic study.
MEASURED_SIGMA = 2.7


@dataclass(frozen=True)
class Design:
    first_wave: int
    max_seeds: int
    seeds_per_wave: int
    smallest_effect: float  # points

    @property
    def looks(self) -> list[int]:
        looks = [self.first_wave]
        while looks[-1] < self.max_seeds:
            looks.append(min(self.max_seeds, looks[-1] + self.seeds_per_wave))
        return looks


@dataclass
class Outcome:
    effects: np.ndarray  # bool per comparison: declared an effect
    no_effect: np.ndarray  # bool per comparison: declared no effect larger than D
    trials: int  # trials the study ran (every row, every seed it got)


def draw_rows(rng: np.random.Generator, effects: np.ndarray, seeds: int, sigma: float) -> np.ndarray:
    """(m + 1) x seeds scores: the reference row first, then one row per comparison."""
    means = np.concatenate([[0.0], effects])
    return means[:, None] + rng.normal(0.0, sigma / math.sqrt(2), size=(len(means), seeds))


def adaptive_study(scores: np.ndarray, design: Design) -> Outcome:
    """Decide one study as the launch does (:func:`analysis.seed_decisions.replay` on its
    values, every trial finished); a row runs seeds while one of its comparisons is open."""
    m = scores.shape[0] - 1
    names = ["reference", *(f"v{j}" for j in range(m))]
    plan = AdaptivePlan("mAP", tuple(range(design.max_seeds)), tuple(design.looks), design.smallest_effect, ALPHA)
    # replay reads the store's fractions and D in points: the simulated points go in as fractions.
    values = {name: {s: float(scores[i, s]) / 100 for s in range(design.max_seeds)} for i, name in enumerate(names)}
    finished = {(name, s) for name in names for s in range(design.max_seeds)}
    state = replay(plan, {name: "reference" for name in names[1:]}, values, finished)
    decisions = [state.decisions[name] for name in names[1:]]
    seeds = [design.looks[d.look - 1] for d in decisions]
    return Outcome(
        np.array([d.outcome == EFFECT for d in decisions]), np.array([d.outcome == NO_EFFECT for d in decisions]), sum(seeds) + max(seeds)
    )


def fixed_effects(scores: np.ndarray, seeds: int) -> np.ndarray:
    """A fixed design at ``seeds``: paired t per comparison, Holm across them at 0.05."""
    from scipy.stats import t

    d = scores[1:, :seeds] - scores[0, :seeds]
    se = d.std(axis=1, ddof=1) / math.sqrt(seeds)
    p = 2 * t.sf(np.abs(d.mean(axis=1) / se), seeds - 1)
    return np.array([q < ALPHA for q in holm(list(p))])


def simulate(
    effects: list[float], sigma: float, design: Design, studies: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """(effects declared, no-effect claims, mean trials, scores) over ``studies`` studies."""
    rng = np.random.default_rng(seed)
    truth = np.asarray(effects, dtype=float) * sigma
    declared, no_effect, trials, all_scores = [], [], [], []
    for _ in range(studies):
        scores = draw_rows(rng, truth, design.max_seeds, sigma)
        outcome = adaptive_study(scores, design)
        declared.append(outcome.effects)
        no_effect.append(outcome.no_effect)
        trials.append(outcome.trials)
        all_scores.append(scores)
    return np.array(declared), np.array(no_effect), statistics.fmean(trials), np.array(all_scores)


def fixed_power(scores: np.ndarray, seeds: int, nonnull: np.ndarray) -> float:
    """Mean power over the non-null comparisons of a fixed design at ``seeds``."""
    hits = np.array([fixed_effects(study, seeds) for study in scores])
    return float(hits[:, nonnull].mean())


def standard_error(rate: float, count: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / count)


def run(args: argparse.Namespace) -> dict[str, float]:
    sigma = args.sigma
    design = Design(args.first_wave, args.max_seeds, args.seeds_per_wave, args.smallest_effect * sigma)
    m = len(args.effects)
    nonnull = np.asarray(args.effects) != 0

    null_declared, _, _, _ = simulate([0.0] * m, sigma, design, args.studies, args.seed)
    false_positive = float(null_declared.any(axis=1).mean())

    declared, _, trials, scores = simulate(args.effects, sigma, design, args.power_studies, args.seed + 1)
    power = float(declared[:, nonnull].mean()) if nonnull.any() else float("nan")
    # The mix's rows without effect, while the others' effects pass their level on (Holm).
    mix_false = float(declared[:, ~nonnull].any(axis=1).mean()) if (~nonnull).any() else float("nan")

    # The smallest fixed design with at least that power on the same draws.
    fixed_seeds = None
    for seeds in range(max(2, args.first_wave), 4 * args.max_seeds + 1):
        if seeds > scores.shape[2]:
            rng = np.random.default_rng(args.seed + 2)
            scores = np.array([draw_rows(rng, np.asarray(args.effects) * sigma, seeds, sigma) for _ in range(args.power_studies)])
        if fixed_power(scores, seeds, nonnull) >= power:
            fixed_seeds = seeds
            break
    rows = m + 1
    fixed_trials = rows * fixed_seeds if fixed_seeds is not None else float("nan")
    saved = 1 - trials / fixed_trials

    _, at_d, _, _ = simulate([args.smallest_effect] * m, sigma, design, args.power_studies, args.seed + 3)
    equivalence_error = float(at_d.any(axis=1).mean())
    return {
        "false_positive_rate": false_positive,
        "false_positive_se": standard_error(false_positive, args.studies),
        "power": power,
        "power_se": standard_error(power, args.power_studies * max(1, int(nonnull.sum()))),
        "seeds_saved": saved,
        "adaptive_trials": trials,
        "fixed_seeds": float(fixed_seeds) if fixed_seeds is not None else float("nan"),
        "fixed_trials": fixed_trials,
        "saved_vs_max": 1 - trials / (rows * args.max_seeds),
        "mix_false_positive": mix_false,
        "equivalence_error": equivalence_error,
        "equivalence_error_se": standard_error(equivalence_error, args.power_studies),
    }


def measured_sigma(store_uri: str, study: str) -> tuple[float, int]:
    """Pooled SD (points) of the paired differences of the study metric over every comparison
    of ``study`` in the store, and its degrees of freedom."""
    from analysis.seed_decisions import contrasts_of, metric_values
    from storage import ResultStore

    rows = ResultStore(store_uri).read_rows("trials", study)
    values = metric_values(rows, "mAP")
    squares, df = 0.0, 0
    for variant, contrast in contrasts_of(rows).items():
        mine, theirs = values.get(variant, {}), values.get(contrast, {})
        d = [100 * (mine[s] - theirs[s]) for s in sorted(set(mine) & set(theirs))]
        if len(d) > 1:
            squares += (len(d) - 1) * statistics.variance(d)
            df += len(d) - 1
    if not df:
        raise SystemExit(f"{study}: no comparison with two or more paired seeds in {store_uri}")
    return math.sqrt(squares / df), df


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20000, help="A/A studies for the false-positive rate.")
    parser.add_argument("--power-studies", type=int, default=4000, help="Studies of the effect mix for power and seeds.")
    parser.add_argument("--effects", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0], help="True effects, in units of sigma.")
    parser.add_argument("--smallest-effect", type=float, default=1.0, help="D, in units of sigma.")
    parser.add_argument("--sigma", type=float, default=MEASURED_SIGMA, help="SD of a paired difference (points).")
    parser.add_argument("--from-store", help="Measure sigma on this result store's study (--study).")
    parser.add_argument("--study", default="quickstart")
    parser.add_argument("--first-wave", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=8)
    parser.add_argument("--seeds-per-wave", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.from_store:
        args.sigma, df = measured_sigma(args.from_store, args.study)
        print(f"sigma={args.sigma:.2f} points (pooled paired mAP differences of '{args.study}', {df} df)")
    result = run(args)
    print(f"false_positive_rate={result['false_positive_rate']:.4f} power={result['power']:.3f} seeds_saved={result['seeds_saved']:.3f}")
    print(
        f"  Monte Carlo SE: false positives {result['false_positive_se']:.4f} ({args.studies} A/A studies), power {result['power_se']:.3f}; "
        f"adaptive {result['adaptive_trials']:.1f} trials/study vs fixed {result['fixed_trials']:.0f} "
        f"({result['fixed_seeds']:.0f} seeds, same power); vs fixed at N={args.max_seeds}: {result['saved_vs_max']:.3f} saved"
    )
    print(f"  false effects among the mix's rows without effect (the others passing their level on): {result['mix_false_positive']:.4f}")
    print(
        f"  'no effect > D' claimed when every effect is exactly D: {result['equivalence_error']:.4f} "
        f"(SE {result['equivalence_error_se']:.4f}); effects {args.effects} sigma, D {args.smallest_effect} sigma, "
        f"sigma {args.sigma:.2f} points, looks at {Design(args.first_wave, args.max_seeds, args.seeds_per_wave, 0).looks} seeds"
    )


if __name__ == "__main__":
    main()
