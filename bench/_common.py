"""Bits shared by the bench/ scripts: data loading, timing, machine facts and the JSON rows run_all.py collects.

Every benchmark prints its own table and, with `--json PATH`, also writes its rows there as
{"bench": NAME, "rows": [[key, value], ...], "load": [1-min load average before, after]} so that
bench/run_all.py can print one combined table.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganmix.datasets import ImageDataset, Split

DEFAULT_DATA = Path(os.environ.get("GANMIX_BREASTMNIST",
                                   Path(__file__).resolve().parents[2] / "shared" / "data" / "breastmnist.npz"))

Rows = list[tuple[str, str]]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_npz(path: Path) -> ImageDataset:
    """A MedMNIST .npz (uint8 (N, H, W) images, (N, 1) labels) as an ImageDataset, without ganmix.datasets loaders."""
    with np.load(path) as data:
        splits = {
            name: Split(
                torch.from_numpy(data[f"{name}_images"]).unsqueeze(1).contiguous(),
                torch.from_numpy(data[f"{name}_labels"].reshape(-1).astype(np.int64)),
            )
            for name in ("train", "val", "test")
        }
    num_classes = int(splits["train"].labels.max()) + 1
    return ImageDataset(name=path.stem, class_names=tuple(str(k) for k in range(num_classes)), **splits)


def noisy(images_u8: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Images plus seeded Gaussian pixel noise: costs the same to score as real generator output."""
    noise = torch.randn(images_u8.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (images_u8.float() + noise).round().clamp(0, 255).to(torch.uint8)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load_average() -> float:
    return os.getloadavg()[0]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def machine_rows(device: str) -> Rows:
    """What the numbers were measured on, for pasting next to them."""
    return [
        ("machine", f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_name()})"),
        ("python / torch", f"{platform.python_version()} / torch {torch.__version__}"),
        ("device", f"{device} ({device_name(device)})"),
    ]


def print_rows(rows: Rows) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def write_json(path: Path | None, bench: str, rows: Rows, load: tuple[float, float]) -> None:
    if path is None:
        return
    path.write_text(json.dumps({"bench": bench, "rows": [list(r) for r in rows], "load": list(load)}, indent=1))
