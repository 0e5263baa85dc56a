"""One recipe end to end: generator on train only, mix, classifier, metrics. No Ray here.

`execute_recipe` is what a Tune trial, a confirmation task and `ganmix train` all run (through
search/recipe_run.py); where the numbers go is decided by the `report` callback and the logger passed in.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganmix.datasets import ImageDataset
from ganmix.models.classifiers import create_classifier
from ganmix.models.classify import EvalSet, TrainSettings, evaluate, fit_classifier, seeded_classifier
from ganmix.models.evaluation import DECISION_THRESHOLD, confusion_matrix, metric_name, recall_keys, threshold_goal
from ganmix.models.generator import generator_class, make_generator_config, sample_images, save_generator
from ganmix.models.generator_cache import GeneratorCache, train_with_cache
from ganmix.models.pictures import labelled_grid, labelled_pairs
from ganmix.search.allocation import allocate, synthetic_total
from ganmix.search.recipe import Recipe
from ganmix.search.sink import Sink, StepBuffer

Report = Callable[[dict[str, float]], None]

# A filtered set is topped up by sampling again, at most this many rounds.
FILTER_ROUNDS = 5
MIN_QUALITY_SET = 8
PER_CLASS_FILE = "per_class.json"
# On every run whose sample metrics (fid, kid, ...) or filter used the reference classifier: its version.
REFERENCE_VERSION_PARAM = "ganmix.reference_version"


@dataclass(frozen=True)
class SyntheticSet:
    images: torch.Tensor  # uint8 (n, C, H, W) on the CPU
    labels: torch.Tensor  # int64 (n,)
    asked_per_class: list[int]
    metrics: dict[str, float]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def execute_recipe(
    recipe: Recipe,
    dataset: ImageDataset,
    *,
    device: torch.device,
    logger: Sink,
    report: Report | None = None,
    cache_dir: str | Path | None = None,
    sample_metrics: bool = True,
) -> dict[str, float]:
    """Run `recipe` on `dataset`; returns the final val_* and test_* metrics (and sample metrics)."""
    seed_everything(recipe.generator_seed)
    started = time.perf_counter()
    synthetic = make_synthetic(recipe, dataset, device=device, logger=logger, cache_dir=cache_dir,
                               sample_metrics=sample_metrics)
    logger.log_metrics({"generator_seconds": time.perf_counter() - started})

    def timed_report(metrics: dict[str, float]) -> None:
        # Compute time so far, so even an early-stopped trial carries it; the driver logs wall time.
        logger.log_metrics({"compute_seconds": time.perf_counter() - started}, step=int(metrics["epoch"]))
        if report is not None:
            report(metrics)

    return train_and_evaluate(recipe, dataset, synthetic, device=device, logger=logger, report=timed_report)


def make_synthetic(
    recipe: Recipe,
    dataset: ImageDataset,
    *,
    device: torch.device,
    logger: Sink,
    cache_dir: str | Path | None,
    sample_metrics: bool,
) -> SyntheticSet:
    train = dataset.train  # the generator never sees val or test images
    per_class = allocate(synthetic_total(recipe.synthetic_ratio, len(train)),
                         train.class_counts(dataset.num_classes), recipe.allocation)
    empty = torch.empty((0, *train.images.shape[1:]), dtype=torch.uint8)
    if sum(per_class) == 0 or recipe.real_only:
        logger.log_params({f"synthetic_count.{metric_name(name)}": n for name, n in zip(dataset.class_names, per_class)})
        return SyntheticSet(empty, torch.empty(0, dtype=torch.int64), per_class, {})

    cfg = make_generator_config(
        recipe.generator, image_size=dataset.image_size, channels=dataset.channels,
        num_classes=dataset.num_classes, options=dict(recipe.generator_options),
    )
    if recipe.control:
        # A positive control (models/holdout.py): held-out real train images, nothing trained or cached. A
        # class none of whose train images was held out gets none (its quota is dropped, logged as 0).
        model = generator_class(recipe.generator).from_pool(  # type: ignore[attr-defined]
            cfg, dataset.heldout.images, dataset.heldout.labels)  # type: ignore[union-attr]
        per_class = [n if pool else 0 for n, pool in zip(per_class, model.pool_counts())]
        logger.log_metrics({"generator_epochs_trained": 0, "generator_epochs_reused": 0,
                            "heldout_pool": float(len(model.pool_labels))})
    else:
        # Generators are reused across trials: resume from the largest cached snapshot <= generator_epochs.
        gan_log = StepBuffer(logger, prefix="generator_")  # losses in one MLflow call per few seconds, not per epoch
        try:
            gan = train_with_cache(
                recipe.generator, cfg, train.images, train.labels, epochs=recipe.generator_epochs, device=device,
                seed=recipe.generator_seed, fingerprint=dataset.fingerprint, on_epoch=gan_log,
                cache=GeneratorCache(Path(cache_dir) / "generators") if cache_dir is not None else None,
            )
        finally:
            gan_log.flush()
        model = gan.model
        logger.log_metrics({"generator_epochs_trained": gan.trained, "generator_epochs_reused": gan.resumed_from})
    logger.log_params({f"synthetic_count.{metric_name(name)}": n for name, n in zip(dataset.class_names, per_class)})
    wanted = torch.repeat_interleave(torch.arange(dataset.num_classes), torch.tensor(per_class))
    reference = None
    if sample_metrics or recipe.filter_threshold > 0:
        from ganmix.models.reference import REFERENCE_VERSION, reference_classifier

        # The user-level cache, shared by every results folder; its version goes beside the metrics it defines.
        reference = reference_classifier(dataset, device=device)
        logger.log_params({REFERENCE_VERSION_PARAM: REFERENCE_VERSION})
    images, kept = _sample(model, wanted, recipe, reference)
    metrics: dict[str, float] = {"synthetic_count": float(len(images))}
    if recipe.filter_threshold > 0:
        metrics["filter_kept_fraction"] = kept
    # The k-NN metrics need a handful of images; a tiny set only gets counted.
    if sample_metrics and reference is not None and len(images) >= MIN_QUALITY_SET:
        from ganmix.models.quality import sample_quality

        quality, pairs = sample_quality(reference, train.images, train.labels, fake_images_u8=images, fake_labels=wanted)
        metrics.update(quality)
        logger.log_image(labelled_pairs(pairs.generated, pairs.real, pairs.ratios), "samples/closest_pairs.png",
                         key="closest_pairs")
    logger.log_metrics(metrics)
    logger.log_npz("samples/synthetic.npz", images=images.numpy(), labels=wanted.numpy())
    logger.log_datasets({"synthetic": (images.numpy(), wanted.numpy())}, name=dataset.name)
    logger.log_image(labelled_grid(images, wanted, dataset.class_names), "samples/grid.png", key="sample_grid")
    if not recipe.control:  # the control's "weights" would be the held-out images themselves
        _log_checkpoint(model, logger)
    return SyntheticSet(images, wanted, per_class, metrics)


def _sample(model: Any, wanted: torch.Tensor, recipe: Recipe, reference: Any) -> tuple[torch.Tensor, float]:
    """Sample one image per wanted label; with a filter, resample rejected slots a few rounds."""
    images = sample_images(model, wanted, seed=recipe.generator_seed)
    if recipe.filter_threshold <= 0:
        return images, 1.0
    from ganmix.models.quality import confidence_filter

    ok = confidence_filter(reference, images, wanted, threshold=recipe.filter_threshold)
    first_pass = float(ok.float().mean())
    for round_ in range(1, FILTER_ROUNDS):
        if bool(ok.all()):
            break
        redo = (~ok).nonzero().squeeze(1)
        fresh = sample_images(model, wanted[redo], seed=recipe.generator_seed + round_)
        fresh_ok = confidence_filter(reference, fresh, wanted[redo], threshold=recipe.filter_threshold)
        images[redo[fresh_ok]] = fresh[fresh_ok]
        ok[redo[fresh_ok]] = True
    # Slots never accepted keep their last sample rather than shrinking the class below its quota.
    return images, first_pass


def _log_checkpoint(model: Any, logger: Sink) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generator.pt"
        save_generator(model, path)
        logger.log_bytes(path.read_bytes(), "generator/generator.pt")


def classifier_settings(recipe: Recipe) -> TrainSettings:
    """The trainer's settings, read from the recipe (one place)."""
    return TrainSettings(
        epochs=recipe.classifier_epochs, min_steps=recipe.classifier_min_steps, lr=recipe.classifier_lr,
        batch_size=recipe.batch_size,
        weight_decay=recipe.weight_decay, lr_schedule=recipe.lr_schedule, augment=recipe.augment,
        class_weight=recipe.class_weight, seed=recipe.classifier_seed, select_metric=recipe.select_metric,
    )


def train_and_evaluate(
    recipe: Recipe,
    dataset: ImageDataset,
    synthetic: SyntheticSet,
    *,
    device: torch.device,
    logger: Sink,
    report: Report | None,
) -> dict[str, float]:
    """Train the classifier on real + synthetic train images; val picks the epoch, test is seen once."""
    model = seeded_classifier(lambda: create_classifier(
        recipe.classifier, in_channels=dataset.channels, num_classes=dataset.num_classes,
        image_size=dataset.image_size, pretrained=recipe.pretrained, classifier_size=recipe.classifier_size),
        recipe.classifier_seed)
    val = EvalSet(dataset.val.images, dataset.val.labels, dataset.class_names)
    epochs = recipe.classifier_epochs
    final: dict[str, float] = {}

    def on_epoch(epoch: int, metrics: dict[str, float], best: dict[str, float]) -> None:
        nonlocal final
        if epoch == epochs:
            # The trainer has restored the best epoch by now, so the curves end on the final model's val
            # metrics (what `ganmix best` ranks by). Test metrics are logged before the last report, because
            # a scheduler may stop the trial at that report.
            logger.log_metrics({**metrics, **best}, step=epoch)
            # Step 0: MLflow charts a metric whose latest step is 0 as a bar (its value), not as one dot on
            # an epoch axis (its run page's default chart type); the test split is evaluated once.
            final = {**best, **_evaluate_test(model, dataset, recipe, device=device, logger=logger, step=0)}
            logger.log_table(per_class_table(dataset, synthetic, final), PER_CLASS_FILE)
        else:
            logger.log_metrics(metrics, step=epoch)
        if report is not None:
            # The searcher sees the best checkpoint so far: the value the trial's final model will have.
            report({**best, **synthetic.metrics, "epoch": epoch})

    x = torch.cat([dataset.train.images, synthetic.images])
    y = torch.cat([dataset.train.labels, synthetic.labels])
    fit_classifier(model, x, y, settings=classifier_settings(recipe), device=device,
                   num_classes=dataset.num_classes, real_count=len(dataset.train), val=val, on_epoch=on_epoch)
    return {**final, **synthetic.metrics}


def per_class_table(dataset: ImageDataset, synthetic: SyntheticSet, final: dict[str, float]) -> dict[str, list[Any]]:
    """One row per class: its real and synthetic train images and the final model's val and test recall,
    where the per-class metrics (`val_recall/<class>`) are one chart each."""
    keys = recall_keys(dataset.class_names)
    return {
        "class": list(dataset.class_names),
        "train_images": dataset.train.class_counts(dataset.num_classes),
        "synthetic_images": list(synthetic.asked_per_class),
        "val_recall": [final.get(f"val_{key}") for key in keys],
        "test_recall": [final.get(f"test_{key}") for key in keys],
    }


def _evaluate_test(model: torch.nn.Module, dataset: ImageDataset, recipe: Recipe, *, device: torch.device,
                   logger: Sink, step: int) -> dict[str, float]:
    """The restored best-val model on the official test split, evaluated once; never reported to the searcher.
    Two classes: the decision threshold is chosen on val (for the recipe's selection metric) and applied to test."""
    val, val_probs = evaluate(model, EvalSet(dataset.val.images, dataset.val.labels, dataset.class_names), device,
                              goal=threshold_goal(recipe.select_metric))
    threshold = val.get(DECISION_THRESHOLD)
    test, test_probs = evaluate(model, EvalSet(dataset.test.images, dataset.test.labels, dataset.class_names),
                                device, prefix="test", threshold=threshold)
    logger.log_metrics(test, step=step)
    for split, probs in (("val", val_probs), ("test", test_probs)):
        matrix = confusion_matrix(getattr(dataset, split).labels, probs, dataset.num_classes, threshold=threshold)
        logger.log_text(_matrix_csv(matrix, dataset.class_names), f"confusion_matrix_{split}.csv")
    return test


def _matrix_csv(matrix: np.ndarray, class_names: tuple[str, ...]) -> str:
    # csv quoting: class names such as "normal, benign" contain commas.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *class_names])
    writer.writerows([name, *(int(v) for v in row)] for name, row in zip(class_names, matrix))
    return buffer.getvalue()
