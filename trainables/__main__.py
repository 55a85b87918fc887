"""Run one trial alone, without Ray: ``python -m trainables trial.yaml [--device cpu]``.

The file holds a trial config (the ``baseline:`` block of a spec plus an optional ``seed``, and
the ``plugins`` it uses: a list of files as in a spec, or the record of a dumped config);
metrics are printed once per epoch. Useful to debug a single configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from search_spaces.plugins import PluginError, load_plugins, load_recorded
from search_spaces.trial_config import TrialConfig
from trainables.trial import RuntimeOptions, run_trial


def load_trial_plugins(raw: dict, folder: Path) -> None:
    """Load the plugins a trial file names: a ``plugins:`` list of files/modules (relative to the
    file, as in a spec; replaced by the computed record), or the ``{name: identity}`` record of
    a dumped trial config, whose files are looked for beside the trial file and in the cwd."""
    named = raw.get("plugins")
    if isinstance(named, list):
        load_plugins(named, folder)
        raw.pop("plugins")
    elif isinstance(named, dict):
        load_recorded(named, [folder, Path.cwd()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainables", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="trial config as YAML or JSON")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    try:
        text = args.config.read_text(encoding="utf-8")
        raw = (json.loads(text) if args.config.suffix == ".json" else yaml.safe_load(text)) or {}
        load_trial_plugins(raw, args.config.resolve().parent)
        config = TrialConfig.model_validate(raw)
    except PluginError as err:
        where = ":".join(str(p) for p in (err.file, err.line) if p is not None) or str(args.config)
        print(f"error: {where}: {err}", file=sys.stderr)
        return 2
    except (OSError, ValueError, yaml.YAMLError) as err:
        detail = err.errors()[0] if isinstance(err, ValidationError) else None
        where = ".".join(str(p) for p in detail["loc"]) + ": " + detail["msg"] if detail else str(err)
        print(f"error: {args.config}: {where}", file=sys.stderr)
        return 2
    run_trial(config, runtime=RuntimeOptions(device=args.device, threads=args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
