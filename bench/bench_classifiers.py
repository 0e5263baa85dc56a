"""Time classifier epochs, reference-classifier training and sample_quality on BreastMNIST.

    python bench/bench_classifiers.py [--device cpu|cuda] [--threads 2] [--data ../shared/data/breastmnist.npz]
    python bench/bench_classifiers.py --sizes 28,128,224 --sizes-only   # every classifier at each size

--sizes: seconds per epoch of the train split and peak memory of every classifier at each classifier_size
(the 28 px images resized on the fly, as a recipe's classifier_size does), each in its own process so its
peak (max RSS on a CPU, max allocated on a GPU) is its own. An epoch is extrapolated from `--batches` timed
batches after a warm-up one (ImageNet backbones at 224 px take seconds per batch on a CPU). ImageNet weights
change no cost, so the backbones run with pretrained "none" (torchvision's architecture, ImageNet stem);
`resnet18/imagenet-arch` is that architecture for resnet18, whose "none" is the from-scratch 3x3-stem net.

Prints a small table. The "generated" set is the train split with Gaussian pixel noise, which costs the
same to score as real generator output. It also prints memorization ratios of a few reference sets, the
evidence behind the 0.1 near-copy threshold in ganmix.models.quality.memorization.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import DEFAULT_DATA, load_average, load_npz, noisy, print_rows, timed, write_json
from ganmix.datasets import ImageDataset
from ganmix.models.classifiers import create_classifier, list_classifiers
from ganmix.models.classify import TrainSettings, fit_classifier
from ganmix.models.quality import memorization, sample_quality
from ganmix.models.reference import reference_classifier


def epoch_seconds(ds: ImageDataset, name: str, device: torch.device, epochs: int) -> list[float]:
    torch.manual_seed(0)
    model = create_classifier(name, in_channels=ds.channels, num_classes=ds.num_classes, image_size=ds.image_size)
    settings = TrainSettings(epochs=1, lr=1e-3, batch_size=128)

    def run() -> None:
        # One epoch of the trainer trials use (AdamW, one-cycle, no validation); its returned floats
        # force a device sync, so the wall time covers the whole epoch.
        fit_classifier(model, ds.train.images, ds.train.labels, settings=settings, device=device,
                       num_classes=ds.num_classes)

    run()  # warm-up: allocator, cuDNN autotuning, lazy imports
    return [timed(run) for _ in range(epochs)]


def one_size(ds: ImageDataset, name: str, size: int, device: torch.device, *, batches: int, batch: int) -> dict:
    """Seconds per epoch of `ds.train` (extrapolated from `batches` timed batches) and peak memory in MiB."""
    from ganmix.models.pretrained import build_backbone

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)
    if name == "resnet18/imagenet-arch":
        model = build_backbone("resnet18", num_classes=ds.num_classes, size=size, pretrained="none")
    else:
        model = create_classifier(name, in_channels=ds.channels, num_classes=ds.num_classes,
                                  image_size=ds.image_size, classifier_size=size)
    count = batch * (batches + 1)
    images, labels = ds.train.images[:count], ds.train.labels[:count]
    settings = TrainSettings(epochs=1, lr=1e-3, batch_size=batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fit_classifier(model, images[:batch], labels[:batch], settings=settings, device=device,
                   num_classes=ds.num_classes)  # warm-up batch
    seconds = timed(lambda: fit_classifier(model, images[batch:], labels[batch:], settings=settings,
                                           device=device, num_classes=ds.num_classes))
    per_image = seconds / (count - batch)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is KiB on Linux; the growth over the process before the model was built
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"epoch_s": per_image * len(ds.train), "peak_mib": peak}


def size_table(args: argparse.Namespace, ds: ImageDataset) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    names = [*list_classifiers(), "resnet18/imagenet-arch"]
    for size in args.sizes:
        for name in names:
            if name == "convnext_tiny" and size < 32:
                rows.append((f"{name} @ {size} px", "needs >= 32 px"))
                continue
            cmd = [sys.executable, __file__, "--one", name, str(size), "--device", args.device, "--threads",
                   str(args.threads), "--data", str(args.data), "--batches", str(args.batches), "--batch",
                   str(args.batch)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                rows.append((f"{name} @ {size} px", f"failed: {done.stderr.strip().splitlines()[-1:]}"))
                continue
            out = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((f"{name} @ {size} px: s/epoch ({len(ds.train)} images), peak MiB",
                         f"{out['epoch_s']:.2f}  {out['peak_mib']:.0f}"))
            print(f"  {rows[-1][0]}: {rows[-1][1]}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per classifier (after one warm-up)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    parser.add_argument("--sizes", type=lambda t: [int(v) for v in t.split(",")], default=[28, 128, 224],
                        help="classifier_size values of the per-size table (comma-separated)")
    parser.add_argument("--sizes-only", action="store_true", help="print only the per-size table")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per classifier and size")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the per-size table")
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ds = load_npz(args.data)
    if args.one:
        print(json.dumps(one_size(ds, args.one[0], int(args.one[1]), device, batches=args.batches,
                                  batch=args.batch)))
        return
    load_before = load_average()
    if args.sizes_only:
        print(f"{ds.summary()}; device {device}, {torch.get_num_threads()} threads, batch {args.batch}, "
              f"load average {load_before:.2f}", flush=True)
        rows = size_table(args, ds)
        rows.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_average():.2f}"))
        print_rows(rows)
        write_json(args.json, "classifier_sizes", rows, (load_before, load_average()))
        return
    print(f"{ds.summary()}; device {device}, {torch.get_num_threads()} threads, batch 128, "
          f"load average {load_before:.2f}", flush=True)

    rows: list[tuple[str, str]] = []
    for name in list_classifiers():
        times = epoch_seconds(ds, name, device, args.epochs)
        rows.append((f"{name} epoch, batch 128 (s)", f"median {statistics.median(times):.3f}  min {min(times):.3f}"))

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        ref = reference_classifier(ds, cache_dir=cache, device=device, epochs=15)
        seconds = time.perf_counter() - start
        rows.append(("reference training, 15 epochs (s)", f"{seconds:.2f}  (val_acc {ref.val_acc:.3f})"))
        start = time.perf_counter()
        reference_classifier(ds, cache_dir=cache, device=device, epochs=15)
        rows.append(("reference load from cache (s)", f"{time.perf_counter() - start:.3f}"))

    train = ds.train
    fake = noisy(train.images, sigma=20.0, seed=1)
    sample_quality(ref, train.images, train.labels, fake_images_u8=fake[:32], fake_labels=train.labels[:32])  # warm-up
    start = time.perf_counter()
    metrics, _ = sample_quality(ref, train.images, train.labels, fake_images_u8=fake, fake_labels=train.labels)
    rows.append((f"sample_quality {len(train)} vs {len(fake)} (s)", f"{time.perf_counter() - start:.3f}"))
    rows.append(("  metrics (train + noise sigma 20)", ", ".join(f"{k} {v:.3g}" for k, v in metrics.items())))

    # Memorization ratios of known sets, to judge the 0.1 threshold.
    for label, images in [
        ("val (unseen real) ratio", ds.val.images),
        ("train + noise sigma 2 ratio", noisy(train.images, 2.0, 2)),
        ("train + noise sigma 8 ratio", noisy(train.images, 8.0, 3)),
        ("train + noise sigma 20 ratio", fake),
    ]:
        ratios = memorization(train.images, images).ratios
        rows.append((f"  {label}", f"min {ratios.min():.3f}  median {ratios.median():.3f}  max {ratios.max():.3f}"))

    rows.extend(size_table(args, ds))
    load_after = load_average()
    rows.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_after:.2f}"))
    print_rows(rows)
    write_json(args.json, "classifiers", rows, (load_before, load_after))


if __name__ == "__main__":
    main()
