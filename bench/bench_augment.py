"""Augmentation throughput per recipe: images/s of one 128-image batch, three ways.

    python bench/bench_augment.py [--sizes 28 128] [--batch 128] [--repeats 20] [--threads 1] [--device cpu]

- `per-image v2`: torchvision.transforms.v2 called once per image (what ganmix did before issue 23:
  every image its own parameters, one call each);
- `batch v2`: the same v2 transform called once on the whole batch: fast, but v2 draws ONE set of
  parameters per call, so every image of the batch gets the same flip, angle or op (not what a recipe
  means; shown for the cost of the arithmetic alone);
- `kornia`: ganmix's augmenter (models/augment.py), one call per batch with per-image parameters,
  uint8 in and the model's float [-1, 1] out.

The per-image and batch-v2 columns include the same uint8 -> float [-1, 1] conversion as the kornia column,
so all three end where the model starts. Timings on a loaded machine are inflated: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from ganmix.models._images import to_unit
from ganmix.models.augment import ROTATION_DEGREES, make_augmenter

RECIPES = ("flip", "flip_rotate", "trivial")


def _v2(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    from torchvision.transforms import v2

    if name == "flip":
        return v2.RandomHorizontalFlip()
    if name == "flip_rotate":
        return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(ROTATION_DEGREES)])
    return v2.TrivialAugmentWide()


def ways(name: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    transform = _v2(name)
    return {
        "per-image v2": lambda batch: to_unit(torch.stack([transform(image) for image in batch])),
        "batch v2": lambda batch: to_unit(transform(batch)),
        "kornia": make_augmenter(name),  # type: ignore[dict-item]
    }


def seconds_per_batch(fn: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, repeats: int) -> float:
    fn(batch)  # warm-up: first-call allocations, kornia's lazy set-up
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        if batch.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 128])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial's default: 1 per CPU)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    print(f"{'size':>4} {'recipe':<12} {'way':<13} {'ms/batch':>9} {'images/s':>10} {'vs per-image':>12}")
    for size in args.sizes:
        batch = torch.randint(0, 256, (args.batch, 1, size, size), dtype=torch.uint8, device=args.device)
        for name in RECIPES:
            base = None
            for way, fn in ways(name).items():
                seconds = seconds_per_batch(fn, batch, args.repeats)
                base = base or seconds
                print(f"{size:>4} {name:<12} {way:<13} {seconds * 1000:9.1f} {args.batch / seconds:10.0f} "
                      f"{base / seconds:11.1f}x", flush=True)
    load_after = os.getloadavg()
    print(f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, device {args.device}, "
          f"{args.threads} torch thread(s), median of {args.repeats} batches of {args.batch}; load average "
          f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in load_after)} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
