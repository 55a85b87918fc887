"""Benchmark of ``trainables.evaluation`` at Market-1501 and MSMT17 scale, as ratios against
plain baselines measured in the same run.

* Market-1501 scale (3,368 queries x 15,913 gallery, 6 cameras, 751 test ids + 2,798
  distractors): ``evaluate`` (every metric, per-camera ones included) against a per-query
  ``np.argsort`` loop computing rank-1 and mAP only (torchreid style). Target: ratio <= 1/3.
* MSMT17 scale (11,659 x 82,161, 15 cameras, 3,060 ids): ``evaluate`` against ONE elementwise
  comparison pass over the matrix (numpy ``D < t[:, None]`` and ``torch.lt``, best of repeats;
  the ratio uses the faster). Target: ratio <= 5, extra memory beyond the matrix < 2 GiB.
* ``--from features``: ``evaluate_features`` from 2048-d features (distances computed and
  evaluated chunk by chunk), with the distance computation alone timed beside it.

The data are synthetic but shaped like the real sets: identities seen by several cameras,
several "views" per identity, groups of look-alike identities, camera biases and per-image
noise, tuned so that mAP is ~0.55-0.65, rank-1 ~0.9 and mINP ~0.2 (printed).

Extra memory: on CPU the peak resident set (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs``, after ``malloc_trim``) minus the resident set before the call; on CUDA
``torch.cuda.max_memory_allocated`` minus the memory allocated before the call.

Usage: ``python benchmarks/eval_bench.py --scale both --from both --device cpu --repeats 3``
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from trainables.evaluation import evaluate, evaluate_features, iter_distance_chunks, pairwise_distance


@dataclass(frozen=True)
class Scale:
    name: str
    num_ids: int
    num_cameras: int
    num_query: int
    num_gallery: int
    num_distractors: int
    cameras_per_id: float


SCALES = {
    "market": Scale("market", 751, 6, 3368, 15913, 2798, 4.5),
    "msmt": Scale("msmt", 3060, 15, 11659, 82161, 0, 4.0),
}


@dataclass
class Data:
    qf: torch.Tensor
    gf: torch.Tensor
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_cams: np.ndarray
    g_cams: np.ndarray


def make_data(scale: Scale, dim: int, seed: int, device: str) -> Data:
    """Synthetic ReID features: per-id view centres (look-alike groups of 6 ids share part of
    their centre), per-camera bias, per-image noise with lognormal scale (camera-dependent),
    L2-normalised. Distractors (pid 0) have centres of their own."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    n = scale.num_ids
    k = np.clip(rng.poisson(scale.cameras_per_id - 2, n) + 2, 2, scale.num_cameras)
    camsets = [rng.choice(scale.num_cameras, size=kk, replace=False) for kk in k]
    pairs = np.array([(i + 1, c) for i, cams in enumerate(camsets) for c in cams])
    if len(pairs) >= scale.num_query:
        pick = rng.choice(len(pairs), scale.num_query, replace=False)
    else:
        pick = np.concatenate([np.arange(len(pairs)), rng.choice(len(pairs), scale.num_query - len(pairs))])
    q_pids, q_cams = pairs[pick, 0], pairs[pick, 1]
    weights = rng.gamma(4.0, size=n)
    counts = rng.multinomial(scale.num_gallery - scale.num_distractors, weights / weights.sum())
    g_pids = np.repeat(np.arange(1, n + 1), counts)
    pick_cam = (rng.random(len(g_pids)) * k[g_pids - 1]).astype(np.int64)
    padded = np.full((n, scale.num_cameras), -1)
    for i, cams in enumerate(camsets):
        padded[i, : len(cams)] = cams
    g_cams = padded[g_pids - 1, pick_cam]
    g_pids = np.concatenate([g_pids, np.zeros(scale.num_distractors, np.int64)])
    g_cams = np.concatenate([g_cams, rng.integers(0, scale.num_cameras, scale.num_distractors)])

    noise, views, group, shared = 1.3, 3, 6, 0.75
    group_centre = torch.randn(n // group + 2, 1, dim, generator=gen)[torch.arange(n + 1) // group]
    centres = 0.6 * torch.randn(n + 1, views, dim, generator=gen) + shared**0.5 * group_centre
    centres += (1 - shared) ** 0.5 * torch.randn(n + 1, 1, dim, generator=gen)
    cam_bias = 0.5 * torch.randn(scale.num_cameras, dim, generator=gen)
    cam_noise = 1.0 + 0.4 * torch.linspace(0, 1, scale.num_cameras)

    def features(pids: np.ndarray, cams: np.ndarray) -> torch.Tensor:
        out = torch.empty(len(pids), dim)
        for s in range(0, len(pids), 8192):
            p, c = torch.from_numpy(pids[s : s + 8192]), torch.from_numpy(cams[s : s + 8192])
            base = centres[p, torch.randint(0, views, (len(p),), generator=gen)]
            distractor = p == 0
            base[distractor] = torch.randn(int(distractor.sum()), dim, generator=gen)
            scale_ = noise * torch.exp(0.35 * torch.randn(len(p), generator=gen)) * cam_noise[c]
            x = base + cam_bias[c] + scale_[:, None] * torch.randn(len(p), dim, generator=gen)
            out[s : s + 8192] = torch.nn.functional.normalize(x, dim=1)
        return out.to(device)

    return Data(features(q_pids, q_cams), features(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams)


# -- measurement -------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so memory that a call reuses from earlier
    work is faulted in again and shows in the peak RSS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, float, Any]:
    """Best wall time of ``repeats`` calls and the peak extra memory (MiB) of the first call,
    measured before any repeat could leave freed memory resident."""
    gc.collect()
    _sync(device)
    if device == "cuda":
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        _trim_heap()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    result = fn()
    _sync(device)
    best = time.perf_counter() - t0
    if device == "cuda":
        extra = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        extra = max(0, _rss_kib("VmHWM") - base) / 1024
    for _ in range(repeats - 1):
        result = None
        gc.collect()
        _sync(device)
        t0 = time.perf_counter()
        result = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, extra, result


def argsort_loop(distmat: np.ndarray, q_pids, g_pids, q_cams, g_cams) -> tuple[float, float]:
    """torchreid-style baseline: per query, argsort the row, drop same-pid-same-camera and junk,
    rank-1 and AP only."""
    r1, aps = [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q])
        pid, cam = g_pids[order], g_cams[order]
        keep = ~((pid == q_pids[q]) & (cam == q_cams[q])) & (pid != -1)
        match = pid[keep] == q_pids[q]
        if not match.any():
            continue
        hits = np.flatnonzero(match) + 1
        r1.append(hits[0] == 1)
        aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
    return float(np.mean(r1)), float(np.mean(aps))


def comparison_pass(distmat: np.ndarray | torch.Tensor, thresh: np.ndarray | torch.Tensor) -> Any:
    """One elementwise comparison of every entry with its row's threshold."""
    if isinstance(distmat, torch.Tensor):
        return torch.lt(distmat, thresh[:, None])
    return distmat < thresh[:, None]


# -- report ------------------------------------------------------------------------------------


@dataclass
class Row:
    scale: str
    source: str
    what: str
    seconds: float
    ratio: float | None = None  # time of the evaluate row / time of this baseline
    target: str = ""
    met: bool | None = None
    memory_mib: float | None = None


def _ratio_row(scale: str, source: str, what: str, seconds: float, ours: float, limit: float, mem: float | None = None) -> Row:
    ratio = ours / seconds
    target = f"ratio <= {limit:.3g}" if limit >= 1 else f"ratio <= 1/{1 / limit:.0f}"
    return Row(scale, source, what, seconds, ratio, target, ratio <= limit, mem)


def run_matrix(scale: Scale, data: Data, device: str, repeats: int) -> list[Row]:
    ids = (data.q_pids, data.g_pids, data.q_cams, data.g_cams)
    t_dist, _, distmat = measure(lambda: pairwise_distance(data.qf, data.gf), device, 1)
    print(f"[{scale.name}] float32 matrix {tuple(distmat.shape)} ({distmat.numel() * 4 / 2**30:.2f} GiB) in {t_dist:.1f}s", flush=True)
    matrix = distmat.numpy() if device == "cpu" else distmat
    t_ours, mem, res = measure(lambda: evaluate(matrix, *ids), device, repeats)
    print(
        f"[{scale.name}] mAP {res['mAP']:.3f} rank1 {res['rank1']:.3f} mINP {res['mINP']:.3f} "
        f"valid {res['num_valid_queries']}/{len(data.q_pids)} cameras {len(res['q_mAP'])} "
        f"q_mAP lowest {res['lowest_q_mAP']:.3f} (c{res['lowest_q_mAP_camera']}) avg {res['avg_q_mAP']:.3f} "
        f"g_mAP lowest {res['lowest_g_mAP']:.3f} avg {res['avg_g_mAP']:.3f}",
        flush=True,
    )
    if scale.name == "msmt":
        rows = [Row(scale.name, "matrix", "evaluate (all metrics)", t_ours, None, "mem < 2048 MiB", mem < 2048, mem)]
    else:
        rows = [Row(scale.name, "matrix", "evaluate (all metrics)", t_ours, memory_mib=mem)]
    if scale.name == "market":
        host = distmat.cpu().numpy()
        t_loop, _, (r1, m_ap) = measure(lambda: argsort_loop(host, *ids), "cpu", max(1, min(repeats, 2)))
        agree = abs(r1 - res["rank1"]) < 1e-3 and abs(m_ap - res["mAP"]) < 1e-3
        print(f"[{scale.name}] argsort loop: rank1 {r1:.4f} mAP {m_ap:.4f} ({'agrees' if agree else 'DIFFERS'})", flush=True)
        rows.append(_ratio_row(scale.name, "matrix", "baseline: argsort loop (r1+mAP)", t_loop, t_ours, 1 / 3))
    else:
        # A realistic per-row threshold (median of a few entries); its value does not matter.
        thresh = distmat[:, :64].median(1).values
        if device == "cpu":
            t_np, mem_np, _ = measure(lambda: comparison_pass(matrix, thresh.numpy()), device, repeats)
            rows.append(_ratio_row(scale.name, "matrix", "baseline: numpy D < t[:,None]", t_np, t_ours, 5, mem_np))
        t_lt, mem_lt, _ = measure(lambda: comparison_pass(distmat, thresh), device, repeats)
        rows.append(_ratio_row(scale.name, "matrix", "baseline: torch.lt(D, t[:,None])", t_lt, t_ours, 5, mem_lt))
    return rows


def run_features(scale: Scale, data: Data, device: str, repeats: int, dim: int) -> list[Row]:
    ids = (data.q_pids, data.g_pids, data.q_cams, data.g_cams)
    repeats = 1 if (scale.name == "msmt" and device == "cpu") else repeats  # ~30 s each on 2 cores
    t_feat, mem, _ = measure(lambda: evaluate_features(data.qf, data.gf, *ids), device, repeats)

    def distances_only() -> int:
        return sum(chunk.shape[0] for _, _, chunk in iter_distance_chunks(data.qf, data.gf))

    t_only, _, _ = measure(distances_only, device, repeats)
    source = f"features {dim}-d"
    return [
        Row(scale.name, source, "evaluate_features (dist+eval)", t_feat, memory_mib=mem),
        Row(scale.name, source, "distances alone (chunked)", t_only, t_feat / t_only, "(info: features/dist)"),
    ]


def print_table(rows: list[Row]) -> None:
    header = ("scale", "input", "what", "seconds", "ratio", "target", "met", "peak extra mem")
    cells = [
        (
            r.scale,
            r.source,
            r.what,
            f"{r.seconds:.3f}",
            "" if r.ratio is None else f"{r.ratio:.3f}",
            r.target,
            "" if r.met is None else ("yes" if r.met else "NO"),
            "" if r.memory_mib is None else f"{r.memory_mib:.0f} MiB",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    print()
    for c in [header, *cells]:
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    print(
        "\nratio = time of 'evaluate (all metrics)' / time of the baseline row, both measured in this run"
        " (best of --repeats).\npeak extra mem = peak RSS growth during the first call (CPU; VmHWM after"
        " malloc_trim) or peak CUDA allocation growth, beyond the inputs."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=["market", "msmt", "both"], default="both")
    parser.add_argument("--from", dest="source", choices=["matrix", "features", "both"], default="both")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    gpu = f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}, device {args.device}{gpu}")
    rows: list[Row] = []
    for name in ["market", "msmt"] if args.scale == "both" else [args.scale]:
        scale = SCALES[name]
        t0 = time.perf_counter()
        data = make_data(scale, args.dim, args.seed, args.device)
        print(f"[{name}] generated {scale.num_query} x {scale.num_gallery} ({args.dim}-d) in {time.perf_counter() - t0:.1f}s", flush=True)
        if args.source in ("matrix", "both"):
            rows += run_matrix(scale, data, args.device, args.repeats)
            gc.collect()
        if args.source in ("features", "both"):
            rows += run_features(scale, data, args.device, args.repeats, args.dim)
        del data
        gc.collect()
    print_table(rows)


if __name__ == "__main__":
    main()
