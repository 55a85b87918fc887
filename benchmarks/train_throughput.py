"""Training throughput (images/s) of a ReID trial step, with and without APRA, as a ratio
against a plain baseline measured in the same run.

Each variant is a real trial config run through the trial's own adapters (``build_model``,
``build_objective``, ``build_optimizer``, ``build_augmenter``) and its training step
(``trainables.trial.train_step``): on-device augmentation of a uint8 P x K batch, forward,
loss, backward and optimiser step -- in bf16 autocast with channels_last on CUDA. Variants:

* ``baseline``: ResNet-50, BNNeck, batch-hard triplet (the Bag of Tricks recipe);
* ``apra``: the same with APRA after stage 1 (``layer1``; the paper's early placement);
* ``apra2``: APRA after stages 1 and 2;  ``dranet``: RCAM + RSAM after stage 3.

Variants are timed in interleaved rounds (``--repeats``) so that drift of the machine hits all of
them alike; the best round of each is reported, with its ratio to the baseline's.

Usage: ``python benchmarks/train_throughput.py --device cuda --steps 50``
(CPU smoke run: ``--device cpu --steps 2 --warmup 1 --ids-per-batch 4 --height 128 --width 64``)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from search_spaces import TrialConfig
from trainables.trial import build_augmenter, build_model, build_objective, build_optimizer, train_step

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "apra": {"apra": {"stages": [1], "lam": 0.01}},
    "apra2": {"apra": {"stages": [1, 2], "lam": 0.01}},
    "dranet": {"dranet": {"rcam": True, "rsam": True, "stage": 3}},
}


def make_config(variant: str, args: argparse.Namespace) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "dataset": {"height": args.height, "width": args.width},
            "model": {"backbone": args.backbone, **VARIANTS[variant]},
            "train": {"ids_per_batch": args.ids_per_batch, "images_per_id": args.images_per_id},
        }
    )


class Runner:
    """One variant's model, objective, optimiser and fixed random data on the device."""

    def __init__(self, variant: str, args: argparse.Namespace, device: torch.device):
        config = make_config(variant, args)
        self.batch = args.ids_per_batch * args.images_per_id
        torch.manual_seed(0)
        self.model = build_model(config, args.num_classes, num_cameras=args.num_cameras).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.objective = build_objective(config)
        self.optimizer = build_optimizer(config, self.model)
        self.augmenter = build_augmenter(config, device)
        g = torch.Generator().manual_seed(1)
        self.images = torch.randint(0, 256, (self.batch, args.height, args.width, 3), dtype=torch.uint8, generator=g).to(device)
        self.labels = torch.arange(args.ids_per_batch).repeat_interleave(args.images_per_id).to(device)
        self.cameras = torch.randint(0, args.num_cameras, (self.batch,), generator=g).to(device)
        self.device = device
        self.model.train()

    def steps(self, n: int) -> float:
        """Seconds for ``n`` training steps (device synchronised)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        for _ in range(n):
            train_step(self.model, self.objective, self.optimizer, self.augmenter(self.images), self.labels, self.cameras)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--variants", default="baseline,apra", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--ids-per-batch", type=int, default=16)
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--num-classes", type=int, default=751, help="identity classes (Market-1501: 751)")
    parser.add_argument("--num-cameras", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if "baseline" not in variants:
        variants.insert(0, "baseline")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {name}; {args.backbone} at {args.height}x{args.width}, batch {args.ids_per_batch}x{args.images_per_id}, "
        f"bf16 autocast + channels_last: {device.type == 'cuda'}; torch {torch.__version__}"
    )

    runners = {v: Runner(v, args, device) for v in variants}
    for runner in runners.values():
        runner.steps(args.warmup)
    best: dict[str, float] = {v: float("inf") for v in variants}
    for _ in range(args.repeats):
        for variant, runner in runners.items():
            best[variant] = min(best[variant], runner.steps(args.steps))
    batch = args.ids_per_batch * args.images_per_id
    base = batch * args.steps / best["baseline"]
    print(f"{'variant':<10} {'images/s':>10} {'ratio':>7}")
    for variant in variants:
        rate = batch * args.steps / best[variant]
        print(f"{variant:<10} {rate:>10.1f} {rate / base:>7.3f}")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
