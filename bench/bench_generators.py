"""Seconds per training epoch of every generator family on breastmnist (546 images, 1x28x28).

    python bench/bench_generators.py [--device cpu] [--threads 2] [--epochs 4] [--data PATH]

The first epoch is a warm-up (allocator, kernel selection) and is not counted; the table gives the
median and the minimum of the remaining epochs, since other processes on the machine add noise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from _common import DEFAULT_DATA, load_average, write_json
from ganmix.models.generator import create_generator, list_generators, make_generator_config, train_generator


def load_train(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as data:
        images = torch.from_numpy(data["train_images"]).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
        labels = torch.from_numpy(data["train_labels"][:, 0].astype(np.int64))
    return images, labels


def epoch_seconds(name: str, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
                  device: str, options: dict[str, object]) -> tuple[list[float], int, dict[str, float]]:
    """Per-epoch wall times after the warm-up epoch, the parameter count and the last metrics."""
    torch.manual_seed(0)
    cfg = make_generator_config(name, image_size=int(images.shape[-1]), channels=int(images.shape[1]),
                                num_classes=int(labels.max()) + 1, batch_size=64, options=options)
    model = create_generator(name, cfg)
    stamps: list[float] = []

    def on_epoch(_epoch: int, _metrics: dict[str, float]) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()  # time finished work, not queued kernels
        stamps.append(time.perf_counter())

    history = train_generator(model, images, labels, epochs=epochs + 1, device=device, on_epoch=on_epoch)
    seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    return seconds, sum(p.numel() for p in model.parameters()), history[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on the CPU")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--width", type=int, default=None, help="override every family's width option")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="breastmnist.npz (or $GANMIX_BREASTMNIST)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    args = parser.parse_args()
    load_before = load_average()

    torch.set_num_threads(args.threads)
    images, labels = load_train(args.data)
    options: dict[str, object] = {} if args.width is None else {"width": args.width}
    print(f"breastmnist train {tuple(images.shape)}, device {args.device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, latent 64, batch 64, load average {load_before:.2f}", flush=True)
    print(f"{'family':<8} {'params':>8} {'median s/ep':>12} {'min s/ep':>9}  last-epoch metrics")
    rows: list[tuple[str, str]] = []
    for name in list_generators():
        seconds, params, metrics = epoch_seconds(name, images, labels, epochs=args.epochs,
                                                 device=args.device, options=options)
        shown = ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())
        print(f"{name:<8} {params:>8} {statistics.median(seconds):>12.3f} {min(seconds):>9.3f}  {shown}", flush=True)
        rows.append((f"{name} epoch, batch 64 (s)",
                     f"median {statistics.median(seconds):.3f}  min {min(seconds):.3f}  ({params} params)"))
    load_after = load_average()
    print(f"load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}")
    rows.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_after:.2f}"))
    write_json(args.json, "generators", rows, (load_before, load_after))


if __name__ == "__main__":
    main()
