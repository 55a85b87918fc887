"""Ranking metrics for person re-identification, exact, chunked, and without sorting any row.

Protocol (Market-1501, Zheng et al., ICCV 2015; the rules of torchreid's ``eval_market1501``):

* For each query, gallery images with the query's pid AND camera are removed from its ranking,
  and junk images (pid ``-1``) are removed from every ranking. Distractors (pid ``0``) stay as
  ordinary negatives. Pids are otherwise compared literally (a pid ``-1`` query never has a
  positive).
* Positives of a query: gallery images with its pid from a different camera. A query without a
  valid positive is left out of CMC, mAP, mINP and every per-camera metric; it is counted in
  ``num_queries_without_positive``.
* AP = mean over the positives of precision at each positive's rank; CMC[k-1] = fraction of
  queries whose first positive has rank <= k; INP = positives / rank of the hardest positive.

Per-camera metrics (APRA, "Adversarial pairwise reverse attention for camera performance
imbalance in person re-identification", section 4):

* query-mAP (q-mAP) of camera c: mean AP over the queries taken by camera c.
* gallery-mAP (g-mAP) of camera c: over the queries that keep at least one positive from camera c,
  the mean AP computed with the positives from the other cameras removed from the ranking
  (removed, not counted as negatives; negatives of every camera stay).
* per-camera rank-1 (``q_rank1``): rank-1 over the queries taken by camera c.

Tie rule (pessimistic): a negative at exactly the same distance as a positive is ranked BEFORE
it, so a collapsed model whose distances are all equal cannot score a perfect mAP. The order
among tied positives does not change any metric. ``-0.0`` equals ``0.0``; ``+inf`` and ``-inf``
are ordinary values; NaN raises ``ValueError``.

Algorithm (per block of query rows; no row is ever sorted):

1. The gallery is sorted by pid once, so a query's same-pid images are one slice: their
   distances are gathered into a small padded (rows x L) array, giving the positives and the
   same-pid-same-camera images to exclude.
2. ``t`` = distance of the hardest positive. One comparison pass ``not (D > t[:, None])``
   gives the candidates, the only images that can precede a positive (NaN compares as a
   candidate, so checking the few candidates for NaN covers the whole block).
3. Each candidate's bucket = number of the row's positives strictly closer: one 1-D
   ``searchsorted`` on order-preserving integer keys of the float32 bits, offset by
   ``row << 32`` so rows never mix. The cumulative histogram of the buckets minus that of
   the excluded images gives ``neg_le[r, i]``, the negatives ranked before positive i. When
   most entries are candidates (a near-random model), counting ``D <= p_i`` for each
   positive with one cache-resident comparison pass each is cheaper and gives the same counts.
4. Positive i (0-based, sorted) has rank ``neg_le[r, i] + i + 1``; AP, CMC and INP follow. For
   g-mAP the positives of camera c, j = 0..m_c-1 in sorted order, have rank
   ``neg_le[r, i_j] + j + 1`` (the negatives before a positive do not depend on which other
   positives are kept), so every per-camera metric comes from the small arrays, with no extra
   pass over the matrix per camera.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from search_spaces.metrics import (
    AVG,
    G_MAP,
    MAP,
    MINP,
    NUM_QUERIES_WITHOUT_POSITIVE,
    NUM_VALID_QUERIES,
    Q_MAP,
    Q_RANK1,
    REPORTED_RANKS,
    SPREAD,
    STD,
    LOWEST,
    camera_summary_key,
    lowest_camera_key,
    rank_key,
)

__all__ = ["JUNK_PID", "RankingAccumulator", "evaluate"]

JUNK_PID = -1
_PAD_KEY = 0xFFFFFFFF  # sorts after every float32 key (NaN is rejected earlier)
_SIGN_OFFSET = 1 << 31
# Rows per block: few enough that the block's candidate temporaries stay small (on CPU, small
# enough for the allocator to reuse them rather than map fresh pages; on CUDA well under
# ~512 MiB). The candidate density of the previous block predicts the next one's.
_CPU_BLOCK_BYTES = 32 << 20
_CPU_BLOCK_CANDIDATES = 1 << 20
_CUDA_BLOCK_ELEMENTS = 32 << 20
_CUDA_BLOCK_CANDIDATES = 8 << 20
_DENSE = 1 / 16  # candidate density above which scanning flags one by one beats 8 at a time
# On CPU, counting the entries <= each positive with one comparison pass per positive costs
# about 1/200 of bucketing one candidate; past that density (near-random models) it wins.
_LEVEL_COST = 1 / 200
_FIRST_BLOCK_ROWS = 16  # a small first block measures the candidate density
_NUMPY_ON_CPU = True  # CPU blocks go through numpy (tests turn it off to run the torch path)
_MIN_REPORTED_RANK = 10  # rank1/5/10 are reported whatever max_rank is


def evaluate(
    distmat: np.ndarray | torch.Tensor,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    *,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Market-1501 CMC / mAP / mINP and APRA (section 4) per-camera metrics of a distance matrix.

    Args:
        distmat: (num_query, num_gallery) distances, smaller is closer; a numpy array or a torch
            tensor on any device (computed there, no copy of the matrix). Any real dtype:
            float32 takes the fast path, float16/bfloat16 are widened exactly, float64 and
            integers are ranked exactly too.
        q_pids, q_camids: (num_query,) integer person and camera ids of the queries.
        g_pids, g_camids: (num_gallery,) integer ids of the gallery; pid ``-1`` is junk.
        max_rank: length of the returned CMC curve (it saturates when the gallery is shorter).
        chunk_rows: query rows per block (default: sized for the device's cache / memory).

    Returns:
        ``rank1``, ``rank5``, ``rank10`` (and ``rank20``, ``rank50`` where ``max_rank`` reaches
        them), ``mAP``, ``mINP`` (floats in [0, 1]), ``cmc``
        (float64 numpy array of length ``max_rank``), ``num_valid_queries``,
        ``num_queries_without_positive``, the per-camera dicts ``q_mAP``, ``g_mAP``,
        ``q_rank1`` (camera id -> value; cameras without a qualifying query are absent) and for
        each of them ``lowest_<m>`` / ``lowest_<m>_camera`` (lowest value, smallest camera id
        on ties), ``avg_<m>`` (mean over cameras), ``std_<m>`` (population std) and
        ``spread_<m>`` (max - min).

    Tie rule: a negative at the same distance as a positive is ranked before it (pessimistic).

    Raises:
        ValueError: a shape or length mismatch, non-integer ids, NaN in ``distmat``,
            ``max_rank < 1``, or no query with a valid positive.
    """
    matrix = _as_matrix(distmat)
    device = matrix.device if isinstance(matrix, torch.Tensor) else torch.device("cpu")
    acc = RankingAccumulator(q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, device=device, chunk_rows=chunk_rows)
    if matrix.shape != (acc.num_query, acc.num_gallery):
        raise ValueError(
            f"distmat must have shape (len(q_pids), len(g_pids)) = ({acc.num_query}, {acc.num_gallery}), got {tuple(matrix.shape)}"
        )
    acc.add(0, matrix)
    return acc.result()


class RankingAccumulator:
    """Evaluates a distance matrix block by block (rows of queries), so the whole matrix never
    has to exist at once; ``result()`` returns what :func:`evaluate` returns.

    ``add(start, rows)`` takes the distances of queries ``start .. start + len(rows) - 1`` to the
    whole gallery; every query must be added exactly once before ``result()``.
    """

    def __init__(
        self,
        q_pids: Any,
        g_pids: Any,
        q_camids: Any,
        g_camids: Any,
        *,
        max_rank: int = 50,
        device: torch.device | str = "cpu",
        chunk_rows: int | None = None,
    ) -> None:
        if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
            raise ValueError(f"max_rank must be an integer >= 1, got {max_rank!r}")
        if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
            raise ValueError(f"chunk_rows must be an integer >= 1 or None, got {chunk_rows!r}")
        self.device = torch.device(device)
        self.max_rank = int(max_rank)
        self.chunk_rows = None if chunk_rows is None else int(chunk_rows)
        dev = self.device
        q_pid, q_cam = _ids("q_pids", q_pids, dev), _ids("q_camids", q_camids, dev)
        g_pid, g_cam = _ids("g_pids", g_pids, dev), _ids("g_camids", g_camids, dev)
        if len(q_pid) != len(q_cam):
            raise ValueError(f"q_pids and q_camids must have the same length, got {len(q_pid)} and {len(q_cam)}")
        if len(g_pid) != len(g_cam):
            raise ValueError(f"g_pids and g_camids must have the same length, got {len(g_pid)} and {len(g_cam)}")
        if len(q_pid) == 0 or len(g_pid) == 0:
            raise ValueError(f"need at least one query and one gallery image, got {len(q_pid)} and {len(g_pid)}")
        self.num_query, self.num_gallery = len(q_pid), len(g_pid)

        # Camera ids -> dense indices 0..C-1 (result dicts use the original ids).
        self.cameras = torch.unique(torch.cat([q_cam, g_cam]))
        self.num_cameras = len(self.cameras)
        self.q_pid = q_pid
        self.q_cam = torch.searchsorted(self.cameras, q_cam)
        g_cidx = torch.searchsorted(self.cameras, g_cam)

        # Gallery sorted by pid: each query's same-pid images are the slice [start, end).
        self.perm = torch.argsort(g_pid, stable=True)
        g_pid_sorted = g_pid[self.perm]
        self.g_cam_sorted = g_cidx[self.perm]
        self.start = torch.searchsorted(g_pid_sorted, q_pid)
        end = torch.searchsorted(g_pid_sorted, q_pid, right=True)
        self.length = torch.where(q_pid == JUNK_PID, 0, end - self.start)  # junk is handled apart
        junk = torch.tensor([JUNK_PID], dtype=torch.int64, device=dev)
        js, je = torch.searchsorted(g_pid_sorted, junk).item(), torch.searchsorted(g_pid_sorted, junk, right=True).item()
        self.junk_cols = self.perm[js:je]
        self._junk_np = self.junk_cols.cpu().numpy()

        # Running sums (float64 so chunking never changes a result beyond rounding).
        c, r = self.num_cameras, max(self.max_rank, _MIN_REPORTED_RANK)
        self._first_rank_hist = torch.zeros(r + 1, dtype=torch.int64, device=dev)
        self._sum_ap = torch.zeros((), dtype=torch.float64, device=dev)
        self._sum_inp = torch.zeros((), dtype=torch.float64, device=dev)
        self._num_valid = torch.zeros((), dtype=torch.int64, device=dev)
        self._q_count = torch.zeros(c, dtype=torch.int64, device=dev)
        self._q_sum_ap = torch.zeros(c, dtype=torch.float64, device=dev)
        self._q_rank1 = torch.zeros(c, dtype=torch.int64, device=dev)
        self._g_count = torch.zeros(c, dtype=torch.int64, device=dev)
        self._g_sum_ap = torch.zeros(c, dtype=torch.float64, device=dev)
        self._seen = np.zeros(self.num_query, dtype=bool)
        self._buffer: np.ndarray | None = None
        self.density: float | None = None  # fraction of the last block's entries that were candidates

    def add(self, start: int, rows: np.ndarray | torch.Tensor) -> None:
        """Account for the distances ``rows`` of queries ``start .. start + len(rows) - 1``."""
        matrix = _as_matrix(rows)
        device = matrix.device if isinstance(matrix, torch.Tensor) else torch.device("cpu")
        if device != self.device:
            raise ValueError(f"distances must be on the accumulator's device {self.device}, got {device}")
        n, g = matrix.shape
        if g != self.num_gallery:
            raise ValueError(f"each row must hold {self.num_gallery} gallery distances, got {g}")
        if not 0 <= start <= self.num_query - n:
            raise ValueError(f"rows {start}..{start + n - 1} must lie within the {self.num_query} queries")
        if self._seen[start : start + n].any():
            raise ValueError(f"rows {start}..{start + n - 1} overlap rows already added")
        self._seen[start : start + n] = True
        a = 0
        while a < n:
            step = self.chunk_rows or self._rows_per_block(matrix)
            self._add_block(start + a, _block(matrix[a : a + step], self))
            a += step

    def result(self) -> dict[str, Any]:
        """The metrics of all queries added so far (all of them must have been added)."""
        if not self._seen.all():
            raise ValueError(f"all {self.num_query} query rows must be added before result(), {int((~self._seen).sum())} are missing")
        num_valid = int(self._num_valid)
        if num_valid == 0:
            raise ValueError(
                f"no query has a valid positive (a gallery image of its pid from another camera): 0 of {self.num_query}; "
                "check that query and gallery share identities across cameras"
            )
        cmc_all = (self._first_rank_hist[:-1].cumsum(0).double() / num_valid).cpu().numpy()
        cams = self.cameras.cpu().tolist()
        q_count, g_count = self._q_count.cpu().numpy(), self._g_count.cpu().numpy()
        q_ap, g_ap, q_r1 = self._q_sum_ap.cpu().numpy(), self._g_sum_ap.cpu().numpy(), self._q_rank1.cpu().numpy()
        per_camera = {
            Q_MAP: {cams[c]: float(q_ap[c] / q_count[c]) for c in range(self.num_cameras) if q_count[c]},
            G_MAP: {cams[c]: float(g_ap[c] / g_count[c]) for c in range(self.num_cameras) if g_count[c]},
            Q_RANK1: {cams[c]: float(q_r1[c] / q_count[c]) for c in range(self.num_cameras) if q_count[c]},
        }
        out: dict[str, Any] = {
            # rank-k for every reported k the curve reaches (1, 5, 10 always; 20, 50 up to max_rank)
            **{rank_key(k): float(cmc_all[k - 1]) for k in REPORTED_RANKS if k <= len(cmc_all)},
            MAP: float(self._sum_ap) / num_valid,
            MINP: float(self._sum_inp) / num_valid,
            "cmc": np.ascontiguousarray(cmc_all[: self.max_rank], dtype=np.float64),
            NUM_VALID_QUERIES: num_valid,
            NUM_QUERIES_WITHOUT_POSITIVE: self.num_query - num_valid,
            **per_camera,
        }
        for name, values in per_camera.items():
            out.update(camera_summary(name, values))
        return out

    # -- internals -------------------------------------------------------------------------

    def _rows_per_block(self, matrix: np.ndarray | torch.Tensor) -> int:
        g = self.num_gallery
        if self.density is None:
            return _FIRST_BLOCK_ROWS
        expected_candidates_per_row = max(self.density, 1e-4) * g
        if self.device.type == "cpu":
            itemsize = matrix.element_size() if isinstance(matrix, torch.Tensor) else matrix.itemsize
            rows = min(_CPU_BLOCK_BYTES // (g * max(itemsize, 4)), _CPU_BLOCK_CANDIDATES / expected_candidates_per_row)
        else:
            rows = min(_CUDA_BLOCK_ELEMENTS // g, _CUDA_BLOCK_CANDIDATES / expected_candidates_per_row)
        return max(1, int(rows))

    def bool_buffer(self, size: int) -> np.ndarray:
        """A reusable bool scratch array of ``size`` entries for the CPU comparison pass."""
        if self._buffer is None or self._buffer.size < size:
            self._buffer = np.empty(size, dtype=bool)
        return self._buffer[:size]

    def _add_block(self, start: int, block: _Block) -> None:
        dev, b = self.device, block.rows
        sl = slice(start, start + b)
        q_cam, length = self.q_cam[sl], self.length[sl]
        width = int(length.max())  # L: the largest same-pid slice among these queries
        if width == 0:
            return _check_no_nan(block.has_nan(), start, b)
        slot = torch.arange(width, device=dev)
        in_slice = slot < length[:, None]
        sorted_idx = (self.start[sl, None] + slot).clamp_(max=self.num_gallery - 1)
        cols = self.perm[sorted_idx]
        slot_cam = self.g_cam_sorted[sorted_idx]
        is_pos = in_slice & (slot_cam != q_cam[:, None])
        num_pos = is_pos.sum(1)
        valid = num_pos > 0
        if not bool(valid.any()):
            return _check_no_nan(block.has_nan(), start, b)

        slot_val = block.gather(cols)
        junk_val = block.take_cols(self.junk_cols, self._junk_np)
        hardest = torch.where(is_pos, slot_val, -torch.inf).amax(1)
        _check_no_nan(bool(torch.isnan(hardest).any()), start, b)  # a NaN positive; before the pass
        levels = int(num_pos.max())
        by_level = block.supports_levels and self.density is not None and self.density > levels * _LEVEL_COST
        if by_level:
            _check_no_nan(block.has_nan(), start, b)
            slot_key, junk_key = _order_keys(block.is_float32, slot_val, junk_val)
        else:
            cand_row, cand_val = block.candidates(hardest, dense=(self.density or 0.0) > _DENSE)
            self.density = len(cand_val) / (b * self.num_gallery)
            # Every NaN is a candidate (or the threshold is NaN and all are): one small check.
            _check_no_nan(bool(torch.isnan(cand_val).any()), start, b)
            slot_key, junk_key, cand_key = _order_keys(block.is_float32, slot_val, junk_val, cand_val)

        # Sorted positives per row (padding last), with their cameras.
        pos_key, order = torch.where(is_pos, slot_key, _PAD_KEY).sort(dim=1)
        pos_cam = slot_cam.gather(1, order)
        row = torch.arange(b, device=dev)
        nb = width + 1

        # Bucket of an image = number of the row's positives strictly closer; a negative with
        # bucket <= i precedes positive i (ties: negative first). at_or_below[r, i] = entries
        # with bucket <= i, i.e. distance <= that of positive i.
        if by_level:
            pos_val = torch.where(is_pos, slot_val, -torch.inf).gather(1, order)[:, :levels]
            at_or_below = torch.zeros(b, width, dtype=torch.int64, device=dev)
            at_or_below[:, :levels] = block.count_at_or_below(pos_val)
            self.density = float(at_or_below.gather(1, (num_pos - 1).clamp(min=0)[:, None])[valid].sum()) / (b * self.num_gallery)
        else:
            bounds = ((row[:, None] << 32) | pos_key).reshape(-1)
            # searchsorted also counts the bounds of earlier rows (width each): that plus the
            # row gives the flat histogram index row * (width + 1) + bucket directly.
            flat = torch.searchsorted(bounds, (cand_row << 32) | cand_key).add_(cand_row)
            at_or_below = torch.bincount(flat, minlength=b * nb).view(b, nb).cumsum(1)[:, :width]
        # Those counts include positives, same-pid-same-camera images and junk: subtract them.
        excluded = torch.bincount((torch.searchsorted(pos_key, slot_key) + row[:, None] * nb)[in_slice], minlength=b * nb)
        if junk_key is not None:
            excluded += torch.bincount((torch.searchsorted(pos_key, junk_key) + row[:, None] * nb).reshape(-1), minlength=b * nb)
        neg_le = at_or_below - excluded.view(b, nb).cumsum(1)[:, :width]

        rank = neg_le + slot + 1  # rank of sorted positive i
        pos_ok = slot < num_pos[:, None]
        precision = torch.where(pos_ok, (slot + 1).double() / rank.double(), 0.0)
        ap = precision.sum(1) / num_pos.clamp(min=1)
        first = rank[:, 0]
        hardest_rank = rank.gather(1, (num_pos - 1).clamp(min=0)[:, None]).squeeze(1)
        inp = num_pos.double() / hardest_rank.double()

        v_cam, v_first = q_cam[valid], first[valid]
        self._num_valid += valid.sum()
        self._sum_ap += ap[valid].sum()
        self._sum_inp += inp[valid].sum()
        r = len(self._first_rank_hist) - 1
        self._first_rank_hist += torch.bincount(v_first.clamp(max=r + 1) - 1, minlength=r + 1)
        self._q_count += torch.bincount(v_cam, minlength=self.num_cameras)
        self._q_sum_ap += torch.bincount(v_cam, weights=ap[valid], minlength=self.num_cameras)
        self._q_rank1 += torch.bincount(v_cam[v_first == 1], minlength=self.num_cameras)
        self._add_gallery_map(row, pos_ok, pos_cam, neg_le)

    def _add_gallery_map(self, row: torch.Tensor, pos_ok: torch.Tensor, pos_cam: torch.Tensor, neg_le: torch.Tensor) -> None:
        """APRA g-mAP: per (query, camera c) AP with only camera c's positives kept."""
        c = self.num_cameras
        group = (row[:, None] * c + pos_cam)[pos_ok]  # row-major: positives in sorted order
        before = neg_le[pos_ok]
        group, order = torch.sort(group, stable=True)  # (query, camera), sorted order kept
        before = before[order]
        uniq, inverse, counts = torch.unique_consecutive(group, return_inverse=True, return_counts=True)
        first_of_group = torch.cumsum(counts, 0) - counts
        j = torch.arange(len(group), device=group.device) - first_of_group[inverse]
        precision = (j + 1).double() / (before + j + 1).double()
        ap_sum = torch.zeros(len(uniq), dtype=torch.float64, device=group.device).index_add_(0, inverse, precision)
        cam = uniq % c
        self._g_count += torch.bincount(cam, minlength=c)
        self._g_sum_ap += torch.bincount(cam, weights=ap_sum / counts, minlength=c)


def _check_no_nan(found: bool, start: int, rows: int) -> None:
    if found:
        raise ValueError(f"distmat must not contain NaN; found one in query rows {start}..{start + rows - 1}")


def camera_summary(name: str, values: dict[int, float]) -> dict[str, Any]:
    """``lowest_<name>`` (+ ``_camera``; smallest id on ties), ``avg_``, ``std_`` (population)
    and ``spread_`` (max - min) of a per-camera metric; NaN / None when ``values`` is empty."""
    lowest, avg, std, spread = (camera_summary_key(summary, name) for summary in (LOWEST, AVG, STD, SPREAD))
    if not values:
        nan = float("nan")
        return {lowest: nan, lowest_camera_key(name): None, avg: nan, std: nan, spread: nan}
    camera = min(values, key=lambda cam: (values[cam], cam))
    arr = np.array(list(values.values()), dtype=np.float64)
    return {
        lowest: float(values[camera]),
        lowest_camera_key(name): int(camera),
        avg: float(arr.mean()),
        std: float(arr.std()),
        spread: float(arr.max() - arr.min()),
    }


# -- input handling --------------------------------------------------------------------------


def _ids(name: str, values: Any, device: torch.device) -> torch.Tensor:
    """Integer ids as a 1-D int64 tensor on ``device``."""
    if isinstance(values, torch.Tensor):
        if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
            raise ValueError(f"{name} must hold integers, got dtype {values.dtype}")
        tensor = values.detach()
    else:
        arr = np.asarray(values)
        if arr.dtype.kind not in "iu" and arr.size:
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.int64))
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    return tensor.to(device=device, dtype=torch.int64)


def _as_matrix(distmat: Any) -> np.ndarray | torch.Tensor:
    """A 2-D real matrix: torch tensors stay tensors (detached), anything else becomes numpy."""
    if isinstance(distmat, torch.Tensor):
        matrix = distmat.detach()
        bad = matrix.dtype.is_complex or matrix.dtype == torch.bool
        dtype = matrix.dtype
    else:
        matrix = np.asarray(distmat)
        bad = matrix.dtype.kind not in "fiu"
        dtype = matrix.dtype
    if bad:
        raise ValueError(f"distmat must hold real numbers, got dtype {dtype}")
    if matrix.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {tuple(matrix.shape)}")
    return matrix


def _order_keys(is_float32: bool, *values: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Integer keys in [0, 2**32 - 1) with the order and equalities of the values."""
    if is_float32:
        return [None if v is None else _float32_keys(v) for v in values]
    present = [v for v in values if v is not None]
    flat = torch.cat([v.reshape(-1) for v in present]) + 0.0
    _, inverse = torch.unique(flat, sorted=True, return_inverse=True)  # dense rank, exact
    parts = iter(inverse.split([v.numel() for v in present]))
    return [None if v is None else next(parts).view(v.shape) for v in values]


def _float32_keys(values: torch.Tensor) -> torch.Tensor:
    """Order-preserving int64 keys of float32 values: flip the magnitude bits of negatives and
    shift, so integer order = float order; ``+ 0.0`` turns -0.0 into 0.0 first."""
    bits = (values + 0.0).view(torch.int32).to(torch.int64)
    return torch.where(bits < 0, bits.bitwise_not(), bits + _SIGN_OFFSET)


class _Block(Protocol):
    """A block of rows of the distance matrix and the few operations the kernel needs on it."""

    rows: int
    is_float32: bool
    supports_levels: bool

    def has_nan(self) -> bool: ...
    def gather(self, cols: torch.Tensor) -> torch.Tensor: ...
    def take_cols(self, cols: torch.Tensor, cols_np: np.ndarray) -> torch.Tensor | None: ...
    def candidates(self, threshold: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor]: ...
    def count_at_or_below(self, thresholds: torch.Tensor) -> torch.Tensor: ...


def _block(matrix: np.ndarray | torch.Tensor, acc: RankingAccumulator) -> _Block:
    if isinstance(matrix, torch.Tensor):
        if matrix.dtype in (torch.float16, torch.bfloat16):
            matrix = matrix.float()  # exact widening
        elif not matrix.dtype.is_floating_point:
            matrix = matrix.double()
        if matrix.device.type == "cpu" and _NUMPY_ON_CPU:
            return _NumpyBlock(matrix.contiguous().numpy(), acc)
        return _TorchBlock(matrix.contiguous())
    if matrix.dtype == np.float16:
        matrix = matrix.astype(np.float32)
    elif matrix.dtype.kind in "iu":
        matrix = matrix.astype(np.float64)
    if not _NUMPY_ON_CPU:
        return _block(torch.from_numpy(np.array(matrix, order="C")), acc)
    return _NumpyBlock(np.ascontiguousarray(matrix), acc)


class _NumpyBlock:
    """CPU: numpy's comparison and nonzero are several times faster than torch's here."""

    supports_levels = True

    def __init__(self, arr: np.ndarray, acc: RankingAccumulator) -> None:
        self.arr, self.acc = arr, acc
        self.rows = arr.shape[0]
        self.is_float32 = arr.dtype == np.float32

    def has_nan(self) -> bool:
        return bool(np.isnan(self.arr.max()))  # max propagates NaN; faster than isnan().any()

    def gather(self, cols: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.take_along_axis(self.arr, cols.numpy(), axis=1))

    def take_cols(self, cols: torch.Tensor, cols_np: np.ndarray) -> torch.Tensor | None:
        return torch.from_numpy(np.take(self.arr, cols_np, axis=1)) if len(cols_np) else None

    def candidates(self, threshold: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # ``not (d > t)`` rather than ``d <= t``: NaN becomes a candidate, so the caller's NaN
        # check on the candidates replaces a separate pass over the block.
        arr = self.arr
        n = arr.size
        padded = (n + 7) // 8 * 8
        far = self.acc.bool_buffer(padded)
        np.greater(arr, threshold.numpy()[:, None], out=far[:n].reshape(arr.shape))
        if dense:
            idx = np.flatnonzero(np.logical_not(far[:n], out=far[:n]))
        else:
            # Scan 8 flags at a time: candidates are rare, so most words are all-True.
            far[n:] = True
            word_idx = np.flatnonzero(far.view(np.uint64) != _ALL_TRUE_WORD)
            k, byte = np.nonzero(~far.reshape(-1, 8)[word_idx])
            idx = word_idx[k] * 8 + byte
        return torch.from_numpy(idx // arr.shape[1]), torch.from_numpy(arr.reshape(-1)[idx])

    def count_at_or_below(self, thresholds: torch.Tensor) -> torch.Tensor:
        """(rows, K) counts of the entries <= thresholds[:, k]: one comparison pass per k over
        the cache-resident block, counted by popcount on 8 flags at a time."""
        arr = self.arr
        b, g = arr.shape
        padded = (g + 7) // 8 * 8
        flags = self.acc.bool_buffer(b * padded).reshape(b, padded)
        flags[:, g:] = False
        words = flags.view(np.uint64)
        t = thresholds.numpy()
        out = np.empty(t.shape, dtype=np.int64)
        for k in range(t.shape[1]):
            np.less_equal(arr, t[:, k : k + 1], out=flags[:, :g])
            out[:, k] = _popcount(words).sum(axis=1) if _popcount else np.count_nonzero(flags, axis=1)
        return torch.from_numpy(out)


_popcount = getattr(np, "bitwise_count", None)  # numpy >= 2.0
_ALL_TRUE_WORD = np.frombuffer(np.ones(8, dtype=bool).tobytes(), dtype=np.uint64)[0]


class _TorchBlock:
    """Any torch device (CUDA in practice): everything stays on the device."""

    supports_levels = False

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor
        self.rows = tensor.shape[0]
        self.is_float32 = tensor.dtype == torch.float32

    def has_nan(self) -> bool:
        return bool(torch.isnan(self.tensor).any())

    def gather(self, cols: torch.Tensor) -> torch.Tensor:
        return self.tensor.gather(1, cols)

    def take_cols(self, cols: torch.Tensor, cols_np: np.ndarray) -> torch.Tensor | None:
        return self.tensor.index_select(1, cols) if len(cols) else None

    def candidates(self, threshold: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tensor
        idx = (~(t > threshold[:, None])).view(-1).nonzero().squeeze(1)  # NaN becomes a candidate
        return torch.div(idx, t.shape[1], rounding_mode="floor"), t.reshape(-1)[idx]
