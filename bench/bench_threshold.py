"""Minority recall before and after the decision threshold is chosen on validation (issue 22, section 5).

    python bench/bench_threshold.py [--data-dir ../shared/data] [--seeds 4] [--class-fraction malignant=0.2]

Trains the default real-only recipe (what `ganmix train` runs for `generator: none`) on BreastMNIST with
`--class-fraction malignant=0.2` (29 malignant, 399 benign train images; val and test as published) once per
seed, and scores each model's test split twice: by arg-max at the training prior (the rule before) and at the
threshold chosen on validation for the recipe's objective (balanced accuracy for val_auc: Youden's J), as
every run now does. The same trained model gives both rows, so the difference is the rule alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from ganmix.datasets import parse_class_fraction
from ganmix.models.classifiers import create_classifier
from ganmix.models.classify import EvalSet, evaluate, fit_classifier, seeded_classifier
from ganmix.models.evaluation import DECISION_THRESHOLD, metric_name, threshold_goal
from ganmix.search.pipeline import classifier_settings
from ganmix.search.recipe import Recipe
from ganmix.search.recipe_data import load_recipe_data
from ganmix.search.stats import mean_ci

ROWS = ("recall_{minority}", "recall_{majority}", "balanced_acc", "acc", "auc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--dataset", default="breastmnist")
    parser.add_argument("--class-fraction", default="malignant=0.2")
    parser.add_argument("--seeds", type=int, default=4)
    # A smaller classifier budget for a loaded machine (the defaults: the Recipe's, 60 epochs and a 120-step floor).
    parser.add_argument("--classifier-epochs", type=int, default=Recipe.classifier_epochs)
    parser.add_argument("--min-steps", type=int, default=Recipe.classifier_min_steps)
    parser.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    args = parser.parse_args()
    minority, fraction = parse_class_fraction(args.class_fraction)
    base = Recipe(dataset=args.dataset, class_fraction={minority: fraction}, generator="none", synthetic_ratio=0.0,
                  classifier_epochs=args.classifier_epochs, classifier_min_steps=args.min_steps,
                  batch_size=args.batch_size)
    dataset = load_recipe_data(base, args.data_dir)
    majority = next(name for name in dataset.class_names if name != minority)
    keys = [row.format(minority=metric_name(minority), majority=metric_name(majority)) for row in ROWS]
    print(f"# {dataset.summary()}; default real-only recipe ({base.classifier_epochs} epochs, lr {base.classifier_lr}, "
          f"augment {base.augment}, min steps {base.classifier_min_steps}, batch {base.batch_size}), {args.seeds} classifier seeds", flush=True)
    device = torch.device("cpu")
    val_set = EvalSet(dataset.val.images, dataset.val.labels, dataset.class_names)
    test_set = EvalSet(dataset.test.images, dataset.test.labels, dataset.class_names)
    before: dict[str, list[float]] = {k: [] for k in keys}
    after: dict[str, list[float]] = {k: [] for k in keys}
    thresholds = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        recipe = base.with_seed(seed)
        model = seeded_classifier(lambda: create_classifier(recipe.classifier, in_channels=dataset.channels,
                                                            num_classes=dataset.num_classes,
                                                            image_size=dataset.image_size), seed)
        fit_classifier(model, dataset.train.images, dataset.train.labels, settings=classifier_settings(recipe),
                       device=device, num_classes=dataset.num_classes, val=val_set)
        val, _ = evaluate(model, val_set, device, goal=threshold_goal(recipe.select_metric))
        argmax, _ = evaluate(model, test_set, device, prefix="test")
        chosen, _ = evaluate(model, test_set, device, prefix="test", threshold=val[DECISION_THRESHOLD])
        thresholds.append(val[DECISION_THRESHOLD])
        for k in keys:
            before[k].append(argmax[f"test_{k}"])
            after[k].append(chosen[f"test_{k}"])
        print(f"seed {seed}: threshold {val[DECISION_THRESHOLD]:.3f}; " + ", ".join(
            f"{k} {argmax[f'test_{k}']:.3f} -> {chosen[f'test_{k}']:.3f}" for k in keys), flush=True)
    print(f"\n{args.seeds} seeds in {time.perf_counter() - started:.0f} s (load average "
          f"{os.getloadavg()[0]:.1f}); test split, mean [95% CI]:\n")
    print("| test metric | arg-max (before) | val-chosen threshold (after) |\n|---|---|---|")
    for k in keys:
        cells = []
        for values in (before[k], after[k]):
            s = mean_ci(values, unit_interval=True)
            cells.append(f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}]")
        print(f"| {k} | {cells[0]} | {cells[1]} |")
    t = mean_ci(thresholds, unit_interval=True)
    print(f"\nthreshold on P({dataset.class_names[1]}): mean {t.mean:.3f} [{t.low:.3f}, {t.high:.3f}] (arg-max: 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
