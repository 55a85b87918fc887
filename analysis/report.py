"""A study's report: the ablation table in every format plus the figures, written to a folder.

``launch`` writes it to ``<study dir>/report/`` when a study ends and logs each file as an
artifact of the study's MLflow parent run (tables at the top, figures under ``figures/``), with
the per-variant means and interval bounds as metrics (:mod:`orchestrator.tracking`);
``orchestrator summarize STUDY --out DIR`` writes it on demand from the result store alone::

    DIR/ablation.md  ablation.tex  ablation.csv  ablation.html (self-contained, figures embedded)
    DIR/figures/camera_effects.png  camera_bars.png  camera_heatmap.png  learning_curves.png

The table's settings (:class:`analysis.settings.ReportSettings`) come from the spec's ``report``
block (metric columns, a paper's reference numbers). At summarize time the orchestrator reads
them from the study folder's copy of the spec (:func:`orchestrator.report_settings.read_report_settings`).

Nothing here imports Ray, torch or MLflow: the launch hands its tracker to
:func:`publish_study_report`, which only calls its logging methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from analysis.formats import FORMATS, to_html
from analysis.settings import ReportSettings
from analysis.summary import AblationSummary, summarize
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


def study_summary(
    study: str,
    store: ResultStore,
    settings: ReportSettings = ReportSettings(),
    *,
    reference: bool = False,
    bootstrap: bool = False,
) -> AblationSummary | None:
    """The study's summary from its ``trials`` and ``cameras`` rows (None without results);
    with ``reference``, the settings' reference numbers are shown beside the measured ones."""
    trials = store.read_rows("trials", study)
    if not trials:
        return None
    summary = summarize(
        study,
        trials,
        store.read_rows("cameras", study),
        metrics=settings.metrics,
        bootstrap=bootstrap,
        contrasts=settings.contrasts,
        primary_metric=settings.primary_metric,
        weakest_camera=settings.weakest_camera,
    )
    summary.dataset = settings.dataset
    summary.deviations = tuple(settings.deviations)
    summary.model_sizes = dict(settings.model_sizes)
    if reference:
        summary.reference_numbers = settings.reference
    return summary


def write_study_report(
    study: str,
    store: ResultStore,
    out_dir: Path,
    *,
    formats: Iterable[str] = tuple(FORMATS),
    figures: bool = True,
    settings: ReportSettings = ReportSettings(),
    reference: bool = False,
    bootstrap: bool = False,
    summary: AblationSummary | None = None,
) -> list[Path]:
    """Write the study's tables in ``formats`` and, with ``figures``, its PNG figures into
    ``out_dir`` (the HTML page embeds them); returns the files written (none without results).
    ``summary`` is computed from the store unless given."""
    formats = parse_formats(formats)
    summary = summary or study_summary(study, store, settings, reference=reference, bootstrap=bootstrap)
    if summary is None:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: list[Path] = []
    if figures:
        from analysis.figures import write_figures

        trials = store.read_rows("trials", study)
        cameras, curves = store.read_rows("cameras", study), store.read_rows("curves", study)
        drawn = write_figures(study, trials, cameras, curves, out_dir / FIGURES_DIR, summary=summary)
    written = []
    for name in formats:
        filename, render = FORMATS[name]
        path = out_dir / filename
        text = to_html(summary, drawn) if name == "html" else render(summary)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written + drawn


def artifact_dir(path: Path, out_dir: Path) -> str | None:
    """Where ``path`` goes among the run's artifacts: its folder relative to ``out_dir``
    (``figures``), or None for the top level."""
    relative = Path(path).resolve().parent.relative_to(Path(out_dir).resolve())
    return None if relative == Path(".") else relative.as_posix()


def publish_study_report(study: str, store: ResultStore, report_dir: Path, tracker, settings: ReportSettings, echo=print) -> str | None:
    """Write the report into ``report_dir``, attach every file to the study's MLflow parent run
    and log the summary's numbers there; ``echo`` gets the link of the MLflow view grouped by
    variant. Returns the Markdown table (None without results)."""
    summary = study_summary(study, store, settings)
    if summary is None:
        return None
    for path in write_study_report(study, store, report_dir, settings=settings, summary=summary):
        tracker.log_study_artifact(path, artifact_path=artifact_dir(path, report_dir))
    tracker.log_summary(summary)
    echo(f"MLflow view, trials grouped by variant (seeds averaged): {tracker.view_url()}")
    return FORMATS["md"][1](summary)
