"""Metric and status names, defined once.

The trainable reports these keys, the recorder writes them to MLflow and Parquet, the store
filters on the statuses and the summary reads them back: every package imports the names from
here instead of spelling the strings. Pure Python, no imports beyond the standard library, so
``storage`` and ``search_spaces`` may use it without pulling in torch.

Per-camera metrics travel as one flat key per camera and metric, ``cam/cNN/<metric>`` (the
MLflow name of DESIGN.md), built by :func:`camera_key` and read back by :func:`parse_camera_key`.
"""

from __future__ import annotations

import re

# -- overall metrics (fractions in [0, 1] in the store, percent in tables) --------------------
RANK1 = "rank1"
RANK5 = "rank5"
RANK10 = "rank10"
RANK20 = "rank20"
RANK50 = "rank50"
MAP = "mAP"
MINP = "mINP"
NUM_VALID_QUERIES = "num_valid_queries"  # queries with a positive in another camera
NUM_QUERIES_WITHOUT_POSITIVE = "num_queries_without_positive"

#: CMC ranks reported as scalar metrics (MLflow and the ``trials`` table).
REPORTED_RANKS: tuple[int, ...] = (1, 5, 10, 20, 50)


def rank_key(k: int) -> str:
    """``rank<k>``: the CMC at rank k."""
    return f"rank{k}"


# -- per-camera metrics (APRA section 4) --------------------------------------------------------
Q_MAP = "q_mAP"  # query-mAP of camera c: mean AP over the queries taken by camera c
G_MAP = "g_mAP"  # gallery-mAP of camera c: AP against the positives of camera c only
Q_RANK1 = "q_rank1"  # rank-1 over the queries of camera c (MLflow name ``cam/cNN/rank1``)
CAMERA_METRICS: tuple[str, ...] = (Q_MAP, G_MAP, Q_RANK1)

# Camera summaries of one trial's per-camera metric m: ``lowest_m`` (that trial's own lowest
# camera), ``lowest_m_camera``, ``avg_m``, ``std_m`` (population), ``spread_m`` (max - min).
# "Weakest" is kept for the study's weakest camera, one camera for every row of a table
# (:data:`WEAKEST_Q_MAP`): a trial's lowest camera can differ from trial to trial.
LOWEST, AVG, STD, SPREAD = "lowest", "avg", "std", "spread"
CAMERA_SUMMARIES: tuple[str, ...] = (LOWEST, AVG, STD, SPREAD)


def camera_summary_key(summary: str, metric: str) -> str:
    """``lowest_q_mAP``, ``avg_g_mAP``, ...: a summary over one trial's cameras of a per-camera metric."""
    if summary not in CAMERA_SUMMARIES:
        raise ValueError(f"unknown camera summary {summary!r}; known: {', '.join(CAMERA_SUMMARIES)}")
    return f"{summary}_{metric}"


def lowest_camera_key(metric: str) -> str:
    """``lowest_q_mAP_camera``: the id of the trial's camera with the lowest value of ``metric``."""
    return f"{camera_summary_key(LOWEST, metric)}_camera"


LOWEST_Q_MAP = camera_summary_key(LOWEST, Q_MAP)
LOWEST_G_MAP = camera_summary_key(LOWEST, G_MAP)
# Table columns (never stored per trial): the study's weakest camera's q-mAP / g-mAP, one camera
# for every row (see analysis.summary). Stores written before 2026-12 carry per-trial columns
# of these names that meant a trial's lowest camera; the table never read them.
WEAKEST_Q_MAP = "weakest_q_mAP"
WEAKEST_G_MAP = "weakest_g_mAP"
AVG_Q_MAP = camera_summary_key(AVG, Q_MAP)
AVG_G_MAP = camera_summary_key(AVG, G_MAP)

# A target's camera keys carry its label in front: ``duke/cam/c03/q_mAP`` (see eval.targets below).
_CAMERA_KEY = re.compile(r"^(?:([A-Za-z][A-Za-z0-9_-]*)/)?cam/c(\d+)/(.+)$")


#: Per-camera metric -> its name in camera keys and in the ``cameras`` table's ``metric`` column
#: (the per-camera rank-1 is ``cam/cNN/rank1`` there, as DESIGN.md names it).
CAMERA_KEY_NAMES: dict[str, str] = {Q_MAP: Q_MAP, G_MAP: G_MAP, Q_RANK1: RANK1}


def camera_key(camera: int, metric: str) -> str:
    """The flat report / MLflow key of one camera's metric: ``cam/c03/q_mAP``; ``q_rank1`` is
    keyed ``cam/c03/rank1`` (:data:`CAMERA_KEY_NAMES`)."""
    return f"cam/c{int(camera):02d}/{CAMERA_KEY_NAMES.get(metric, metric)}"


def parse_camera_key(key: str) -> tuple[int, str] | None:
    """``cam/c03/q_mAP`` -> ``(3, "q_mAP")``; an evaluation target's ``duke/cam/c03/q_mAP`` ->
    ``(3, "duke/q_mAP")`` (its camera, and its metric name in the ``cameras`` table); any other
    key -> None."""
    match = _CAMERA_KEY.match(key)
    if not match:
        return None
    label, camera, metric = match.groups()
    return int(camera), target_key(label, metric) if label else metric


# -- bookkeeping keys a trial reports besides metrics -------------------------------------------
EPOCH = "epoch"
LOSS = "loss"  # the total; its parts are ``loss_<term>`` (the objective's terms)
LR = "lr"
EPOCH_SECONDS = "epoch_seconds"  # training time of the epoch
IMAGES_PER_SECOND = "images_per_second"
EVAL_SECONDS = "eval_seconds"  # on evaluation epochs: embedding extraction and ranking
SWA_SNAPSHOTS = "swa_snapshots"  # SWA/SWAG phase: weight snapshots averaged so far
NODE_ID = "node_id"  # added by the Ray Tune trainable: the Ray node the trial ran on
NODE_IP = "node_ip"  # added by Ray Tune itself

# -- a trial's compute (trials table and MLflow; the driver measures it) --------------------------
WALL_SECONDS = "wall_seconds"  # from the trial's start to its end, every attempt (and launch) summed
CPUS = "cpus"  # resources.cpus_per_trial the trial held
GPUS = "gpus"  # resources.gpus_per_trial (fractions where trials share a GPU)
CPU_SECONDS = "cpu_seconds"  # wall_seconds x cpus
GPU_SECONDS = "gpu_seconds"  # wall_seconds x gpus

#: A report holds evaluation metrics (the epoch was an evaluation epoch) iff it has this key.
EVALUATION_MARKER = MAP
# Implicit attention (Yaghoubi et al.): share of training images with a compatible partner, and
# the share of augmented samples actually composited in the epoch (about p times that share).
COMPOSITE_PARTNER_SHARE = "composite_partner_share"
COMPOSITE_RATE = "composite_rate"

# -- trial statuses (the ``status`` column and MLflow's ``reid.outcome`` tag) --------------------
COMPLETED = "completed"
PRUNED = "pruned"  # stopped early by the scheduler (ASHA); counts as done
FAILED = "failed"
DONE_STATUSES: tuple[str, ...] = (COMPLETED, PRUNED)

#: Metrics a table may show as columns (``report.metrics`` in a spec), with their headers.
TABLE_METRIC_HEADERS: dict[str, str] = {
    **{rank_key(k): f"rank-{k}" for k in REPORTED_RANKS},
    MAP: "mAP",
    MINP: "mINP",
    WEAKEST_Q_MAP: "weakest q-mAP",
    WEAKEST_G_MAP: "weakest g-mAP",
    AVG_Q_MAP: "avg q-mAP",
    AVG_G_MAP: "avg g-mAP",
}

#: The default table columns, in APRA Table 2's order.
DEFAULT_TABLE_METRICS: tuple[str, ...] = (RANK1, MAP, WEAKEST_Q_MAP, WEAKEST_G_MAP, AVG_Q_MAP, AVG_G_MAP)


# -- evaluation targets (``eval.targets``: more test sets, evaluated after training) -----------
# A target labelled ``duke`` reports every metric of the trial's own evaluation under
# ``duke/<metric>``: ``duke/rank1``, ``duke/mAP``, ``duke/lowest_q_mAP``, and per camera
# ``duke/cam/c03/q_mAP`` (the target's own camera ids), whose ``cameras`` table rows have the
# metric ``duke/q_mAP``. Table columns follow: ``duke/mAP``, ``duke/weakest_q_mAP``.
TARGET_LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
_TARGET_LABEL = re.compile(TARGET_LABEL_PATTERN)

#: Names a target label may not take (compared without case): they begin keys of their own
#: (``cam/c01/...``, the study's ``weakest_camera/q_mAP``, Ray's ``config/...``), or they are
#: metric names, so ``mAP/rank1`` or ``rank1/mAP`` would read as something else.
RESERVED_TARGET_LABELS: frozenset[str] = frozenset(
    name.lower()
    for name in (
        "cam",
        "weakest_camera",
        "config",
        "search",
        "cfg",
        *(rank_key(k) for k in REPORTED_RANKS),
        MAP,
        MINP,
        NUM_VALID_QUERIES,
        NUM_QUERIES_WITHOUT_POSITIVE,
        *CAMERA_METRICS,
        *CAMERA_KEY_NAMES.values(),
        WEAKEST_Q_MAP,
        WEAKEST_G_MAP,
        *(camera_summary_key(summary, metric) for summary in CAMERA_SUMMARIES for metric in CAMERA_METRICS),
        *(lowest_camera_key(metric) for metric in CAMERA_METRICS),
        EPOCH,
        LOSS,
        LR,
        EPOCH_SECONDS,
        IMAGES_PER_SECOND,
        EVAL_SECONDS,
        SWA_SNAPSHOTS,
        NODE_ID,
        NODE_IP,
        COMPOSITE_PARTNER_SHARE,
        COMPOSITE_RATE,
    )
)


def target_label_problem(label: str) -> str | None:
    """Why ``label`` cannot name an evaluation target, or None when it can."""
    if not _TARGET_LABEL.match(label):
        return f"target label {label!r} must be a letter then up to 31 letters, digits, '_' or '-' (e.g. duke)"
    if label.lower() in RESERVED_TARGET_LABELS:
        return f"target label {label!r} is a metric or key name of its own; choose another (e.g. duke, msmt)"
    return None


def target_key(label: str, key: str) -> str:
    """``duke/mAP``: a metric (or camera key) of the evaluation target ``label``."""
    return f"{label}/{key}"


def split_target_metric(name: str) -> tuple[str | None, str]:
    """``duke/mAP`` -> ``("duke", "mAP")``; a name without a target label -> ``(None, name)``."""
    label, slash, rest = name.partition("/")
    if slash and _TARGET_LABEL.match(label) and parse_camera_key(name) is None and label.lower() not in RESERVED_TARGET_LABELS:
        return label, rest
    return None, name


def table_metric_header(name: str) -> str | None:
    """The column header of a table metric (``report.metrics``), or None when ``name`` is not
    one: a name of :data:`TABLE_METRIC_HEADERS` (``mAP`` -> ``mAP``), or one of them behind an
    evaluation target's label (``duke/mAP`` -> ``duke mAP``, ``duke/weakest_q_mAP`` -> ``duke
    weakest q-mAP``). Whether the study has that target is the spec's check."""
    label, base = split_target_metric(name)
    header = TABLE_METRIC_HEADERS.get(base)
    if header is None:
        return None
    return header if label is None else f"{label} {header}"


def target_weakest_metric(name: str) -> tuple[str, str] | None:
    """``duke/weakest_q_mAP`` -> ``("duke", "q_mAP")``: a table column read at the target's own
    weakest camera; None for any other name."""
    label, base = split_target_metric(name)
    if label is None or base not in (WEAKEST_Q_MAP, WEAKEST_G_MAP):
        return None
    return label, Q_MAP if base == WEAKEST_Q_MAP else G_MAP
