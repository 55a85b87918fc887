"""End to end with real servers: a small study against ``mlflow server`` whose artifacts live on
an S3 server (moto), results in an S3 result store, then the MLflow UI in headless Chromium.

Screenshots and DOM dumps go to ``test-output/mlflow_ui/`` at the repository root (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from html import unescape
from pathlib import Path

import pytest

from tests.fixtures_s3 import boto3_client, s3_environment
from tests.mlflow_server import running_mlflow_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "mlflow_ui"
STUDY = "ui-e2e"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags seen working headless on these machines (DESIGN.md).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
    "--hide-scrollbars",
    # Without it the metric charts (drawn on animation frames) were often still spinners
    # when the virtual time budget ran out.
    "--run-all-compositor-stages-before-draw",
]


@pytest.fixture(scope="module")
def stack(moto_endpoint, tmp_path_factory):
    """A bucket on the S3 server and an MLflow server storing its artifacts there."""
    env = {**os.environ, **s3_environment(moto_endpoint), "MLFLOW_S3_ENDPOINT_URL": moto_endpoint}
    env.pop("MLFLOW_TRACKING_URI", None)
    bucket = f"ui-{uuid.uuid4().hex[:10]}"
    boto3_client(moto_endpoint).create_bucket(Bucket=bucket)
    workdir = tmp_path_factory.mktemp("mlflow_ui")
    with running_mlflow_server(workdir, f"s3://{bucket}/mlartifacts", env) as port:
        yield {"url": f"http://127.0.0.1:{port}", "bucket": bucket, "env": env, "workdir": workdir, "s3": moto_endpoint}


@pytest.fixture(scope="module")
def study(stack, tiny_market):
    """A 2-trial leave-one-out study (2 epochs each), tracked on the server, stored on S3."""
    spec = stack["workdir"] / "study.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""
            study:
              name: {STUDY}
            baseline:
              dataset: {{name: market1501, root: "{tiny_market}", height: 64, width: 32}}
              model: {{backbone: resnet10t}}
              train: {{epochs: 2, ids_per_batch: 4, images_per_id: 4, warmup_epochs: 0, lr_steps: [], eval_every: 1}}
              augment: {{random_erasing: {{p: 0.5}}}}
            ablation:
              design: leave_one_out
              variants:
                - name: erasing
                  set: {{augment.random_erasing.p: 0.0}}
              seeds: [0]
            resources: {{cpus_per_trial: 1}}
            output:
              store: s3://{stack["bucket"]}/results
            """
        ),
        encoding="utf-8",
    )
    exe = Path(sys.executable).with_name("orchestrator")
    env = {**stack["env"], "REID_ORCH_NUM_CPUS": "2", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [str(exe), "launch", str(spec), "--tracking-uri", stack["url"]],
        capture_output=True,
        text=True,
        cwd=stack["workdir"],
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack["url"])
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("reid.role") == "study")
    children = sorted((r for r in runs if r.data.tags.get("reid.role") == "trial"), key=lambda r: r.info.run_name)
    return {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "client": client,
        "experiment": experiment.experiment_id,
        "parent": parent,
        "children": children,
        "env": env,
    }


def test_the_launch_leaves_ray_quiet(study):
    # Ray's per-launch notice about token authentication (its default for a local cluster,
    # which the launch keeps) is not the researcher's concern.
    assert "Token authentication" not in study["stderr"], study["stderr"]
    assert " WARNING " not in study["stderr"], study["stderr"]


def s3_keys(stack, prefix: str) -> list[str]:
    listing = boto3_client(stack["s3"]).list_objects_v2(Bucket=stack["bucket"], Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []) if not item["Key"].endswith("/"))


def test_results_and_the_report_land_in_s3(stack, study):
    # The check-mark table was printed ...
    assert "|  | w/o erasing | full |" in study["stdout"] and "| erasing |  | ✓ |" in study["stdout"]
    # ... the result store holds one part per trial and table on S3 ...
    parts = s3_keys(stack, f"results/trials/{STUDY}/")
    assert len(parts) == 2 and all(k.rsplit("/", 1)[1].startswith("part-") for k in parts)
    assert len(s3_keys(stack, f"results/cameras/{STUDY}/")) == 2
    # ... and the tables and figures are artifacts of the parent run, stored on S3 by the server.
    prefix = f"mlartifacts/{study['experiment']}/{study['parent'].info.run_id}/artifacts/"
    names = {k[len(prefix) :] for k in s3_keys(stack, prefix)}
    assert names >= {
        "ablation.csv",
        "ablation.html",
        "ablation.md",
        "ablation.tex",
        "figures/camera_bars.png",
        "figures/camera_heatmap.png",
        "figures/learning_curves.png",
    }
    png = boto3_client(stack["s3"]).get_object(Bucket=stack["bucket"], Key=prefix + "figures/camera_bars.png")["Body"].read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    listed = {a.path for a in study["client"].list_artifacts(study["parent"].info.run_id)}
    assert listed >= {"ablation.csv", "ablation.html", "ablation.md", "ablation.tex", "figures"}


def test_runs_carry_the_axes_as_params_and_tags_and_camera_metrics_per_step(study):
    children, client = study["children"], study["client"]
    assert [c.info.run_name for c in children] == ["full seed=0", "w/o erasing seed=0"]
    for child, value in zip(children, ("0.5", "0.0")):
        assert child.data.params["augment.random_erasing.p"] == value  # the compare view lines runs up by it
        assert child.data.tags["axis.augment.random_erasing.p"] == value
        assert child.data.tags["mlflow.parentRunId"] == study["parent"].info.run_id
        history = client.get_metric_history(child.info.run_id, "cam/c01/q_mAP")
        assert [m.step for m in history] == [1, 2]  # one point per evaluation epoch: a chart


def run_chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_dir}", "--virtual-time-budget=30000", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def open_page(url: str, name: str, tmp_path: Path, must_contain: list[str]) -> str:
    """Render ``url``: its DOM as text (saved as NAME.html) and a screenshot (NAME.png) in the
    test output; retried if the page was still loading."""
    shot = OUTPUT / f"{name}.png"
    for attempt in range(3):
        shot.unlink(missing_ok=True)
        result = run_chromium(f"--screenshot={shot}", "--dump-dom", url, user_dir=tmp_path / f"chrome-{name}-{attempt}")
        (OUTPUT / f"{name}.html").write_text(result.stdout, encoding="utf-8")
        text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style).*?</\1>", "", result.stdout, flags=re.S))))
        if all(fragment in text or fragment in result.stdout for fragment in must_contain):
            break
    assert shot.exists() and shot.stat().st_size > 20_000, result.stderr[-2000:]
    print(f"screenshot: {shot}")
    return text + result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it")
def test_the_mlflow_ui_shows_the_study_runs_and_per_camera_charts(stack, study, tmp_path):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    url, experiment = stack["url"], study["experiment"]
    parent = study["parent"].info.run_id
    full, without = study["children"]

    runs = open_page(f"{url}/#/experiments/{experiment}/runs", "runs", tmp_path, [STUDY, parent])
    assert f"#/experiments/{experiment}/runs/{parent}" in runs  # the study's parent run is listed ...
    assert STUDY in runs

    ids = json.dumps([full.info.run_id, without.info.run_id], separators=(",", ":"))
    compare_url = f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment])}"
    compare = open_page(compare_url, "compare", tmp_path, ["w/o erasing seed=0", "cam/c01/q_mAP"])
    # ... the compare view shows both trials side by side, the axis as a parameter row, the
    # per-camera metrics and the axis tags.
    for fragment in ("full seed=0", "w/o erasing seed=0", "augment.random_erasing.p", "cam/c01/q_mAP", "axis.augment.random_erasing.p"):
        assert fragment in compare, fragment

    metrics_url = f"{url}/#/experiments/{experiment}/runs/{full.info.run_id}/model-metrics"
    charts = open_page(metrics_url, "run_model_metrics", tmp_path, ["cam/c01/q_mAP"])
    # The run page charts every metric; per-camera ones are grouped in a section per camera.
    assert "full seed=0" in charts and "cam/c01" in charts and "(cam/c01/q_mAP)" in charts


def test_the_parent_run_carries_the_summary_and_the_experiment_its_views(study, tmp_path):
    import csv

    from orchestrator.tracking import EXPERIMENT_KIND_TAG, SHARED_VIEW_PREFIX, SUMMARY_TABLE, variant_view_key

    parent = study["parent"]
    # The per-variant numbers are a table among the parent's artifacts, not metrics (the chart
    # view draws the parent run too, as an "Unassigned" group).
    assert parent.data.metrics == {}
    local = study["client"].download_artifacts(parent.info.run_id, SUMMARY_TABLE, str(tmp_path))
    with open(local, encoding="utf-8") as handle:
        table = {(row["variant"], row["metric"]): row for row in csv.DictReader(handle)}
    full, without = table[("full", "mAP")], table[("w/o erasing", "mAP")]
    # One seed: the difference to the reference, without an interval.
    assert without["contrast"] == "full" and without["delta_low"] == ""
    assert float(without["delta"]) == pytest.approx(float(without["mean"]) - float(full["mean"]))
    # The trial runs' final mAP is what the table averages.
    by_name = {c.info.run_name: c.data.metrics["mAP"] for c in study["children"]}
    assert float(full["mean"]) == pytest.approx(by_name["full seed=0"])
    assert parent.data.tags["reid.weakest_camera"].startswith("c")
    for child in study["children"]:
        assert {"weakest_camera/q_mAP", "weakest_camera/g_mAP"} <= set(child.data.metrics)
    tags = study["client"].get_experiment(study["experiment"]).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert SHARED_VIEW_PREFIX + variant_view_key() in tags
    view = f"#/experiments/{study['experiment']}/runs?workflowType=machine_learning&viewStateShareKey={variant_view_key()}&compareRunsMode=CHART"
    assert view in study["stdout"]


SECTION_HEADER = re.compile(r'data-testid="experiment-view-compare-runs-section-header"[^>]*>(?:\s*<[^>]+>)*\s*([^<]+?)\s*<')


def chart_sections(html: str) -> list[str]:
    """The chart view's section names, in the order the page shows them."""
    return [unescape(name) for name in SECTION_HEADER.findall(html)]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it")
def test_the_shared_view_groups_the_trials_by_variant_in_the_chart_view(stack, study, tmp_path):
    from orchestrator.tracking import variant_view_key

    OUTPUT.mkdir(parents=True, exist_ok=True)
    url = f"{stack['url']}/#/experiments/{study['experiment']}/runs?workflowType=machine_learning&viewStateShareKey={variant_view_key()}&compareRunsMode=CHART"
    page = open_page(url, "grouped_by_variant_charts", tmp_path, ["Group by: reid.variant", "Model metrics"])
    # The chart view, grouped by the variant tag: one group per variant, no view-state error.
    assert "share key" not in page, "the shared view state was not found or not readable"
    for fragment in ("Trials grouped by variant (seeds averaged)", "Group by: reid.variant", "Group: full", "Group: w/o erasing"):
        assert fragment in page, fragment
    # The sections in reading order: the answer first, then the weakest camera and each camera,
    # MLflow's catch-all sections last; none of the parent run's summary numbers.
    sections = chart_sections(page)
    assert sections == [
        "Study metric: mAP, with rank1",
        "weakest_camera",
        "cam/c01",
        "cam/c02",
        "cam/c03",
        "cam/c04",
        "cam/c05",
        "cam/c06",
        "Model metrics",
        "System metrics",
    ], sections
    # The first section charts mAP and rank-1 per variant (seeds averaged into their group):
    # bars of the final values, then the curves with one line per variant.
    first = page[page.index("Study metric: mAP, with rank1") : page.index("weakest_camera")]
    for fragment in ("full (mAP)", "w/o erasing (mAP)", "full (rank1)", "w/o erasing (rank1)"):
        assert fragment in first, fragment
    assert "Model metrics (0)" not in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium); .ci/run installs it")
def test_the_experiment_opens_in_the_model_training_view(stack, study, tmp_path):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = open_page(
        f"{stack['url']}/#/experiments/{study['experiment']}?workflowType=machine_learning", "experiment_home", tmp_path, ["Model registry"]
    )
    # The experiment link lands on its runs in the model-training view (its sidebar lists the
    # model registry), not on the GenAI overview of traces and token usage.
    assert "Runs - Experiment" in page and "Model registry" in page and STUDY in page
    assert "Observability" not in page and "Token Usage" not in page
