"""Time classifier epochs, reference-classifier training and sample_quality on BreastMNIST.

    python bench/bench_classifiers.py [--device cpu|cuda] [--threads 2] [--data ../shared/data/breastmnist.npz]

Prints a small table. The "generated" set is the train split with Gaussian pixel noise, which costs the
same to score as real generator output. It also prints memorization ratios of a few reference sets, the
evidence behind the 0.1 near-copy threshold in ganmix.models.quality.memorization.
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per classifier (after one warm-up)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    args = parser.parse_args()
    load_before = load_average()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ds = load_npz(args.data)
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

    load_after = load_average()
    rows.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_after:.2f}"))
    print_rows(rows)
    write_json(args.json, "classifiers", rows, (load_before, load_after))


if __name__ == "__main__":
    main()
