"""Per-trial overhead of a study of many short trials, as a fraction of the study's wall time.

A study of ``--trials`` one-epoch trials on the synthetic dataset (tiny images, a small ResNet)
runs through the real CLI (``orchestrator launch``: Ray Tune, MLflow, Parquet), ``--concurrent``
at a time. Each trial's own work -- its training and evaluation seconds, as the trial measured
them and the store recorded them -- is the plain baseline; everything else the study's wall time
holds (worker start-up and imports, Tune bookkeeping, MLflow and Parquet writes) is overhead:

    slot_work   = sum(train_seconds + eval_seconds) / concurrent
    overhead    = wall - slot_work                     (seconds, whole study)
    fraction    = overhead / wall
    per_trial   = overhead / trials                    (what the study loses per trial: the
                                                        figure of issue 14, 2.3 s before)
    per_slot    = overhead * concurrent / trials       (what each slot loses per trial it runs)

The dataset is generated before the clock starts, so the figure is the orchestration cost
alone. The overhead is split in two: the study's fixed cost outside the Tune run (the command's
imports, checks, decoding, Ray start, the report at the end: ``wall`` minus the last trial's
``elapsed_study_seconds``, which the recorder counts from the start of the Tune run) and the
cost between and around trials inside it, which is what more trials multiply.

Measured on the 2-core development machine, 2 at a time, while other work shared it (so the
trials' own work took about 3x what it takes on the idle machine, where 60 of them add up to
about 102 s per slot; compare fractions and ratios, not seconds):

=============  ======  ==========  =======  =============  =========  ===============  ==========
workers        trials  load avg.   wall     work per slot  overhead   per trial (slot) in Tune run
=============  ======  ==========  =======  =============  =========  ===============  ==========
fresh (before)  60     2-4.5       599.4 s  320.8 s        46.5%      9.29 s           8.78 s
reused (after)  60     1-4         350.7 s  308.7 s        12.0%      1.40 s           0.94 s
reused (after)  60     0.4-2 idle  254.8 s  215.6 s        15.4%      1.30 s           0.81 s
fresh (before)  20     9-12        747.0 s  400.9 s        46.3%      34.6 s
reused (after)  20     9-12        458.4 s  372.0 s        18.9%      8.64 s
=============  ======  ==========  =======  =============  =========  ===============  ==========

("in Tune run": per trial inside the Tune run, without the fixed start-up and report cost.)

Usage::

    python benchmarks/trial_overhead.py --trials 60 --concurrent 2                  # workers reused
    python benchmarks/trial_overhead.py --trials 60 --concurrent 2 --fresh-workers  # the baseline
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds

SPEC = """\
study: {{name: overhead}}
baseline:
  dataset: {{name: synthetic, height: 32, width: 16}}
  model: {{backbone: resnet10t}}
  train: {{epochs: 1, ids_per_batch: 4, images_per_id: 2, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
ablation:
  design: list
  variants: [{{name: baseline}}]
  seeds: [{seeds}]
resources: {{cpus_per_trial: 1, max_concurrent_trials: {concurrent}}}
output: {{dir: {dir}}}
"""


def orchestrator() -> str:
    return str(Path(sys.executable).with_name("orchestrator"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--fresh-workers", action="store_true", help="a new worker per trial (REID_ORCH_REUSE_WORKERS=0), the baseline")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        study_dir = Path(tmp) / "study"
        spec = Path(tmp) / "overhead.yaml"
        seeds = ", ".join(str(s) for s in range(args.trials))
        spec.write_text(SPEC.format(seeds=seeds, concurrent=args.concurrent, dir=study_dir))
        env = {**os.environ, "REID_ORCH_NUM_CPUS": str(args.concurrent), "REID_ORCH_REUSE_WORKERS": "0" if args.fresh_workers else "1"}
        # Generate the synthetic dataset (first use) outside the timed run.
        warm = "from search_spaces.trial_config import DatasetConfig; from trainables.data.datasets import load_reid_data; load_reid_data(DatasetConfig())"
        subprocess.run([sys.executable, "-c", warm], env=env, check=True)
        started = time.perf_counter()
        subprocess.run([orchestrator(), "launch", str(spec)], env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started

        table = ds.dataset(str(study_dir / "results" / "trials"), format="parquet").to_table(
            columns=["status", "train_seconds", "eval_seconds", "elapsed_study_seconds"]
        )
        rows = table.to_pylist()
    done = [r for r in rows if r["status"] == "completed"]
    if len(done) != args.trials:
        raise SystemExit(f"expected {args.trials} completed trials, found {len(done)}")
    work = sum(r["train_seconds"] + r["eval_seconds"] for r in done)
    slot_work = work / args.concurrent
    overhead = wall - slot_work
    print(f"trials {args.trials}, {args.concurrent} at a time, {'a fresh worker per trial' if args.fresh_workers else 'workers reused'}")
    print(f"study wall time          {wall:8.1f} s")
    print(f"trial work per slot      {slot_work:8.1f} s  (train + eval, the baseline)")
    print(f"overhead                 {overhead:8.1f} s  = {overhead / wall:.1%} of the study")
    print(f"overhead per trial       {overhead / args.trials:8.2f} s  (overhead / trials)")
    print(f"  per slot               {overhead * args.concurrent / args.trials:8.2f} s  (overhead x concurrent / trials)")
    tune_run = max(r["elapsed_study_seconds"] for r in done)
    fixed = wall - tune_run
    between = tune_run - slot_work
    print(f"  outside the Tune run   {fixed:8.1f} s  (imports, checks, Ray start, report: paid once)")
    print(f"  inside it              {between:8.1f} s  = {between / args.trials:.2f} s per trial (workers' start, then what more trials multiply)")


if __name__ == "__main__":
    main()
