"""A study's report: the ablation table in every format plus the figures, written to a folder.

``launch`` writes it to ``<study dir>/report/`` when a study ends and logs each file as an
artifact of the study's MLflow parent run (tables at the top, figures under ``figures/``), with
the per-variant means and interval bounds as metrics (:mod:`orchestrator.tracking`);
``orchestrator summarize STUDY --out DIR`` writes it on demand from the result store alone::

    DIR/ablation.md  ablation.tex  ablation.csv  ablation.html (self-contained, figures embedded)
    DIR/figures/camera_effects.png  camera_bars.png  camera_heatmap.png  learning_curves.png

The table's settings come from the spec's ``report`` block (metric columns, a paper's reference
numbers). At summarize time they are read from the study folder's copy of the spec
(``<study dir>/spec.yaml``, written by every launch): only its ``report`` block and
``baseline.dataset.name`` are read, so a study stays summarizable after the spec schema moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from orchestrator.formats import FORMATS, to_html
from orchestrator.summary import AblationSummary, summarize
from search_spaces.metrics import DEFAULT_TABLE_METRICS
from storage import ResultStore

FIGURES_DIR = "figures"
DEFAULT_DATASET = "synthetic"  # the trial config's default dataset.name


@dataclass(frozen=True)
class ReportSettings:
    """What a summary shows: the table's metric columns, a paper's numbers, the study's dataset."""

    metrics: tuple[str, ...] = DEFAULT_TABLE_METRICS
    reference: object | None = None  # orchestrator.spec.ReferenceNumbers
    dataset: str | None = None

    @classmethod
    def from_spec(cls, spec) -> "ReportSettings":
        """From a validated :class:`orchestrator.spec.StudySpec`."""
        return cls(tuple(spec.report.metrics), spec.report.reference, spec.baseline.dataset.name)


def read_report_settings(spec_file: Path | None) -> ReportSettings:
    """The ``report`` block and dataset name of a spec file (the study folder's copy); the
    defaults when there is none. A malformed block is a :class:`SpecError` naming key and line."""
    if spec_file is None:
        return ReportSettings()
    from pydantic import ValidationError

    from orchestrator.errors import SpecError
    from orchestrator.spec import Report, spec_error
    from orchestrator.yaml_source import YamlSyntaxError, load_yaml

    try:
        source = load_yaml(spec_file)
    except YamlSyntaxError as err:
        raise SpecError(str(err), file=str(spec_file), line=err.line) from None
    data = source.data if isinstance(source.data, dict) else {}
    try:
        report = Report.model_validate(data.get("report") or {})
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise spec_error(source, ("report", *first["loc"]), message) from None
    dataset = ((data.get("baseline") or {}).get("dataset") or {}).get("name") or DEFAULT_DATASET
    return ReportSettings(tuple(report.metrics), report.reference, str(dataset))


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
    summary = summarize(study, trials, store.read_rows("cameras", study), metrics=settings.metrics, bootstrap=bootstrap)
    summary.dataset = settings.dataset
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
        from orchestrator.figures import write_figures

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
