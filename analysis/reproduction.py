"""Is a paper's result reproduced? Judged on *effects*, never on absolute numbers.

Absolute numbers from other data, another input size or a tenth of the epochs differ for
reasons that say nothing about the module being ablated. What a reproduction can check is the
paper's *effect*: its row minus the row it is compared with (the row's contrast,
:mod:`search_spaces.contrasts`), from the reported numbers, against our paired effect for the
same contrast with our 95% interval. Per row and metric the verdict is

* **consistent**: the paper's effect lies in our interval (said "also with 0" when our interval
  holds 0 as well: our data cannot tell the paper's effect from none);
* **smaller** / **larger**: our whole interval lies below / above the paper's effect;
* **too few seeds to tell**: our effect has no interval (one shared seed, or no spread).

The paper's own effect carries its run-to-run noise too (most papers report one run:
``recipe.seeds``), which our interval does not include, so "smaller" and "larger" are read as
"outside what our seeds allow", not as proof that the paper erred.

The recipe a paper reports (``report.reference.recipe``: input size, epochs, backbone,
pretrained weights, batch, runs per number; ``report.reference.dataset``) is compared with the
trials' configs: every field where the study's trials differ is a warning. A variant that
changes a field on purpose (a row that swaps the backbone) is not a deviation: values are taken
from the trials that leave the field at the study's baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from analysis.stats import Effect
from storage import CONFIG_PREFIX

CONSISTENT, SMALLER, LARGER, TOO_FEW = "consistent", "smaller", "larger", "too few seeds to tell"

#: Recipe field -> the config paths it is read from (the trials table's ``cfg.*`` columns).
RECIPE_PATHS: dict[str, tuple[str, ...]] = {
    "dataset": ("dataset.name",),
    "input_size": ("dataset.height", "dataset.width"),
    "epochs": ("train.epochs",),
    "backbone": ("model.backbone",),
    "pretrained": ("model.pretrained", "model.pretrained_path"),
    "batch": ("train.ids_per_batch", "train.images_per_id"),
}


@dataclass(frozen=True)
class Verdict:
    """One cell of the reproduction table: the paper's effect and ours (points), and the verdict."""

    paper: float
    ours: Effect | None
    verdict: str

    @property
    def with_zero(self) -> bool:
        """Our interval holds 0 too (the data cannot tell the paper's effect from none)."""
        ours = self.ours
        return self.verdict == CONSISTENT and ours is not None and ours.has_interval and ours.low <= 0 <= ours.high


def verdict(paper_points: float, ours: Effect | None) -> Verdict:
    """The verdict for the paper's effect (points) against our effect (fractions)."""
    if ours is None or not ours.has_interval:
        return Verdict(paper_points, ours, TOO_FEW)
    low, high = 100 * ours.low, 100 * ours.high
    if high < paper_points:
        return Verdict(paper_points, ours, SMALLER)
    if low > paper_points:
        return Verdict(paper_points, ours, LARGER)
    return Verdict(paper_points, ours, CONSISTENT)


@dataclass(frozen=True)
class ReproducedRow:
    """A row with reported numbers: against its contrast (effects) or, for a reference row,
    the absolute numbers side by side (shown, not judged)."""

    variant: str
    contrast: str | None
    verdicts: dict[str, Verdict]  # metric -> verdict (rows with a contrast)
    absolute: dict[str, tuple[float | None, float]]  # metric -> (ours %, paper %) (reference rows)
    seeds: int


def reproduce(summary) -> list[ReproducedRow]:
    """Per reported row of :attr:`AblationSummary.reference_numbers`, in the paper's order."""
    numbers = summary.reference_numbers
    if numbers is None:
        return []
    out = []
    for variant, reported in numbers.rows.items():
        row = summary.row(variant)
        if row is None:
            continue
        contrast = row.contrast
        paper_contrast = numbers.rows.get(contrast) if contrast is not None else None
        verdicts: dict[str, Verdict] = {}
        absolute: dict[str, tuple[float | None, float]] = {}
        for metric, paper in reported.items():
            stats = row.stats.get(metric)
            if paper_contrast is not None and metric in paper_contrast:
                verdicts[metric] = verdict(paper - paper_contrast[metric], stats.effect if stats else None)
            else:
                absolute[metric] = (100 * stats.mean if stats else None, paper)
        out.append(ReproducedRow(variant, contrast, verdicts, absolute, len(row.seeds)))
    return out


def recipe_values(trials: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Config path -> the distinct values among the trials that do not change that path (their
    ``changes`` JSON), i.e. the study's baseline recipe as it ran; paths of :data:`RECIPE_PATHS`."""
    found: dict[str, list[Any]] = {}
    for trial in trials:
        try:
            changed = set(json.loads(trial.get("changes") or "{}"))
        except (TypeError, ValueError):
            changed = set()
        for paths in RECIPE_PATHS.values():
            for path in paths:
                column = CONFIG_PREFIX + path
                if path in changed or column not in trial:
                    continue
                value = trial[column]  # None too: "no pretrained weights" is a value
                if value not in found.setdefault(path, []):
                    found[path].append(value)
    return found


def _ours(values: Mapping[str, list[Any]], path: str) -> list[Any]:
    return [value for value in values.get(path, []) if value is not None]


def recipe_warnings(numbers, values: Mapping[str, list[Any]], dataset: str | None = None) -> list[str]:
    """One sentence per recipe field where the study's trials differ from the paper's recipe."""
    if numbers is None:
        return []
    recipe = numbers.recipe
    out = []
    datasets = _ours(values, "dataset.name") or ([dataset] if dataset else [])
    if datasets and any(d != numbers.dataset for d in datasets):
        out.append(f"dataset: the paper reports {numbers.dataset}, this study ran on {', '.join(map(str, datasets))}")
    if recipe is None:
        return out
    if recipe.input_size is not None:
        sizes = sorted({(h, w) for h in _ours(values, "dataset.height") for w in _ours(values, "dataset.width")})
        if sizes and any(size != tuple(recipe.input_size) for size in sizes):
            out.append(
                f"input size: the paper uses {recipe.input_size[0]}x{recipe.input_size[1]}, this study "
                + ", ".join(f"{h}x{w}" for h, w in sizes)
            )
    if recipe.epochs is not None:
        epochs = _ours(values, "train.epochs")
        if epochs and any(e != recipe.epochs for e in epochs):
            out.append(f"epochs: the paper trains {recipe.epochs}, this study {', '.join(map(str, sorted(epochs)))}")
    if recipe.backbone is not None:
        backbones = _ours(values, "model.backbone")
        if backbones and any(b != recipe.backbone for b in backbones):
            out.append(f"backbone: the paper uses {recipe.backbone}, this study {', '.join(map(str, backbones))}")
    if recipe.pretrained is not None and ("model.pretrained" in values or "model.pretrained_path" in values):
        ours = bool(
            [v for v in _ours(values, "model.pretrained") if v not in (False, "", "false")] or _ours(values, "model.pretrained_path")
        )
        if ours != recipe.pretrained:
            said = "ImageNet weights" if recipe.pretrained else "random weights"
            out.append(f"pretrained: the paper starts from {said}, this study from {'ImageNet weights' if ours else 'random weights'}")
    if recipe.batch is not None:
        batches = sorted({(p, k) for p in _ours(values, "train.ids_per_batch") for k in _ours(values, "train.images_per_id")})
        if batches and any(b != tuple(recipe.batch) for b in batches):
            out.append(
                f"batch: the paper samples {recipe.batch[0]}x{recipe.batch[1]} (identities x images), this study "
                + ", ".join(f"{p}x{k}" for p, k in batches)
            )
    return out


def missing_reference_rows(numbers, variants: Sequence[str]) -> list[str]:
    """Reference rows that name no variant with results (they would show only dashes)."""
    if numbers is None:
        return []
    return [name for name in numbers.rows if name not in variants]
