"""A large grid: counted without being built (the refusal and the announcement take no time at
any size), and a study of 10^5 trials plans within a minute of CPU and a GB."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.study_size import check_study_size
from search_spaces import AblationSpec

REPO = Path(__file__).resolve().parents[2]


def grid(values_per_axis: int, axes: int) -> dict:
    paths = ["train.lr", "loss.triplet.margin", "train.weight_decay", "augment.random_erasing.p", "loss.label_smoothing", "train.eta_min"]
    return {"design": "grid", "seeds": [0], "axes": {path: [0.001 * (i + 1) for i in range(values_per_axis)] for path in paths[:axes]}}


def test_a_million_trial_grid_is_counted_announced_or_refused_in_no_time(capsys):
    ablation = AblationSpec.model_validate(grid(10, 6))  # 10^6 trials, counted only: never expanded
    started = time.monotonic()
    check_study_size("spec.yaml", 4, ablation, max_trials=1_000_000)
    assert capsys.readouterr().err == "planning 1,000,000 trials: about 8 min of CPU and 6.0 GB\n"
    with pytest.raises(SpecError, match="plans 1,000,000 trials, more than the limit of 999,999"):
        check_study_size("spec.yaml", 4, ablation, max_trials=999_999)
    assert capsys.readouterr().err == ""  # refused: nothing to wait for, nothing announced
    check_study_size("spec.yaml", 4, AblationSpec.model_validate(grid(10, 4)), max_trials=2000 * 10)
    assert capsys.readouterr().err == ""  # 10^4: quick enough to say nothing
    assert time.monotonic() - started < 5


# Peak memory from /proc/self/status's VmHWM, which starts afresh with the new program; the
# ru_maxrss of getrusage survives execve, so a child of a large pytest process (1.3 GB deep in
# the slow suite) would report the parent's size.
PLAN = """
import json, sys, time
from orchestrator.spec import load_spec
cpu = time.process_time()
loaded = load_spec(sys.argv[1], max_trials=10**6)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"trials": len(loaded.trials), "cpu": time.process_time() - cpu, "peak_mb": peak_kb / 1024}))
"""


@pytest.mark.slow
def test_a_study_of_100000_trials_plans_within_a_minute_and_a_gigabyte(tmp_path):
    import yaml

    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump({"study": {"name": "big"}, "ablation": grid(10, 5)}), encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", PLAN, str(spec)], capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["trials"] == 100_000
    # CPU time, not wall time: the machine may be shared. Before: ~220 s and 1.4-2.4 GB.
    assert measured["cpu"] < 60, measured
    assert measured["peak_mb"] < 1024, measured
