"""The study's saved view in MLflow 3's runs page: trials grouped by variant, charts in the
order a researcher reads them.

MLflow 3's UI (checked against 3.17, ``mlflow/server/js/src/experiment-tracking``) keeps a
runs page's state as JSON; a *shared view* is that state stored as the experiment tag
``mlflow.sharedViewState.<key>`` and opened with ``?viewStateShareKey=<key>``. The charts of
the chart view are two lists in it (``ExperimentPageUIState``):

* ``compareRunSections``: the accordion sections, in display order, each
  ``{uuid, name, display, isReordered, deleted, isGenerated}``;
* ``compareRunCharts``: the chart cards, each naming its section by ``metricSectionId``
  (``RunsChartsCardConfig`` and its ``BAR`` / ``LINE`` subclasses; ``runs-charts.types.ts``).

When a view has no charts, the UI generates one chart per metric with sections named after
the metric key's prefix (``cam/c01/q_mAP`` -> ``cam/c01``), sorted by name, unprefixed metrics
last in "Model metrics": the study's parent-run summary numbers and the per-camera charts came
first and the study metric last. With the lists given and ``isAccordionReordered: true``,
``RunsChartsCardConfig.updateChartAndSectionConfigs`` keeps the sections in the given order;
a metric without a chart gets one in the section named after its prefix (appended at the end
when no section has that name), so curves such as the loss land in "Model metrics", last.

The charts aggregate each variant's seeds (``useGroupedValuesInCharts``: the mean, with the
min/max band on line charts). Nothing here imports MLflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable

from search_spaces.metrics import CAMERA_METRICS, G_MAP, MAP, Q_MAP, RANK1, camera_key

VIEW_NAME = "Trials grouped by variant (seeds averaged)"
WEAKEST_CAMERA_SECTION = "weakest_camera"  # the prefix of the trial runs' weakest_camera/<m>
MODEL_METRICS_SECTION = "Model metrics"  # MLflow's section of metrics without a prefix
SYSTEM_METRICS_SECTION = "System metrics"
SHOW_ALL_RUNS = "SHOW_ALL"  # the UI charts the first 10 runs (groups) unless told otherwise
# A bar chart draws at most this many runs (groups): every variant of a large study.
BARS_PER_CHART = 500


def weakest_camera_key(metric: str) -> str:
    """``weakest_camera/q_mAP``: a trial's value at the study's weakest camera."""
    return f"{WEAKEST_CAMERA_SECTION}/{metric}"


def answer_metrics(study_metric: str) -> tuple[str, str]:
    """The two metrics of the first section: the study metric and rank-1 (or mAP when the
    study metric is rank-1)."""
    return (study_metric, RANK1 if study_metric != RANK1 else MAP)


def answer_section_name(study_metric: str) -> str:
    first, second = answer_metrics(study_metric)
    return f"Study metric: {first}, with {second}"


def base_view_state(child_role: str) -> dict[str, Any]:
    """What the view shows, without its charts: the trial runs only, grouped by the
    ``reid.variant`` tag, seeds averaged in the charts, every group charted."""
    return {
        "searchFilter": f"tags.`reid.role` = '{child_role}'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": True,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "reid.variant"}]},
        "groupsExpanded": {},
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "runsHiddenMode": SHOW_ALL_RUNS,
    }


def view_key(child_role: str) -> str:
    """A stable share key (the hash of what the view shows, as MLflow's own keys are hashes):
    the charts it lists may change from launch to launch, the link does not."""
    return hashlib.sha256(json.dumps(base_view_state(child_role), sort_keys=True).encode()).hexdigest()[:32]


def _uuid(kind: str, name: str) -> str:
    return f"reid-{kind}-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")


def _section(name: str) -> dict[str, Any]:
    return {"uuid": _uuid("section", name), "name": name, "display": True, "isReordered": False, "deleted": False, "isGenerated": False}


def _chart(kind: str, metric: str, section: dict[str, Any]) -> dict[str, Any]:
    """A serialised ``RunsChartsBarCardConfig`` / ``RunsChartsLineCardConfig`` with the
    defaults MLflow's classes set, so the UI finds every field it reads."""
    card: dict[str, Any] = {
        "uuid": _uuid(f"chart-{kind.lower()}", metric),
        "type": kind,
        "runsCountToCompare": BARS_PER_CHART if kind == "BAR" else 10,
        "metricSectionId": section["uuid"],
        "deleted": False,
        "isGenerated": False,
        "metricKey": metric,
    }
    if kind == "LINE":
        card.update(
            selectedMetricKeys=[metric],
            lineSmoothness=0,
            xAxisScaleType="linear",
            scaleType="linear",
            range={},
            xAxisKey="step",
            selectedXAxisMetricKey="",
            yAxisKey="metric",
            yAxisExpressions=[],
            ignoreOutliers=False,
            useGlobalXaxisKey=True,
            useGlobalLineSmoothing=True,
        )
    return card


def chart_layout(study_metric: str, cameras: Iterable[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(compareRunCharts, compareRunSections)``: first the study metric and rank-1 (final
    value per variant as bars, then their curves over the evaluation epochs), then the
    weakest camera's q-mAP and g-mAP, then one section per camera (q-mAP, g-mAP, rank-1
    curves), then MLflow's own "Model metrics" (the loss and the rest) and "System metrics"."""
    charts: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []

    def add(name: str, cards: list[tuple[str, str]]) -> None:
        section = _section(name)
        sections.append(section)
        charts.extend(_chart(kind, metric, section) for kind, metric in cards)

    answer = answer_metrics(study_metric)
    add(answer_section_name(study_metric), [("BAR", m) for m in answer] + [("LINE", m) for m in answer])
    add(WEAKEST_CAMERA_SECTION, [("BAR", weakest_camera_key(m)) for m in (Q_MAP, G_MAP)])
    for camera in sorted(set(int(c) for c in cameras)):
        keys = [camera_key(camera, m) for m in CAMERA_METRICS]
        add(keys[0].rsplit("/", 1)[0], [("LINE", key) for key in keys])
    add(MODEL_METRICS_SECTION, [])
    add(SYSTEM_METRICS_SECTION, [])
    return charts, sections


def variant_view_state(child_role: str, study_metric: str = MAP, cameras: Iterable[int] = ()) -> dict[str, Any]:
    """The runs page state of the shared view (see the module docstring)."""
    charts, sections = chart_layout(study_metric, cameras)
    return {**base_view_state(child_role), "compareRunCharts": charts, "compareRunSections": sections, "isAccordionReordered": True}


def view_envelope(state: dict[str, Any], now_ms: int) -> str:
    """The tag value MLflow 3.17's saved views use: name, times and the state as JSON text."""
    return json.dumps({"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": json.dumps(state)})
