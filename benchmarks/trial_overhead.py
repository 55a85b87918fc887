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

Measured on the 2-core development machine, 2 at a time ("per trial" is overhead / trials, the
measure of issue 14's 2.3 s; "per slot" is what each of the 2 slots loses per trial it runs):

==============================  ==========  =======  =============  =============  =========  =========
workers (commit)                load avg.   wall     work per slot  overhead       per trial  per slot
==============================  ==========  =======  =============  =============  =========  =========
fresh, before reuse              2-4.5      599.4 s  320.8 s        278.6 s 46.5%  4.64 s     9.29 s
reused (9c05336)                 0.4-2      254.8 s  215.6 s         39.2 s 15.4%  0.65 s     1.30 s
reused (9c05336)                 idle-2     252.1 s  215.5 s         36.6 s 14.5%  0.61 s     1.22 s
reused, cheaper trial start      idle-2     160.9 s  136.5 s         24.5 s 15.2%  0.41 s     0.82 s
reused, cheaper trial start      idle-2     161.5 s  137.3 s         24.2 s 15.0%  0.40 s     0.81 s
fresh (ea2030f)                  idle-2     326.8 s  138.9 s        187.9 s 57.5%  3.13 s     6.26 s
reused (ea2030f)                 idle-2     166.8 s  140.4 s         26.4 s 15.8%  0.44 s     0.88 s
reused (ea2030f)                 idle-2     160.3 s  136.7 s         23.6 s 14.7%  0.39 s     0.79 s
==============================  ==========  =======  =============  =============  =========  =========

"Cheaper trial start" (a79f25e): the worker's imports frozen out of the garbage collector
(``gc.collect`` between trials went from 0.2 s to ~0), one model build per trial instead of two,
MLflow opened while Ray starts and the report written while Ray stops. Fused optimizers (same
commit) cut the trials' own work (7.2 s to 4.5 s per one-epoch trial), not the overhead. Of the
24 s left, ~14 s is paid once outside the Tune run (imports and checks ~4 s, Ray start beside
MLflow ~4 s, dataset decoding, Ray stop beside the report) and ~4.5 s is each worker's first
start (importing torch and timm) inside it; between trials a slot loses ~0.17 s (trial set-up
0.08 s, Tune's hand-over 0.09 s).

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
    print(
        f"  inside it              {between:8.1f} s  = {between / args.trials:.2f} s per trial (workers' start, then what more trials multiply)"
    )


if __name__ == "__main__":
    main()
