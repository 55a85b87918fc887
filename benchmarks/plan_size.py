"""Planning a large grid: time and peak memory of ``load_spec`` (validate every trial config,
hash it) for a grid of ``--trials`` trials, against the plain baseline of validating the same
number of full trial configs from their dicts, in the same run.

    per_trial = plan seconds / trials
    ratio     = plan seconds / (trials x one plain TrialConfig.model_validate of the full tree)

The plain baseline is what expansion cost per trial before configs shared their unchanged
sections (every config validated whole, twice, then hashed): a ratio below 1 is planning faster
than one whole validation per trial. Each measurement runs in a fresh process, so ``peak MB`` is
that process's maximum resident set (Python, pydantic and the package imports included: ~90 MB
for a one-trial spec).

    python benchmarks/plan_size.py --trials 100000

Measured on the 2-core development machine, shared with other test runs (load average in the
table; CPU seconds are the figure to compare), five axes x 10 values, one seed. "Before" is
``--repo`` at main 75d55fc, the same expansion as before this change:

==========  ================  ========  ========  =======  ========  ===========  =====
trials      code              load      wall      CPU      peak MB   CPU / trial  ratio
==========  ================  ========  ========  =======  ========  ===========  =====
10^4        before (75d55fc)  16.8      57.8 s    17.1 s   170       1.71 ms      9.88
10^4        shared sections   15.9      19.1 s     5.5 s    99       0.55 ms      2.66
10^5        before (75d55fc)  12.7      916.4 s   220.5 s  1410      2.21 ms      10.88
10^5        shared sections   13.2      269.0 s    49.1 s   663      0.49 ms      2.87
==========  ================  ========  ========  =======  ========  ===========  =====

(``ratio``: CPU per planned trial over CPU per whole validation, measured in the same run.)
On an idle machine ``orchestrator plan`` of the 10^5-trial grid took 56 s wall.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

AXES = {
    "train.lr": lambda i: f"{1e-4 * (i + 1):.6f}",
    "loss.triplet.margin": lambda i: f"{0.1 + 0.01 * i:.3f}",
    "train.weight_decay": lambda i: f"{1e-5 * (i + 1):.6f}",
    "augment.random_erasing.p": lambda i: f"{0.02 * i:.2f}",
    "loss.label_smoothing": lambda i: f"{0.01 * i:.2f}",
}


def grid_spec(trials: int) -> str:
    """A grid of exactly ``trials`` trials: 10 values per axis, the last axis shorter."""
    lines = []
    remaining = trials
    for path, value in AXES.items():
        if remaining <= 1:
            break
        count = min(10, remaining)
        if remaining % count:
            raise SystemExit(f"--trials must be a power of 10 (up to 10^{len(AXES)}), got {trials}")
        lines.append(f"    {path}: [{', '.join(value(i) for i in range(count))}]")
        remaining //= count
    axes = "\n".join(lines)
    return (
        textwrap.dedent(
            """\
        study: {name: plan-size}
        baseline:
          dataset: {name: synthetic, height: 64, width: 32}
          train: {epochs: 1}
        ablation:
          design: grid
          seeds: [0]
          axes:
        """
        )
        + axes
        + "\n"
    )


# Peak memory from VmHWM (it starts afresh with the new program; getrusage's ru_maxrss survives
# execve and would count the parent's size).
PLAN = """
import json, sys, time
from orchestrator.spec import load_spec
started, cpu = time.perf_counter(), time.process_time()
loaded = load_spec(sys.argv[1], max_trials=10**7)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
print(json.dumps({"trials": len(loaded.trials), "seconds": seconds, "cpu": cpu, "peak_mb": peak}))
"""

PLAIN = """
import json, sys, time
from search_spaces.trial_config import Recipe, TrialConfig
tree = {**Recipe().model_dump(mode="python"), "seed": 0}
tree["train"] = {**tree["train"], "lr": 0.001}
count = int(sys.argv[1])
started = time.process_time()
for _ in range(count):
    TrialConfig.model_validate(tree)
print(json.dumps({"cpu_each": (time.process_time() - started) / count}))
"""


def run(code: str, *args: str, repo: Path = REPO) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=repo,
        check=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repo", type=Path, default=REPO, help="Checkout whose planning is measured (e.g. one at an older commit).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "grid.yaml"
        spec.write_text(grid_spec(args.trials), encoding="utf-8")
        plain = run(PLAIN, str(min(args.trials, 2000)))
        plan = run(PLAN, str(spec), repo=args.repo)
    assert plan["trials"] == args.trials, plan
    per_trial = plan["cpu"] / plan["trials"]
    load = os.getloadavg()[0]
    print(f"trials 10^{round(math.log10(args.trials))} ({plan['trials']}), load average {load:.1f}")
    print(
        f"plan      {plan['seconds']:.1f} s wall, {plan['cpu']:.1f} s CPU, peak {plan['peak_mb']:.0f} MB, {1000 * per_trial:.2f} ms CPU per trial"
    )
    print(f"baseline  {1000 * plain['cpu_each']:.2f} ms CPU per whole TrialConfig validation")
    print(f"ratio     {per_trial / plain['cpu_each']:.2f}")


if __name__ == "__main__":
    main()
