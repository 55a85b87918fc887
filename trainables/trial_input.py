"""What ``python -m trainables`` accepts as a trial, and the thread count that reproduces it.

Four shapes of input file, told apart by their keys:

* a **trial config**: a recipe (the ``baseline:`` block of a spec) plus an optional ``seed``
  and ``plugins`` (files as in a spec, or the record of a dumped config);
* **one trial as** ``orchestrator plan SPEC --format json`` **prints it**: an object with
  ``config`` and ``config_hash`` (and ``threads``);
* **the whole plan** (an object with ``trials``): one trial of it is chosen by ``--hash``
  (a prefix will do) or by ``--variant`` and ``--seed``;
* **a study spec** (an object with ``study``): expanded as a launch expands it (its
  ``baseline`` and ``ablation`` blocks, its ``plugins``), then chosen like a plan's trial.

A study's trials run with ``resources.cpus_per_trial`` torch threads (:func:`study_threads`),
and CPU results depend on the thread count (the order of floating-point sums), so the trial
runs with the threads its study used unless ``--threads`` says otherwise: from the plan's
``threads``, from the spec's resources, else the default of one CPU per trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from search_spaces import AblationSpec, Recipe, TrialConfig, expand
from search_spaces.designs import DEFAULT_ABLATION
from search_spaces.plugins import load_plugins, load_recorded

DEFAULT_CPUS_PER_TRIAL = 1.0  # orchestrator.spec.Resources.cpus_per_trial's default


class TrialInputError(ValueError):
    """The input names no trial, or more than one: the message says which and how to choose."""


def study_threads(cpus_per_trial: float) -> int:
    """Torch threads of a study's trial: its whole CPUs, at least one (what Ray gives it)."""
    return max(1, int(cpus_per_trial))


@dataclass(frozen=True)
class ChosenTrial:
    config: TrialConfig
    threads: int
    label: str  # variant, seed and hash, or the file name for a bare trial config


def read_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)) or {}


def choose_trial(
    path: Path, raw: Any, *, variant: str | None = None, seed: int | None = None, config_hash: str | None = None
) -> ChosenTrial:
    """The trial ``raw`` (read from ``path``) describes, with the threads its study used."""
    if not isinstance(raw, dict):
        raise TrialInputError("expected a mapping: a trial config, a trial or plan from `orchestrator plan --format json`, or a spec")
    selecting = variant is not None or seed is not None or config_hash is not None
    if "trials" in raw:
        return _choose(_plan_entries(raw, path), variant, seed, config_hash)
    if "study" in raw:
        return _choose(_spec_entries(raw, path), variant, seed, config_hash)
    if selecting:
        raise TrialInputError("--variant, --seed and --hash choose among the trials of a plan or a spec; this file is one trial")
    if "config" in raw and "config_hash" in raw:
        return _plan_entry(raw, path)
    _load_trial_plugins(raw, path.resolve().parent)
    return ChosenTrial(TrialConfig.model_validate(raw), study_threads(DEFAULT_CPUS_PER_TRIAL), path.name)


def _load_trial_plugins(raw: dict, folder: Path) -> None:
    """A ``plugins:`` list of files/modules (relative to the file, as in a spec; replaced by
    the computed record), or the ``{name: identity}`` record of a dumped trial config, whose
    files are looked for beside the trial file and in the cwd."""
    named = raw.get("plugins")
    if isinstance(named, list):
        load_plugins(named, folder)
        raw.pop("plugins")
    elif isinstance(named, dict):
        load_recorded(named, [folder, Path.cwd()])


def _plan_entry(entry: dict, path: Path) -> ChosenTrial:
    config = dict(entry["config"])
    load_recorded(config.get("plugins") or {}, [path.resolve().parent, Path.cwd()])
    threads = int(entry.get("threads") or study_threads(DEFAULT_CPUS_PER_TRIAL))
    return ChosenTrial(TrialConfig.model_validate(config), threads, _label(entry["variant"], entry["seed"], entry["config_hash"]))


def _plan_entries(plan: dict, path: Path) -> list[tuple[dict, Any]]:
    """(entry, a function building its ChosenTrial) per trial of a plan."""
    return [(entry, lambda entry=entry: _plan_entry(entry, path)) for entry in plan["trials"]]


def _spec_entries(spec: dict, path: Path) -> list[tuple[dict, Any]]:
    """The spec's planned trials, expanded as a launch expands them (without the launch's
    further checks: ``orchestrator validate`` makes those)."""
    load_plugins(spec.get("plugins") or [], path.resolve().parent)
    recipe = Recipe.model_validate(spec.get("baseline") or {})
    ablation = AblationSpec.model_validate(spec["ablation"]) if spec.get("ablation") else DEFAULT_ABLATION
    threads = study_threads(float((spec.get("resources") or {}).get("cpus_per_trial", DEFAULT_CPUS_PER_TRIAL)))
    entries = []
    for trial in expand(recipe, ablation):
        entry = {"variant": trial.variant, "seed": trial.seed, "config_hash": trial.config_hash}
        entries.append(
            (entry, lambda trial=trial: ChosenTrial(trial.config, threads, _label(trial.variant, trial.seed, trial.config_hash)))
        )
    return entries


def _label(variant: str, seed: int, config_hash: str) -> str:
    return f"{variant} seed={seed} [{config_hash[:8]}]"


def _choose(entries: list[tuple[dict, Any]], variant: str | None, seed: int | None, config_hash: str | None) -> ChosenTrial:
    matches = [
        (entry, build)
        for entry, build in entries
        if (config_hash is None or str(entry["config_hash"]).startswith(config_hash))
        and (variant is None or entry["variant"] == variant)
        and (seed is None or int(entry["seed"]) == seed)
    ]
    if len(matches) == 1:
        return matches[0][1]()
    listing = ", ".join(f"{e['variant']} seed={e['seed']} ({str(e['config_hash'])[:8]})" for e, _ in (matches or entries)[:12])
    if not matches:
        raise TrialInputError(f"no trial matches; the trials: {listing}")
    raise TrialInputError(f"{len(matches)} trials match; choose one with --hash, or --variant and --seed: {listing}")
