"""The bad-input suite: malformed specs, datasets and storage.

Each case runs the real ``orchestrator launch`` command in-process and must end with exactly
one line on stderr naming the place (YAML file:line and key, or the file/folder), exit status
2, and nothing launched: no Ray, no MLflow run, no result row.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

GOOD_BASELINE = "baseline:\n  train: {epochs: 1}\n"


def spec(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


# (name, spec text, expected fragment of the single error line). "{root}" is a tiny dataset.
SPEC_CASES = [
    ("unknown top-level key", "study: {name: s}\nbaselin: {}\n", "spec.yaml:2: baselin: unknown key 'baselin'"),
    (
        "unknown nested key",
        "study: {name: s}\nbaseline:\n  model:\n    backbne: resnet18\n",
        "spec.yaml:4: baseline.model.backbne: unknown key",
    ),
    (
        "wrong type",
        "study: {name: s}\nbaseline:\n  train: {epochs: many}\n",
        "spec.yaml:3: baseline.train.epochs: Input should be a valid integer",
    ),
    ("missing study name", "study: {description: x}\n", "study.name: required key is missing"),
    ("missing study block", "baseline: {}\n", "study: required key is missing"),
    ("bad study name", "study: {name: 'a b'}\n", "spec.yaml:1: study.name: String should match pattern"),
    (
        "negative learning rate",
        "study: {name: s}\nbaseline:\n  train:\n    lr: -0.1\n",
        "spec.yaml:4: baseline.train.lr: Input should be greater than 0",
    ),
    (
        "label smoothing out of range",
        "study: {name: s}\nbaseline:\n  loss: {label_smoothing: 1.5}\n",
        "baseline.loss.label_smoothing: Input should be less than 1",
    ),
    (
        "erasing area reversed",
        "study: {name: s}\nbaseline:\n  augment:\n    random_erasing: {area: [0.4, 0.1]}\n",
        "baseline.augment.random_erasing: area: 0 < low <= high must hold",
    ),
    ("unknown design", "study: {name: s}\nablation: {design: factorial}\n", "spec.yaml:2: ablation.design: unknown design 'factorial'"),
    ("grid without axes", "study: {name: s}\nablation:\n  design: grid\n", "spec.yaml:3: ablation.design: design 'grid' needs 'axes'"),
    (
        "unknown axis",
        "study: {name: s}\nablation:\n  design: grid\n  axes:\n    model.neckk: [l2norm]\n",
        "spec.yaml:5: ablation.axes['model.neckk'][0]: unknown axis 'model.neckk'",
    ),
    (
        "axis without values",
        "study: {name: s}\nablation:\n  design: grid\n  axes:\n    model.neck: []\n",
        "spec.yaml:4: ablation.axes: axis 'model.neck' has no values",
    ),
    (
        "invalid variant value",
        "study: {name: s}\nablation:\n  variants:\n    - name: v\n      set: {model.neck: batchnorm}\n",
        "spec.yaml:5: ablation.variants[0].set['model.neck']: variant 'v': model.neck: Input should be",
    ),
    (
        "duplicate variant names",
        "study: {name: s}\nablation:\n  design: list\n  variants: [{name: a}, {name: a}]\n",
        "two variants are named 'a'",
    ),
    ("duplicate seeds", "study: {name: s}\nablation: {seeds: [1, 1]}\n", "spec.yaml:2: ablation.seeds: seeds must be unique"),
    ("negative seed", "study: {name: s}\nablation: {seeds: [-1]}\n", "seeds must be >= 0"),
    (
        "unknown backbone",
        "study: {name: s}\nbaseline:\n  model: {backbone: resnet5000}\n",
        "spec.yaml:3: baseline.model.backbone: unknown timm backbone 'resnet5000'",
    ),
    (
        "real dataset without root",
        "study: {name: s}\nbaseline:\n  dataset: {name: market1501}\n",
        "spec.yaml:3: baseline.dataset: dataset 'market1501' needs 'root'",
    ),
    (
        "missing dataset folder",
        "study: {name: s}\nbaseline:\n  dataset: {name: market1501, root: /no/such/market}\n",
        "spec.yaml:3: baseline.dataset.root: dataset folder not found: /no/such/market",
    ),
    (
        "missing weights file",
        "study: {name: s}\nbaseline:\n  model: {pretrained_path: /no/weights.pth}\n",
        "spec.yaml:3: baseline.model.pretrained_path: weights file not found",
    ),
    (
        "unknown weight tag",
        "study: {name: s}\nbaseline:\n  model: {backbone: resnet18, pretrained: resnet18.nope}\n",
        "spec.yaml:3: baseline.model.pretrained: unknown timm weight tag 'resnet18.nope'; tags of resnet18: ",
    ),
    (
        "no pinned tag",
        "study: {name: s}\nbaseline:\n  model: {backbone: resnet10t, pretrained: true}\n",
        "spec.yaml:3: baseline.model: pretrained: true has no pinned weight tag for backbone 'resnet10t'",
    ),
    (
        "last stride of HA-CNN",
        "study: {name: s}\nbaseline:\n  model: {backbone: hacnn, last_stride: 1}\n",
        "spec.yaml:3: baseline.model.last_stride: 'hacnn' fixes its strides",
    ),
    (
        "unknown part switched off",
        "study: {name: s}\nablation:\n  design: leave_one_out\n  parts: [{name: GeM, set: {model.pooling: avg}}]\n  variants:\n    - {name: x, without: [gem]}\n",
        "spec.yaml:6: ablation.variants[0].without: variant 'x' switches off unknown part 'gem'; parts: GeM",
    ),
    (
        "negative GPUs",
        "study: {name: s}\nresources: {gpus_per_trial: -1}\n",
        "spec.yaml:2: resources.gpus_per_trial: Input should be greater than or equal to 0",
    ),
    ("optuna without search", "study: {name: s}\nablation: {design: optuna}\n", "needs a 'search' block"),
    (
        "log range from zero",
        "study: {name: s}\nablation:\n  design: optuna\n  search:\n    num_samples: 2\n    space:\n      train.lr: {type: loguniform, low: 0, high: 1}\n",
        "a log range needs low > 0",
    ),
    (
        "search bound invalid for the config",
        "study: {name: s}\nablation:\n  design: optuna\n  search:\n    num_samples: 2\n    space:\n      train.epochs: {type: int, low: 0, high: 3}\n",
        "spec.yaml:7: ablation.search.space['train.epochs']",
    ),
    ("unreadable YAML", "study: {name: s\nbaseline: [\n", "invalid YAML"),
    ("YAML list at the top", "- study\n", "spec.yaml:1: the spec must be a YAML mapping"),
    ("empty file", "", "the spec must be a YAML mapping"),
    (
        "boolean for a number",
        "study: {name: s}\nbaseline:\n  train: {epochs: true}\n",
        "spec.yaml:3: baseline.train.epochs: expected a number, got true",
    ),
    (
        "boolean in a list of numbers",
        "study: {name: s}\nbaseline:\n  train: {epochs: 30, lr_steps: [10, yes]}\n",
        "baseline.train.lr_steps: expected a number",
    ),
    (
        "infinite learning rate",
        "study: {name: s}\nbaseline:\n  train:\n    lr: .inf\n",
        "spec.yaml:4: baseline.train.lr: Input should be a finite number",
    ),
    (
        "NaN in an axis",
        "study: {name: s}\nablation:\n  axes:\n    loss.triplet.margin: [0.3, .nan]\n",
        "ablation.axes['loss.triplet.margin'][1]",
    ),
    (
        "duplicate key",
        "study: {name: s}\nbaseline:\n  train: {epochs: 1}\nbaseline:\n  train: {epochs: 2}\n",
        "spec.yaml:4: key 'baseline' is given twice (lines 2 and 4)",
    ),
    (
        "duplicate nested key",
        "study: {name: s}\nbaseline:\n  train:\n    epochs: 1\n    lr: 0.1\n    epochs: 2\n",
        "spec.yaml:6: key 'epochs' is given twice (lines 4 and 6)",
    ),
    (
        "lr step beyond epochs",
        "study: {name: s}\nbaseline:\n  train: {epochs: 10, lr_steps: [5, 12]}\n",
        "baseline.train: lr_steps [5, 12] must lie below epochs (10)",
    ),
    (
        "warm-up beyond epochs",
        "study: {name: s}\nbaseline:\n  train: {epochs: 3, warmup_epochs: 4}\n",
        "baseline.train: warmup_epochs (4) exceeds epochs (3)",
    ),
    (
        "fixed-size backbone at another size",
        "study: {name: s}\nbaseline:\n  dataset: {height: 64, width: 32}\n  model: {backbone: vit_tiny_patch16_224}\n",
        "spec.yaml:4: baseline.model.backbone: backbone 'vit_tiny_patch16_224' takes only 224x224 images",
    ),
    (
        "unsupported store scheme",
        "study: {name: s}\noutput:\n  store: 'ftp://files.example.org/results'\n",
        "spec.yaml:3: output.store: result store 'ftp://files.example.org/results': the scheme is not supported",
    ),
    ("recursive alias", "study: {name: s}\nbaseline: &a\n  x: *a\n", "recursive alias"),
]


def run_launch(tmp_path: Path, text: str | None, monkeypatch) -> tuple[int, list[str]]:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["launch", str(path)])
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]


def assert_nothing_launched(tmp_path: Path) -> None:
    import ray

    assert not ray.is_initialized()
    assert not list(tmp_path.rglob("mlflow.db")), "an MLflow store was created"
    assert not list(tmp_path.rglob("part-*.parquet")), "a result row was written"


@pytest.mark.parametrize("name, text, fragment", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_specs(name, text, fragment, tmp_path, monkeypatch):
    code, lines = run_launch(tmp_path, text, monkeypatch)
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "studies").exists()
    assert_nothing_launched(tmp_path)


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level lists the previous one ten times; 10^9 strings once expanded."""
    lines = ["study: {name: s}", 'l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["validate", "plan", "launch"])
def test_a_yaml_alias_bomb_is_refused_fast(command, tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(billion_laughs(), encoding="utf-8")
    started = time.monotonic()
    result = CliRunner().invoke(app, [command, str(tmp_path / "spec.yaml")])
    assert time.monotonic() - started < 10
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "spec.yaml:" in lines[0] and "aliases expand this document past 200,000 nodes" in lines[0]
    assert not (tmp_path / "studies").exists()


def test_ordinary_anchors_and_aliases_still_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = spec("""
        study: {name: s}
        baseline:
          train: &short {epochs: 1, warmup_epochs: 0, lr_steps: []}
        ablation:
          design: list
          variants:
            - {name: base}
            - name: other
              set: {train.epochs: 1, model.neck: l2norm}
        extra_train_for_reference: *short
    """)
    (tmp_path / "spec.yaml").write_text(text.replace("extra_train_for_reference: *short\n", ""), encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.stderr
    merged = "study: {name: s}\n_defaults: &train {epochs: 1, warmup_epochs: 0}\n"
    (tmp_path / "merge.yaml").write_text(merged + "baseline:\n  train:\n    <<: *train\n    lr_steps: []\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "merge.yaml")])
    # An unknown top-level key is still an error; the alias itself is not.
    assert result.exit_code == 2 and "_defaults: unknown key" in result.stderr
    aliased = "study: {name: s}\nbaseline:\n  train: &t {epochs: 2, warmup_epochs: 0, lr_steps: []}\nablation:\n  design: list\n  variants: [{name: a, set: {train.lr: 0.001}}, {name: b}]\n"
    (tmp_path / "alias.yaml").write_text(aliased, encoding="utf-8")
    assert CliRunner().invoke(app, ["plan", str(tmp_path / "alias.yaml")]).exit_code == 0


def big_grid(values_per_axis: int = 1000) -> str:
    margins = ", ".join(f"{0.1 + i * 1e-4:.4f}" for i in range(values_per_axis))
    rates = ", ".join(f"{1e-4 * (1 + i):.6f}" for i in range(values_per_axis))
    return f"study: {{name: s}}\nablation:\n  design: grid\n  axes:\n    loss.triplet.margin: [{margins}]\n    train.lr: [{rates}]\n"


@pytest.mark.parametrize("command", ["validate", "plan", "launch"])
def test_a_grid_above_the_limit_needs_the_flag_and_is_counted_not_expanded(command, tmp_path, monkeypatch):
    import time

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(big_grid(), encoding="utf-8")
    started = time.monotonic()
    result = CliRunner().invoke(app, [command, str(tmp_path / "spec.yaml")])
    assert time.monotonic() - started < 10  # expanding 10^6 configs would take minutes
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "spec.yaml:2: ablation: this study plans 1,000,000 trials, more than the limit of 2,000" in lines[0]
    assert "--max-trials 1000000" in lines[0]
    assert not (tmp_path / "studies").exists()


def test_the_trial_limit_is_configurable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(big_grid(3), encoding="utf-8")  # 9 trials
    assert CliRunner().invoke(app, ["plan", str(tmp_path / "spec.yaml"), "--max-trials", "8"]).exit_code == 2
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "spec.yaml"), "--max-trials", "9"])
    assert result.exit_code == 0 and "9 trials" in result.stdout


def test_output_dir_that_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    code, lines = run_launch(tmp_path, f"study: {{name: s}}\noutput:\n  dir: '{tmp_path / 'taken'}/study'\n", monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:3: output.dir:" in lines[0] and "taken is a file, not a folder" in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()


def test_resources_no_machine_has_are_refused_before_anything_starts(tiny_market, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("REID_ORCH_NUM_CPUS", "2")
    code, lines = run_launch(tmp_path, dataset_spec(tiny_market, "resources: {cpus_per_trial: 64}\n"), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:5: resources.cpus_per_trial: a trial asks for 64 CPU and 0 GPU, more than this machine has (2 CPU / " in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()
    if torch.cuda.device_count() < 8:
        code, lines = run_launch(tmp_path, dataset_spec(tiny_market, "resources: {gpus_per_trial: 8}\n"), monkeypatch)
        assert code == 2 and len(lines) == 1, lines
        assert "resources.gpus_per_trial" in lines[0] and "8 GPU" in lines[0]
        assert not (tmp_path / "studies").exists()


def test_an_address_where_no_ray_listens_fails_within_seconds(tiny_market, tmp_path, monkeypatch):
    import time

    from tests.fixtures_s3 import free_port

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(dataset_spec(tiny_market), encoding="utf-8")
    port = free_port()
    started = time.monotonic()
    result = CliRunner().invoke(app, ["launch", str(tmp_path / "spec.yaml"), "--address", f"127.0.0.1:{port}"])
    assert time.monotonic() - started < 30
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in lines[0] and f"ray start --head --port={port}" in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()


def test_a_study_another_live_driver_runs_is_refused(tiny_market, tmp_path, monkeypatch):
    import os
    import socket

    from storage.lock import StudyLock

    store = tmp_path / "store"
    holder = StudyLock(str(store), "s", heartbeat_seconds=60)
    holder.acquire()  # this test process plays the first driver
    try:
        code, lines = run_launch(tmp_path, dataset_spec(tiny_market, f"output: {{store: '{store}'}}\n"), monkeypatch)
    finally:
        holder.release()
    assert code == 2 and len(lines) == 1, lines
    assert f"study 's' is being run by another driver (pid {os.getpid()} on host {socket.gethostname()}, started " in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()


def test_missing_spec_file(tmp_path, monkeypatch):
    code, lines = run_launch(tmp_path, None, monkeypatch)
    assert code == 2 and len(lines) == 1 and "no such file" in lines[0] and "spec.yaml" in lines[0]


def market_copy(tiny_market: Path, tmp_path: Path) -> Path:
    import shutil

    root = tmp_path / "market"
    shutil.copytree(tiny_market, root)
    return root


def dataset_spec(root: Path, extra: str = "") -> str:
    return f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: '{root}', height: 64, width: 32}}\n  train: {{epochs: 1, ids_per_batch: 8}}\n{extra}"


def test_corrupt_image_in_dataset(tiny_market, tmp_path, monkeypatch):
    root = market_copy(tiny_market, tmp_path)
    victims = sorted((root / "query").glob("*.jpg"))[:2]
    for victim in victims:
        victim.write_bytes(b"\xff\xd8 not really a jpeg")
    code, lines = run_launch(tmp_path, dataset_spec(root), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert victims[0].name in lines[0] and "2 file(s)" in lines[0]
    assert_nothing_launched(tmp_path)


def test_badly_named_file_in_dataset(tiny_market, tmp_path, monkeypatch):
    root = market_copy(tiny_market, tmp_path)
    (root / "bounding_box_train" / "holiday_photo.jpg").write_bytes((next((root / "query").glob("*.jpg"))).read_bytes())
    code, lines = run_launch(tmp_path, dataset_spec(root), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "holiday_photo.jpg" in lines[0]
    assert_nothing_launched(tmp_path)


def test_missing_split_folder(tiny_market, tmp_path, monkeypatch):
    import shutil

    root = market_copy(tiny_market, tmp_path)
    shutil.rmtree(root / "bounding_box_test")
    code, lines = run_launch(tmp_path, dataset_spec(root), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "bounding_box_test" in lines[0]
    assert_nothing_launched(tmp_path)


def test_unwritable_result_store(tiny_market, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    code, lines = run_launch(tmp_path, dataset_spec(tiny_market, f"output: {{store: '{blocker}/results'}}\n"), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "not-a-folder/results" in lines[0] and "not writable" in lines[0]
    assert_nothing_launched(tmp_path)


def test_unreachable_s3_store(tiny_market, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, lines = run_launch(tmp_path, dataset_spec(tiny_market, "output: {store: 's3://bucket/prefix'}\n"), monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "127.0.0.1:9" in lines[0] and "bucket" in lines[0] and "very-secret-value" not in lines[0]
    assert_nothing_launched(tmp_path)


def test_a_credential_in_the_spec_is_refused_and_never_shown(tmp_path, monkeypatch):
    text = "study: {name: s}\noutput:\n  tracking_uri: http://alice:s3cr3t-pw@mlflow.internal:5000\n"
    code, lines = run_launch(tmp_path, text, monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:3: output.tracking_uri" in lines[0] and "embeds a credential" in lines[0]
    assert "s3cr3t-pw" not in lines[0] and "alice:***@mlflow.internal" in lines[0]
    assert not (tmp_path / "studies").exists()


def test_an_unreachable_tracking_server_is_one_redacted_line(tiny_market, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(dataset_spec(tiny_market), encoding="utf-8")
    result = CliRunner().invoke(app, ["launch", str(path), "--tracking-uri", "http://bob:hunter2-pw@127.0.0.1:9"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "MLflow tracking server http://bob:***@127.0.0.1:9 is not usable" in lines[0]
    assert "hunter2-pw" not in result.stderr + result.stdout
    assert_nothing_launched(tmp_path)


def test_an_unknown_store_scheme(tmp_path, monkeypatch):
    code, lines = run_launch(tmp_path, "study: {name: s}\noutput: {store: 'gs://bucket/x'}\n", monkeypatch)
    assert code == 2 and len(lines) == 1, lines
    assert "gs://bucket/x" in lines[0] and "s3://" in lines[0]


def test_resume_without_a_withheld_tracking_uri_is_refused(tmp_path, monkeypatch):
    from orchestrator.study_files import record_launch

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    record_launch(
        tmp_path / "studies" / "s", "study: {name: s}\n", store_uri=str(tmp_path / "r"), tracking_uri="http://u:pw-xyz@h:5000", address=None
    )
    assert "pw-xyz" not in (tmp_path / "studies" / "s" / "launch.json").read_text()
    result = CliRunner().invoke(app, ["resume", "s"])
    assert result.exit_code == 2 and "pass it again with --tracking-uri" in result.stderr


def test_a_runtime_failure_is_one_line_with_exit_1_and_the_traceback_behind_debug():
    import typer

    from orchestrator import cli

    probe = typer.Typer()

    @probe.callback()
    def main(debug: bool = typer.Option(False, "--debug")) -> None:
        cli._debug["on"] = debug

    @probe.command()
    @cli.handle_errors
    def explode() -> None:
        raise RuntimeError("the GPU fell off the bus\nsecond line of detail")

    @probe.command()
    @cli.handle_errors
    def interrupt() -> None:
        raise KeyboardInterrupt

    try:
        plain = CliRunner().invoke(probe, ["explode"])
        assert plain.exit_code == 1
        assert plain.stderr.strip().splitlines() == ["error: RuntimeError: the GPU fell off the bus (rerun with --debug for the traceback)"]
        debug = CliRunner().invoke(probe, ["--debug", "explode"])
        assert debug.exit_code == 1 and "Traceback (most recent call last)" in debug.stderr
        stopped = CliRunner().invoke(probe, ["interrupt"])
        assert stopped.exit_code == 130 and stopped.stderr.strip() == "interrupted"
    finally:
        cli._debug["on"] = False
