"""What a study's report shows, from its spec: the ``report`` block, the study metric, and what
only the plan knows (each row's contrast, each row's model size).

:func:`read_report_settings` reads a spec file's ``report`` block, dataset name and study
metric alone, so an old study stays summarizable after the spec schema moves on;
:func:`with_plan` adds the planned contrasts and model sizes where the whole spec still loads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from analysis.settings import ReportSettings
from orchestrator.spec import LoadedSpec


DEFAULT_DATASET = "synthetic"  # the trial config's default dataset.name
DEFAULT_METRIC = "mAP"  # the spec's default study.metric


def read_report_settings(spec_file: Path | None) -> ReportSettings:
    """The ``report`` block, dataset name and study metric of a spec file (the study folder's
    copy); the defaults when there is none. Only those are read, so a study stays summarizable
    after the spec schema moves on. A malformed block is a :class:`SpecError` naming key and line."""
    if spec_file is None:
        return ReportSettings()
    from pydantic import ValidationError

    from analysis.settings import Report
    from orchestrator.errors import SpecError
    from orchestrator.spec import spec_error
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
    metric = (data.get("study") or {}).get("metric") if isinstance(data.get("study"), dict) else None
    return ReportSettings.from_report(report, str(dataset), str(metric or DEFAULT_METRIC))


def planned_contrasts(loaded: LoadedSpec) -> dict[str, str | None] | None:
    """Each planned variant's contrast; None for a design that samples its rows (the stored
    rows say then)."""
    return {trial.variant: trial.contrast for trial in loaded.trials} or None


def with_plan(settings: ReportSettings, loaded: LoadedSpec, *, sizes: bool = True) -> ReportSettings:
    """``settings`` with the plan's contrasts and study metric, and (``sizes``) each variant's
    model size counted from its config (:mod:`orchestrator.model_sizes`)."""
    from orchestrator.model_sizes import variant_model_sizes

    return dataclasses.replace(
        settings,
        contrasts=planned_contrasts(loaded),
        primary_metric=loaded.spec.study.metric,
        model_sizes=variant_model_sizes(loaded.trials) if sizes else settings.model_sizes,
    )
