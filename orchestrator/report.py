"""A study's report: the ablation table in every format plus the figures, written to a folder.

``launch`` writes it to ``<study dir>/report/`` when a study ends and logs each file as an
artifact of the study's MLflow parent run (tables at the top, figures under ``figures/``);
``orchestrator summarize STUDY --out DIR`` writes it on demand from the result store alone::

    DIR/ablation.md  ablation.tex  ablation.csv  ablation.html
    DIR/figures/camera_bars.png  camera_heatmap.png  learning_curves.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from orchestrator.summary import FORMATS, summarize
from storage import ResultStore

FIGURES_DIR = "figures"


def parse_formats(values: Iterable[str]) -> list[str]:
    """Formats from repeated and/or comma-separated values, e.g. ``["md,latex", "csv"]``;
    ``all`` means every format. Raises ValueError naming the known formats."""
    chosen: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            names = list(FORMATS) if name == "all" else [{"tex": "latex", "markdown": "md"}.get(name, name)]
            for known in names:
                if known not in FORMATS:
                    raise ValueError(f"unknown format '{name}'; formats: {', '.join(FORMATS)} (or all)")
                if known not in chosen:
                    chosen.append(known)
    return chosen


def write_study_report(
    study: str,
    store: ResultStore,
    out_dir: Path,
    *,
    formats: Iterable[str] = tuple(FORMATS),
    figures: bool = True,
) -> list[Path]:
    """Write the study's ablation table in ``formats`` and, with ``figures``, its PNG figures
    into ``out_dir``; returns the files written (none if the study has no results)."""
    formats = parse_formats(formats)
    trials = store.read_rows("trials", study)
    if not trials:
        return []
    summary = summarize(study, trials)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        filename, render = FORMATS[name]
        path = out_dir / filename
        path.write_text(render(summary), encoding="utf-8")
        written.append(path)
    if figures:
        from orchestrator.figures import write_figures

        written += write_figures(study, trials, store.read_rows("cameras", study), store.read_rows("curves", study), out_dir / FIGURES_DIR)
    return written


def artifact_dir(path: Path, out_dir: Path) -> str | None:
    """Where ``path`` goes among the run's artifacts: its folder relative to ``out_dir``
    (``figures``), or None for the top level."""
    relative = Path(path).resolve().parent.relative_to(Path(out_dir).resolve())
    return None if relative == Path(".") else relative.as_posix()
