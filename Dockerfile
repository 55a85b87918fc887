# The image the study's RayJob runs: Ray head and workers with this project installed, and the
# study's MLflow tracking server (MLflow with the PostgreSQL driver and boto3 for S3 artifacts,
# which ghcr.io/mlflow/mlflow lacks: mlflow/mlflow#9513), so server and client are one version.
#
#   docker build -t reid-orchestrator:0.1.0 .
#
# `orchestrator k8s render` names this image by default (the tag is the project's version);
# push it to a registry the cluster pulls from and pass --image REGISTRY/reid-orchestrator:0.1.0.
# torch and torchvision are the versions pyproject.toml pins, from PyPI's Linux wheels, which carry
# the CUDA runtime libraries: the GPU node supplies only the NVIDIA driver. Ray is the version the
# RayJob's rayVersion names, MLflow the version pyproject.toml pins. A test keeps all four equal
# to their sources.
FROM python:3.11-slim-bookworm

ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG RAY_VERSION=2.60.0
ARG MLFLOW_VERSION=3.17.2
ARG PSYCOPG2_VERSION=2.9.13

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0

# OpenCV (headless) needs glib; PyTorch's CPU kernels need OpenMP.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# KubeRay's convention: Ray runs as user "ray" (uid 1000) with its home as the working folder;
# USER names the uid, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --gid 1000 ray \
    && useradd --uid 1000 --gid ray --create-home --shell /bin/bash ray

# The heavy, rarely changing layer first, so a code change rebuilds only the layers below.
RUN pip install --no-cache-dir \
        "torch==${TORCH_VERSION}" \
        "torchvision==${TORCHVISION_VERSION}" \
        "ray[tune]==${RAY_VERSION}" \
        "mlflow==${MLFLOW_VERSION}" \
        "psycopg2-binary==${PSYCOPG2_VERSION}"

WORKDIR /opt/reid-orchestrator
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY analysis ./analysis
COPY search_spaces ./search_spaces
COPY trainables ./trainables
COPY storage ./storage
RUN pip install --no-cache-dir . \
    && python -c "import torch, orchestrator.cli, trainables.tune_entry, analysis.report, mlflow, psycopg2, boto3; assert torch.__version__.startswith('${TORCH_VERSION}'); assert mlflow.__version__ == '${MLFLOW_VERSION}'"

USER 1000:1000
WORKDIR /home/ray
ENV REID_ORCH_CACHE=/home/ray/.cache/reid-orchestrator
CMD ["orchestrator", "--help"]
