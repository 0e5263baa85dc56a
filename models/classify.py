"""The one classifier trainer: trials, the reference classifier and confirmation all train through it.

Protocol (MedMNIST v2 style): AdamW with weight decay, a per-step learning-rate schedule, optional
classical augmentation and class weighting, and the final model is the epoch with the best validation
metric, restored at the end. The budget is counted in epochs of the *real* train split: each epoch draws
`real_count` images from the (real + synthetic) pool, so synthetic images replace real ones in the batches
instead of adding optimizer steps — a ratio of 3 does not buy four times the training. A floor of
`min_steps` optimizer steps keeps small sets from starving (100 images at batch 128 are one step per
epoch): when `epochs` passes fall short of it, every epoch makes the same number of extra passes, so the
epoch stays the unit of reports, of the schedule and of a scheduler's grace period.

Data sets are a few thousand small images, so everything lives as whole tensors on the device and is
sliced into batches directly: no DataLoader, no worker processes, no per-batch host round trips.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from ganmix.models._images import to_unit
from ganmix.models.augment import make_augmenter
from ganmix.models.choices import AUGMENTATIONS, CLASS_WEIGHTS, LR_SCHEDULES, TRAINER_DEFAULTS
from ganmix.models.evaluation import DECISION_THRESHOLD, choose_threshold, classification_metrics, threshold_goal
from ganmix.models.metrics import metric_info
__all__ = ["AUGMENTATIONS", "CLASS_WEIGHTS", "LR_SCHEDULES", "FitResult", "TrainSettings", "EvalSet",
           "evaluate", "fit_classifier", "map_batches", "predict_proba", "seeded_classifier"]


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    epochs: int
    lr: float
    min_steps: int = 0  # the floor in optimizer steps (whole passes of the real split are added per epoch)
    batch_size: int = TRAINER_DEFAULTS["batch_size"]
    weight_decay: float = TRAINER_DEFAULTS["weight_decay"]
    lr_schedule: str = TRAINER_DEFAULTS["lr_schedule"]
    augment: str = TRAINER_DEFAULTS["augment"]
    class_weight: str = TRAINER_DEFAULTS["class_weight"]
    seed: int = 0  # shuffling and augmentation
    select_metric: str = TRAINER_DEFAULTS["select_metric"]  # a key of evaluate()'s output; its direction comes from the metric registry

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not isinstance(self.min_steps, int) or self.min_steps < 0:
            raise ValueError(f"min_steps must be an integer >= 0, got {self.min_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (BatchNorm), got {self.batch_size!r}")
        for name, value, allowed in (("lr_schedule", self.lr_schedule, LR_SCHEDULES),
                                     ("augment", self.augment, AUGMENTATIONS),
                                     ("class_weight", self.class_weight, CLASS_WEIGHTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        metric_info(self.select_metric)  # an unknown metric fails here (MetricError names the valid ones)


@dataclass(frozen=True)
class EvalSet:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: tuple[str, ...]


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: train_*, lr, val_*
    best_epoch: int = 0
    best_val: dict[str, float] = field(default_factory=dict)  # val metrics of the restored model
    best_val_probs: torch.Tensor | None = None


def _check_pair(images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to train with BatchNorm, got {len(images)}")


def _batches_per_epoch(count: int, batch_size: int) -> list[int]:
    """Batch sizes of one epoch of `count` images; a last batch of one is dropped (it breaks BatchNorm)."""
    sizes = [batch_size] * (count // batch_size) + ([count % batch_size] if count % batch_size else [])
    return [s for s in sizes if s >= 2]


def passes_per_epoch(real_count: int, *, epochs: int, batch_size: int, min_steps: int) -> int:
    """Passes over `real_count` images that each epoch makes so that `epochs` epochs reach `min_steps`
    optimizer steps (1 when they already do). The pool's size plays no part: the ratio never buys steps."""
    batches = len(_batches_per_epoch(real_count, batch_size))
    return max(1, math.ceil(min_steps / (epochs * batches))) if batches else 1


def total_steps(real_count: int, settings: TrainSettings) -> int:
    """Optimizer steps of a whole fit of `real_count` real images under `settings`."""
    passes = passes_per_epoch(real_count, epochs=settings.epochs, batch_size=settings.batch_size,
                              min_steps=settings.min_steps)
    return settings.epochs * passes * len(_batches_per_epoch(real_count, settings.batch_size))


def _scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, total_steps: int) -> Callable[[], None]:
    if settings.lr_schedule == "onecycle":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, total_steps=total_steps)
    elif settings.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    else:
        return lambda: None
    return sched.step


def _loss_weights(labels: torch.Tensor, num_classes: int, mode: str, device: torch.device) -> torch.Tensor | None:
    if mode == "none":
        return None
    y = labels.cpu().numpy()
    present = np.unique(y)
    weights = np.ones(num_classes)
    # sklearn's "balanced": n / (k * count); a class absent from the pool keeps weight 1.
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.as_tensor(weights, dtype=torch.float32, device=device)


def evaluate(model: nn.Module, val: EvalSet, device: torch.device, prefix: str = "val", *,
             goal: str | None = None, threshold: float | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """`<prefix>_*` classification metrics and the mean cross-entropy (`<prefix>_loss`), with the probabilities.

    Two classes: with `goal` (on validation) the decision threshold is chosen on these labels for that goal;
    with `threshold` (on test) the one chosen on validation is applied; either way it is `decision_threshold`
    (models/evaluation.py). Without either, or with more classes, predictions are the arg-max."""
    probs = predict_proba(model, to_unit(val.images, device))
    if goal is not None:
        threshold = choose_threshold(val.labels, probs, goal=goal)
    scores = classification_metrics(val.labels, probs, val.class_names, threshold=threshold)
    metrics = {f"{prefix}_{k}": float(v) for k, v in scores.items()}
    if threshold is not None and len(val.class_names) == 2:
        metrics[DECISION_THRESHOLD] = float(threshold)
    metrics[f"{prefix}_loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), val.labels))
    return metrics, probs


def fit_classifier(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    settings: TrainSettings,
    device: torch.device | str,
    num_classes: int,
    real_count: int | None = None,
    val: EvalSet | None = None,
    on_epoch: Callable[[int, dict[str, float], dict[str, float]], None] | None = None,
) -> FitResult:
    """Train `model` in place on uint8 `images_u8` (real images first, then synthetic ones).

    Each pass takes `real_count` (default: all) images drawn without replacement from the whole pool; an
    epoch is one pass, or more when `settings.min_steps` asks for more steps than `epochs` passes make.
    With `val`, every epoch is evaluated and the best epoch by `settings.select_metric` is restored at
    end, before the last `on_epoch(epoch, this_epoch, best_so_far)` call (which sees both, e.g. to report
    to a scheduler, and may already evaluate the final model).
    Shuffling and augmentation are seeded by `settings.seed` (the caller's global RNG is not touched).
    """
    _check_pair(images_u8, labels)
    device = torch.device(device)
    model.to(device)
    pool, targets = images_u8.to(device), labels.to(device)
    count = min(real_count or len(pool), len(pool))
    passes = passes_per_epoch(count, epochs=settings.epochs, batch_size=settings.batch_size,
                              min_steps=settings.min_steps)
    per_epoch = _batches_per_epoch(count, settings.batch_size) * passes  # batch sizes of one epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                  foreach=True)
    step_schedule = _scheduler(optimizer, settings, settings.epochs * len(per_epoch))
    weights = _loss_weights(labels, num_classes, settings.class_weight, device)
    augment = make_augmenter(settings.augment)
    order_rng = torch.Generator().manual_seed(settings.seed)
    # A private RNG stream for augmentation: the caller's global stream is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        return _fit(model, pool=pool, targets=targets, per_epoch=per_epoch, passes=passes, optimizer=optimizer,
                    step_schedule=step_schedule, weights=weights, augment=augment, order_rng=order_rng,
                    settings=settings, val=val, on_epoch=on_epoch, device=device)


def _fit(model: nn.Module, *, pool: torch.Tensor, targets: torch.Tensor, per_epoch: list[int], passes: int,
         optimizer: torch.optim.Optimizer, step_schedule: Callable[[], None], weights: torch.Tensor | None,
         augment: Callable[[torch.Tensor], torch.Tensor] | None, order_rng: torch.Generator,
         settings: TrainSettings, val: EvalSet | None,
         on_epoch: Callable[[int, dict[str, float], dict[str, float]], None] | None,
         device: torch.device) -> FitResult:
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, settings.epochs + 1):
        model.train()
        # One fresh permutation of the pool per pass: a pass sees each drawn image once.
        order = torch.cat([torch.randperm(len(pool), generator=order_rng)[:sum(per_epoch) // passes]
                           for _ in range(passes)]).to(device)
        total_loss = torch.zeros((), device=device)
        total_correct = torch.zeros((), device=device, dtype=torch.long)
        start = 0
        for size in per_epoch:
            batch = order[start:start + size]
            start += size
            x_u8, y = pool[batch], targets[batch]
            x = augment(x_u8) if augment is not None else to_unit(x_u8)  # both: float in [-1, 1]
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_schedule()
            # Accumulate on the device; read once per epoch, so a GPU never waits on the host per step.
            total_loss += loss.detach() * size
            total_correct += (logits.detach().argmax(1) == y).sum()
        seen = sum(per_epoch)
        metrics = {"train_loss": float(total_loss) / seen, "train_acc": float(total_correct) / seen,
                   "lr": optimizer.param_groups[0]["lr"], "train_steps": epoch * len(per_epoch)}
        if val is not None:
            val_metrics, probs = evaluate(model, val, device, goal=threshold_goal(settings.select_metric))
            metrics.update(val_metrics)
            value = val_metrics[settings.select_metric]
            best = result.best_val.get(settings.select_metric)
            improved = best is None or math.isnan(best) or (
                not math.isnan(value) and metric_info(settings.select_metric).better(value, best))
            if improved:
                result.best_epoch, result.best_val, result.best_val_probs = epoch, val_metrics, probs
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            result.best_epoch = epoch
        metrics["best_epoch"] = result.best_epoch
        result.history.append(metrics)
        if epoch == settings.epochs and best_state is not None:
            # Restored before the last callback, so it can evaluate the final model (a scheduler may stop
            # the trial inside that callback).
            model.load_state_dict(best_state)
        if on_epoch is not None:
            on_epoch(epoch, metrics, result.best_val)
    return result


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


def seeded_classifier(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Build a model from a private RNG seeded by `seed`: its initial weights do not depend on how much
    randomness anything before it (a GAN, a sampler) consumed, and the caller's RNG stream is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()
