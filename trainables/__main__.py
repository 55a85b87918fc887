"""Run one trial alone, without Ray: ``python -m trainables FILE [--hash H | --variant V --seed S]``.

FILE is a trial config (a recipe plus ``seed``), one trial or the whole plan as
``orchestrator plan SPEC --format json`` prints it, or a study spec; a plan or a spec needs
``--hash`` (a prefix will do) or ``--variant``/``--seed`` to choose its trial
(:mod:`trainables.trial_input`). The trial runs with the torch threads its study's trials
use (``resources.cpus_per_trial``), so on the same device it reproduces the study's numbers;
``--threads`` overrides. Metrics are printed once per epoch. Useful to debug one configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from search_spaces.metrics import LOSS, MAP, RANK1
from search_spaces.plugins import PluginError
from trainables.trial import RuntimeOptions, run_trial
from trainables.trial_input import ChosenTrial, TrialInputError, choose_trial, read_file


FINAL_KEYS = (RANK1, MAP, LOSS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainables", description=__doc__.splitlines()[0])
    parser.add_argument(
        "file", type=Path, help="a trial config, a trial or the whole plan from `orchestrator plan --format json`, or a spec (YAML or JSON)"
    )
    parser.add_argument("--hash", dest="config_hash", default=None, help="the trial's config hash (or a prefix), in a plan or a spec")
    parser.add_argument("--variant", default=None, help="the trial's variant, in a plan or a spec")
    parser.add_argument("--seed", type=int, default=None, help="the trial's seed, in a plan or a spec")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: as the study's trials, resources.cpus_per_trial)"
    )
    parser.add_argument("--show", action="store_true", help="print the chosen trial and its thread count, and exit")
    return parser


def _chosen(args: argparse.Namespace) -> ChosenTrial | str:
    """The chosen trial, or the one-line error to print."""
    try:
        raw = read_file(args.file)
        return choose_trial(args.file, raw, variant=args.variant, seed=args.seed, config_hash=args.config_hash)
    except PluginError as err:
        where = ":".join(str(p) for p in (err.file, err.line) if p is not None) or str(args.file)
        return f"{where}: {err}"
    except TrialInputError as err:
        return f"{args.file}: {err}"
    except (OSError, ValueError, yaml.YAMLError) as err:
        detail = err.errors()[0] if isinstance(err, ValidationError) else None
        return f"{args.file}: " + (".".join(str(p) for p in detail["loc"]) + ": " + detail["msg"] if detail else str(err))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = _chosen(args)
    if isinstance(chosen, str):
        print(f"error: {chosen}", file=sys.stderr)
        return 2
    threads = args.threads or chosen.threads
    if args.show:
        print(f"{chosen.label}: {threads} thread(s), device {args.device}")
        return 0
    print(f"trial {chosen.label}, {threads} thread(s)", flush=True)
    final = run_trial(chosen.config, runtime=RuntimeOptions(device=args.device, threads=threads))
    # Full precision, to compare with the study's stored row (the epoch lines round to 4 digits).
    print("final: " + " ".join(f"{key}={final[key]!r}" for key in FINAL_KEYS if key in final), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
