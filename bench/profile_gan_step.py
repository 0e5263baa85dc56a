"""torch.profiler over GAN training epochs on breastmnist: where a step's time goes, per family.

    python bench/profile_gan_step.py [--device cpu|cuda] [--threads 2] [--families dcgan ...] [--epochs 2]
                                     [--rows 12] [--trace DIR] [--data PATH]

One warm-up epoch, then `--epochs` profiled epochs. Prints, per family, the top operators by self time
(CPU, and CUDA on a GPU), and the count of host-device synchronisations (aten::item,
aten::_local_scalar_dense, cudaStreamSynchronize / cudaDeviceSynchronize): with train_step returning device
tensors it is one per epoch on a GPU. On the CPU an aten::item is no synchronisation: the fused Adam CPU
kernel reads each parameter's step counter that way (one per parameter tensor per step). `--trace DIR` also writes a Chrome trace per family (chrome://tracing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from _common import DEFAULT_DATA
from bench_generators import load_train
from ganmix.models.generator import create_generator, list_generators, make_generator_config
from ganmix.models.generator_training import train_generator

SYNC_OPS = ("aten::item", "aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--families", nargs="*", default=None, help="default: every family")
    parser.add_argument("--epochs", type=int, default=2, help="profiled epochs after one warm-up epoch")
    parser.add_argument("--rows", type=int, default=12, help="operators shown per family")
    parser.add_argument("--trace", type=Path, default=None, help="write a Chrome trace per family here")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = load_train(args.data)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
    for name in args.families or list_generators():
        torch.manual_seed(0)
        cfg = make_generator_config(name, image_size=int(images.shape[-1]), channels=1,
                                    num_classes=int(labels.max()) + 1, batch_size=64)
        model = create_generator(name, cfg)
        train_generator(model, images, labels, epochs=1, device=args.device)  # warm-up
        with profile(activities=activities) as prof:
            train_generator(model, images, labels, epochs=args.epochs, device=args.device)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        events = prof.key_averages()
        steps = args.epochs * -(-len(images) // cfg.batch_size)
        syncs = {e.key: e.count for e in events if e.key in SYNC_OPS}
        total_ms = sum(e.self_cpu_time_total for e in events) / 1000
        print(f"\n=== {name}: {args.epochs} epochs, {steps} steps, {total_ms / steps:.2f} ms CPU self time per step; "
              f"{'host syncs' if args.device.startswith('cuda') else 'scalar reads'}: {syncs or 'none'}")
        print(events.table(sort_by=sort, row_limit=args.rows, max_name_column_width=40))
        if args.trace is not None:
            args.trace.mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(args.trace / f"{name}.json"))


if __name__ == "__main__":
    main()
