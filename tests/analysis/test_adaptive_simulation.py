"""benchmarks/adaptive_seeds.py at a small size: A/A studies decided by the study's own code keep
the family-wise error at 5% (within Monte Carlo error), and the same simulation catches a
procedure that forgets the multiplicity of comparisons."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import analysis.sequential as sequential

STUDIES = 1500


@pytest.fixture
def bench(monkeypatch):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "adaptive_seeds.py"
    spec = importlib.util.spec_from_file_location("adaptive_seeds", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "adaptive_seeds", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def family_error(bench, comparisons: int, studies: int = STUDIES) -> tuple[float, float]:
    design = bench.Design(first_wave=3, max_seeds=8, seeds_per_wave=2, smallest_effect=3.7)
    declared, _, trials, _ = bench.simulate([0.0] * comparisons, 3.7, design, studies, seed=11)
    rate = float(declared.any(axis=1).mean())
    assert 3 * (comparisons + 1) <= trials <= 8 * (comparisons + 1)
    return rate, math.sqrt(0.05 * 0.95 / studies)


def test_a_over_a_studies_keep_the_family_wise_error_at_five_percent(bench):
    rate, se = family_error(bench, comparisons=4)
    assert rate <= 0.05 + 3 * se, rate


def test_the_simulation_catches_comparisons_each_tested_at_the_full_level(bench, monkeypatch):
    # Each of 4 comparisons at alpha = 0.05 (no Holm, no Bonferroni): the family-wise error of
    # 4 dependent tests is far above 5%, and the same check fails.
    original = sequential.SequentialTests.__post_init__

    def full_level_each(self):
        original(self)
        self.levels = {key: self.alpha for key in self.keys}
        self.first_level = self.alpha

    monkeypatch.setattr(sequential.SequentialTests, "__post_init__", full_level_each)
    rate, se = family_error(bench, comparisons=4)
    assert rate > 0.05 + 3 * se, rate


def test_large_effects_are_found_and_stop_early(bench):
    design = bench.Design(first_wave=3, max_seeds=8, seeds_per_wave=2, smallest_effect=3.7)
    declared, _, trials, _ = bench.simulate([4.0, 4.0], 3.7, design, 200, seed=3)
    assert declared.mean() > 0.95
    assert trials < 0.8 * 3 * 8  # far fewer than 8 seeds for each of the 3 rows
    assert np.isfinite(trials)
