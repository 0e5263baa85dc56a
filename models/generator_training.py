"""Training a generator: the epoch loop every family shares, resumable from a saved state.

Each family supplies `train_step` (one batch, returning named scalars); this loop owns shuffling, the
per-epoch averaging, the divergence check and the RNG state that makes a resumed run equal to an
uninterrupted one (bit for bit on the CPU). The generator cache (generator_cache.py) resumes through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ganmix.models._images import to_unit
from ganmix.models.errors import GeneratorError
from ganmix.models.generator import DivergenceError, GenerativeModel, check_int, check_labels


def _non_finite(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={value}" for key, value in metrics.items() if not math.isfinite(value))


@dataclass(frozen=True)
class TrainingState:
    """Where train_generator stands after `epoch` epochs: enough to carry on as if it had never stopped.

    The global torch RNG (noise, augmentation) and the shuffle generator's states are kept, so training
    resumed from a state gives the same weights as training from scratch (bit for bit on the CPU).
    """

    epoch: int
    torch_rng: Tensor
    order_rng: Tensor
    cuda_rng: Tensor | None = None


def _rng_state(epoch: int, order_rng: torch.Generator, device: torch.device) -> TrainingState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return TrainingState(epoch, torch.get_rng_state(), order_rng.get_state(), cuda)


def train_generator(
    model: GenerativeModel,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train on uint8 (N, C, H, W) images; returns one dict of batch-averaged metrics per epoch.

    Seeds torch's global RNG with `seed` (noise, augmentation) and shuffles with its own generator.
    """
    history, _ = resume_generator(model, images, labels, epochs=epochs, device=device, seed=seed, on_epoch=on_epoch)
    return history


def resume_generator(
    model: GenerativeModel,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    start: TrainingState | None = None,
) -> tuple[list[dict[str, float]], TrainingState]:
    """train_generator that can start from `start` (a state after `start.epoch` of the same run, the model
    holding that epoch's weights and trainer state) and also returns the state after `epochs`.

    Returns the metrics of the epochs it trained (start.epoch + 1 .. epochs) and the final state.
    """
    cfg = model.config
    expected = (cfg.channels, cfg.image_size, cfg.image_size)
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected or len(images) == 0:
        raise GeneratorError(f"images must be uint8 (N>0, {', '.join(map(str, expected))}), "
                             f"got {images.dtype} {tuple(images.shape)}")
    check_int("epochs", epochs, low=1)
    first = 1 if start is None else start.epoch + 1
    if first > epochs + 1:
        raise GeneratorError(f"cannot resume at epoch {first - 1} to train {epochs} epochs")
    device = torch.device(device)
    # The whole data set fits in memory: move it once instead of paying a DataLoader per batch.
    y = check_labels(labels, cfg.num_classes, count=len(images)).to(device)
    x = to_unit(images, device)
    model.to(device).train()
    order_rng = torch.Generator()
    if start is None:
        torch.manual_seed(seed)
        order_rng.manual_seed(seed)
    else:
        torch.set_rng_state(start.torch_rng)
        order_rng.set_state(start.order_rng)
        if start.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(start.cuda_rng, device)
    history: list[dict[str, float]] = []
    for epoch in range(first, epochs + 1):
        # Per-step metrics stay on the device; they are averaged and read back once per epoch, so a
        # step never waits for the GPU. Divergence is therefore noticed at the end of its epoch.
        steps: dict[str, list[Tensor]] = {}
        for batch in torch.randperm(len(x), generator=order_rng).to(device).split(cfg.batch_size):
            for key, value in model.train_step(x[batch], y[batch]).items():
                steps.setdefault(key, []).append(value)
        means = torch.stack([torch.stack(values).float().mean() for values in steps.values()]).tolist()
        epoch_metrics = dict(zip(steps, means))
        if bad := _non_finite(epoch_metrics):
            raise DivergenceError(f"generator diverged at epoch {epoch}: {bad}")
        history.append(epoch_metrics)
        if on_epoch is not None:
            on_epoch(epoch, epoch_metrics)
    return history, _rng_state(max(epochs, first - 1), order_rng, device)
