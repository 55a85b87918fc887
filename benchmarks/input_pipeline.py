"""Input-pipeline benchmark at 256x128: images/s of each pipeline as a ratio to decoding JPEGs
from disk every epoch, all measured in the same run.

Pipelines (each produces normalised float ``(B, 3, 256, 128)`` batches on ``--device``):

(a) baseline: every epoch, read + ``cv2.imdecode`` + RGB + ``cv2.resize`` + random flip each
    JPEG (a thread pool of ``--threads`` workers, like DataLoader workers), then normalise;
(b) decoded once: gather the batch from the uint8 training array (on the device), flip and
    10-px pad-crop batch-wise in torch (``trainables.data.augment.BatchAugmenter``);
(c) (b) + random erasing p = 0.5;
(d) (c) + the implicit-attention composite p = 0.5 (full body), applied first, from the
    precomputed ROI masks, inpainted backgrounds and partner lists on the device;
(e) CPU only: the same as (d) per sample with albumentations (``ImplicitAttention``,
    ``HorizontalFlip``, ``PadIfNeeded`` + ``RandomCrop``, ``Erasing``) from the decoded array.

The data set is the synthetic one generated at 256x128 (``SyntheticSpec(height=256,
width=128)``), kept in the user cache between runs; decoding it once and precomputing the
composite bank (cached beside it) are timed and printed but are not part of the rates.

Usage: ``python benchmarks/input_pipeline.py [--device cpu|cuda] [--epochs 3] [--batch 64]``
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cv2
import numpy as np
import torch

from trainables.data.adapters import read_dataset
from trainables.data.arrays import load_split
from trainables.data.augment import BatchAugmenter, CompositeTensors, to_normalized_float
from trainables.data.implicit_attention import CompositeParams, dataset_fingerprint, load_or_build_bank
from trainables.data.synthetic import SyntheticSpec, default_cache_dir, ensure_synthetic_dataset

HEIGHT, WIDTH = 256, 128


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    pipelines: list[tuple[str, Callable[[np.ndarray], torch.Tensor]]], epoch_batches: list[list[np.ndarray]], device: torch.device
) -> list[float]:
    """images/s of each pipeline over every batch of every epoch, after one warm-up batch each.

    Epochs are interleaved (epoch 1 of every pipeline, then epoch 2, ...) so that a change in
    the machine's load during the run affects every pipeline alike.
    """
    for _, step in pipelines:
        step(epoch_batches[0][0])
    _sync(device)
    seconds = [0.0] * len(pipelines)
    images = sum(len(batch) for batches in epoch_batches for batch in batches)
    for batches in epoch_batches:
        for k, (name, step) in enumerate(pipelines):
            started = time.perf_counter()
            for batch in batches:
                out = step(batch)
            _sync(device)
            seconds[k] += time.perf_counter() - started
            assert out.shape[1:] == (3, HEIGHT, WIDTH), (name, out.shape)
    return [images / s for s in seconds]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--train-ids", type=int, default=100, help="synthetic training identities (8 images each)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads and JPEG decoding workers")
    parser.add_argument("--cache", default=None, help="folder for the generated dataset (default: the user cache)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = SyntheticSpec(num_train_ids=args.train_ids, num_test_ids=2, num_distractors=0, num_junk=0, height=HEIGHT, width=WIDTH)
    root = ensure_synthetic_dataset(args.cache or default_cache_dir(), spec, progress=lambda m: print(m, flush=True))
    records = read_dataset("synthetic", root).train
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, opencv {cv2.__version__}, device {device}{gpu}, {args.threads} threads")
    print(f"dataset {root}: {len(records)} train images at {HEIGHT}x{WIDTH}, batch {args.batch}, {args.epochs} epochs")

    t0 = time.perf_counter()
    split = load_split(records, HEIGHT, WIDTH, with_masks=True)
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    params = CompositeParams()
    bank = load_or_build_bank(split.images, split.masks, params, root=root, fingerprint=dataset_fingerprint(records, root, (HEIGHT, WIDTH)))
    t_bank = time.perf_counter() - t0
    counts = bank.partner_counts
    print(
        f"decode once: {t_decode:.1f}s; composite bank (cached after the first run): {t_bank:.1f}s, "
        f"partners per image median {int(np.median(counts))}, none for {int((counts == 0).sum())}"
    )

    t0 = time.perf_counter()
    train_images = torch.from_numpy(split.images).to(device)
    tensors = CompositeTensors.from_bank(bank, device)
    _sync(device)
    print(
        f"training set + bank to {device}: {time.perf_counter() - t0:.2f}s "
        f"({(split.images.nbytes + bank.backgrounds.nbytes + bank.roi_masks.nbytes) / 2**20:.0f} MiB)"
    )

    rng = np.random.default_rng(0)
    n = len(records)
    epoch_batches = [
        [perm[s : s + args.batch] for s in range(0, n - args.batch + 1, args.batch)]
        for perm in (rng.permutation(n) for _ in range(args.epochs))
    ]
    paths = [str(r.path) for r in records]
    pool = ThreadPoolExecutor(max_workers=args.threads)
    flip_rng = np.random.default_rng(1)

    def decode_one(i: int) -> np.ndarray:
        bgr = cv2.imdecode(np.fromfile(paths[i], dtype=np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        return rgb[:, ::-1] if flip_rng.random() < 0.5 else rgb

    def from_disk(batch: np.ndarray) -> torch.Tensor:
        stacked = np.stack(list(pool.map(decode_one, batch.tolist())))
        return to_normalized_float(torch.from_numpy(stacked).to(device, non_blocking=True))

    def batched(augmenter: BatchAugmenter) -> Callable[[np.ndarray], torch.Tensor]:
        def step(batch: np.ndarray) -> torch.Tensor:
            index = torch.from_numpy(batch).to(device)
            return augmenter(train_images[index], index)

        return step

    plain = BatchAugmenter(flip=True, pad=10, seed=0, device=device)
    erasing = BatchAugmenter(flip=True, pad=10, erasing_p=0.5, seed=0, device=device)
    composite = BatchAugmenter(flip=True, pad=10, erasing_p=0.5, composite=tensors, composite_p=0.5, seed=0, device=device)
    pipelines: list[tuple[str, Callable[[np.ndarray], torch.Tensor]]] = [
        ("(a) decode JPEGs every epoch (cv2 decode+resize+flip)", from_disk),
        ("(b) decoded uint8 array: flip + pad-crop (batch torch)", batched(plain)),
        ("(c) (b) + random erasing p=0.5", batched(erasing)),
        ("(d) (c) + implicit-attention composite p=0.5", batched(composite)),
    ]
    if device.type == "cpu":
        import albumentations as A

        from trainables.data.implicit_attention_transform import ImplicitAttention

        albu = A.Compose(
            [
                ImplicitAttention(bank, p=0.5),
                A.HorizontalFlip(p=0.5),
                A.PadIfNeeded(HEIGHT + 20, WIDTH + 20, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(HEIGHT, WIDTH),
                A.Erasing(scale=(0.02, 0.4), ratio=(0.3, 3.3), p=0.5),
            ],
            seed=0,
        )

        def per_sample(batch: np.ndarray) -> torch.Tensor:
            out = np.stack([albu(image=split.images[i], sample_index=int(i))["image"] for i in batch])
            return to_normalized_float(torch.from_numpy(out))

        pipelines.append(("(e) (d) per sample with albumentations (CPU)", per_sample))

    rates = list(zip((name for name, _ in pipelines), measure(pipelines, epoch_batches, device)))
    pool.shutdown()
    baseline = rates[0][1]
    width = max(len(name) for name, _ in rates)
    print()
    print(f"{'pipeline':<{width}}  {'images/s':>9}  {'x (a)':>6}")
    for name, rate in rates:
        print(f"{name:<{width}}  {rate:>9.0f}  {rate / baseline:>6.2f}")


if __name__ == "__main__":
    main()
