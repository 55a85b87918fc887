"""Query-gallery distances computed in row chunks on the features' device, and evaluation
straight from features, so the full (num_query x num_gallery) matrix never has to exist.

* ``euclidean``: plain (not squared) distance ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``; the
  clamp absorbs the rounding of the expansion.
* ``cosine``: ``1 - cos(q, g)`` (range [0, 2]; a zero vector has cosine 0 to everything, so
  distance 1). Each query chunk is L2-normalised and the products are divided by the gallery
  norms, so no normalised copy of the gallery is made.

Features are widened to float32 before the product (bf16 / fp16 inputs from autocast included),
so distances are float32 whatever the input precision.
"""

from __future__ import annotations

from typing import Any, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from trainables.evaluation.rank import RankingAccumulator

__all__ = ["METRICS", "evaluate_features", "iter_distance_chunks", "pairwise_distance"]

Metric = Literal["euclidean", "cosine"]
METRICS = ("euclidean", "cosine")
_CHUNK_BYTES = 256 << 20  # one float32 distance chunk
_ROWS_PER_PASS = 8192  # rows per elementwise pass over the features


def pairwise_distance(qf: Any, gf: Any, metric: Metric = "euclidean", chunk_size: int | None = None) -> torch.Tensor:
    """The full (num_query, num_gallery) float32 distance matrix, on the features' device,
    computed ``chunk_size`` query rows at a time (default: ~256 MiB per chunk)."""
    q, g = _features(qf, gf, metric)
    out = torch.empty(q.shape[0], g.shape[0], dtype=torch.float32, device=q.device)
    for start, stop, chunk in _chunks(q, g, metric, _rows_per_chunk(chunk_size, g.shape[0])):
        out[start:stop] = chunk
    return out


def iter_distance_chunks(
    qf: Any, gf: Any, metric: Metric = "euclidean", chunk_size: int | None = None
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(start, stop, D)`` with ``D`` the float32 distances of queries start..stop-1 to
    the whole gallery, on the features' device (inputs are checked at the call, not lazily)."""
    q, g = _features(qf, gf, metric)
    return _chunks(q, g, metric, _rows_per_chunk(chunk_size, g.shape[0]))


def evaluate_features(
    qf: Any,
    gf: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    metric: Metric = "euclidean",
    max_rank: int = 50,
    *,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """:func:`trainables.evaluation.evaluate` of the distances between query features ``qf``
    (num_query, dim) and gallery features ``gf`` (num_gallery, dim), computed and evaluated
    chunk by chunk on the features' device. Same keys, semantics and tie rule as ``evaluate``
    (Market-1501 protocol; APRA section 4 q-mAP / g-mAP)."""
    q, g = _features(qf, gf, metric)
    acc = RankingAccumulator(q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, device=q.device)
    if (acc.num_query, acc.num_gallery) != (q.shape[0], g.shape[0]):
        raise ValueError(
            f"features must have one row per id: got {q.shape[0]} query and {g.shape[0]} gallery rows "
            f"for {acc.num_query} query and {acc.num_gallery} gallery ids"
        )
    for start, _, chunk in _chunks(q, g, metric, _rows_per_chunk(chunk_size, g.shape[0])):
        acc.add(start, chunk)
    return acc.result()


def _features(qf: Any, gf: Any, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    q, g = _as_features("qf", qf), _as_features("gf", gf)
    if q.device != g.device:
        raise ValueError(f"qf and gf must be on the same device, got {q.device} and {g.device}")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"qf and gf must have the same feature dimension, got {q.shape[1]} and {g.shape[1]}")
    return q, g


def _as_features(name: str, x: Any) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype.is_complex or not (t.dtype.is_floating_point or t.dtype in _INT_DTYPES):
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (num_images, dim) and non-empty, got shape {tuple(t.shape)}")
    t = t.float()  # distances accumulate in float32 whatever the input precision
    for part in t.split(_ROWS_PER_PASS):  # in parts: no full-size temporary
        if not bool(torch.isfinite(part).all()):
            raise ValueError(f"{name} must be finite (no NaN or inf); found a non-finite value")
    return t


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([part.square().sum(1) for part in x.split(_ROWS_PER_PASS)])


_EPS = 1e-12
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _rows_per_chunk(chunk_size: int | None, num_gallery: int) -> int:
    if chunk_size is None:
        return max(1, _CHUNK_BYTES // (4 * num_gallery))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1 or None, got {chunk_size!r}")
    return int(chunk_size)


def _chunks(q: torch.Tensor, g: torch.Tensor, metric: str, step: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    g_t = g.t()
    g_sq = _squared_norms(g)
    # Cosine scales the products by 1 / |g| rather than normalising a copy of the gallery
    # (F.normalize's clamp of the norm at 1e-12 kept).
    g_scale = g_sq.sqrt().clamp_(min=_EPS).reciprocal_() if metric == "cosine" else None
    for start in range(0, q.shape[0], step):
        qc = q[start : start + step]
        if metric == "euclidean":
            # |q|^2 + |g|^2 - 2 q.g, in place to keep one chunk-sized buffer.
            d = qc @ g_t
            d.mul_(-2.0).add_(qc.square().sum(1, keepdim=True)).add_(g_sq).clamp_(min=0.0).sqrt_()
        else:
            d = F.normalize(qc, dim=1, eps=_EPS) @ g_t
            d.mul_(g_scale).neg_().add_(1.0)
        yield start, start + qc.shape[0], d
