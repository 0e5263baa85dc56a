"""Tensor-in, metrics-out training and prediction for classifiers.

The data sets are a few thousand small images at most, so they live as whole tensors on the device and are
sliced into batches directly: no DataLoader, no worker processes, no host-device copies per batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganmix.models._images import to_unit


def _check_pair(images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError("cannot train on an empty set of images")


def train_classifier_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 128,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One shuffled pass of cross-entropy training over float [-1, 1] `images` already on the model's device.

    `generator` (a CPU torch.Generator) makes the shuffle reproducible. Returns the sample-weighted mean
    loss and accuracy over the epoch as {"train_loss", "train_acc"}.
    """
    _check_pair(images, labels)
    model.train()
    order = torch.randperm(len(images), generator=generator).to(images.device)
    labels = labels.to(images.device)
    total_loss = torch.zeros((), device=images.device)
    total_correct = torch.zeros((), device=images.device, dtype=torch.long)
    seen = 0
    for batch in order.split(batch_size):
        x, y = images[batch], labels[batch]
        # A batch of one breaks BatchNorm in train mode; dropping a single leftover sample is harmless.
        if len(batch) < 2:
            continue
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulate on the device; one .item() at the end avoids a sync per batch on a GPU.
        total_loss += loss.detach() * len(batch)
        total_correct += (logits.detach().argmax(1) == y).sum()
        seen += len(batch)
    if seen == 0:
        raise ValueError(f"need at least 2 images to train with BatchNorm, got {len(images)}")
    return {"train_loss": float(total_loss) / seen, "train_acc": float(total_correct) / seen}


def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Apply `fn` to consecutive batches without gradients and concatenate the results on the CPU."""
    with torch.no_grad():
        outputs = [fn(chunk).float().cpu() for chunk in images.split(batch_size)]
    if not outputs:
        raise ValueError("cannot evaluate an empty set of images")
    return torch.cat(outputs)


def predict_proba(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Softmax probabilities (N, K) on the CPU, in eval mode; the model's previous train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return map_batches(lambda x: model(x).softmax(dim=1), images, batch_size=batch_size)
    finally:
        model.train(was_training)


def fit_classifier(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    device: torch.device | str,
    seed: int = 0,
    batch_size: int = 128,
) -> list[dict[str, float]]:
    """Train `model` in place with Adam for `epochs` passes over uint8 images; returns one metric dict per epoch.

    The whole set is converted to [-1, 1] once on `device`; the shuffle is seeded by `seed`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    model.to(device)
    images = to_unit(images_u8, device)
    labels = labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        metrics = train_classifier_epoch(model, optimizer, images, labels, batch_size=batch_size, generator=generator)
        history.append({"epoch": float(epoch + 1), **metrics})
    return history
