"""Real-only test AUC against the classifier's optimizer steps: the curve behind `classifier_min_steps`.

    python bench/bench_steps.py [--data-dir ../shared/data] [--train-per-class 50 | --full]
                                [--min-steps 0 60 120 ...] [--seeds 6] [--threads 1] [--json PATH]
                                [--epochs N] [--classifier small_cnn] [--augment none] [--class-weight none] [--lr X]

Each row trains the real-only recipe (generator none) through the pipeline a trial runs
(`execute_recipe`), on the same scarce subset a search draws (`load_recipe_data`, data seed 0), with
`classifier_min_steps` set to the row's value and every other field at the Recipe's default unless a flag
says otherwise; over `--seeds` classifier seeds. It prints the optimizer steps the trainer makes
(`total_steps`), the test AUC mean and its 95% t interval, the val AUC mean, and the seconds per run with
the load average beside them: on a shared machine the seconds move, the AUCs do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _common import load_average, machine_rows, print_rows, write_json
from ganmix.models.classify import passes_per_epoch, total_steps
from ganmix.search.pipeline import classifier_settings, execute_recipe
from ganmix.search.recipe import Recipe
from ganmix.search.recipe_data import load_recipe_data
from ganmix.search.stats import mean_ci


class NullSink:
    """The pipeline's Sink protocol, writing nowhere: only the returned metrics matter here."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("log_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def base_recipe(args: argparse.Namespace) -> Recipe:
    fields: dict[str, Any] = {"dataset": "breastmnist", "generator": "none", "synthetic_ratio": 0.0,
                              "train_per_class": None if args.full else args.train_per_class}
    for flag, name in (("epochs", "classifier_epochs"), ("classifier", "classifier"), ("augment", "augment"),
                       ("class_weight", "class_weight"), ("lr", "classifier_lr")):
        if getattr(args, flag) is not None:
            fields[name] = getattr(args, flag)
    return Recipe(**fields)


def run_row(recipe: Recipe, dataset: Any, seeds: int) -> tuple[list[float], list[float], list[float]]:
    test, val, seconds = [], [], []
    for seed in range(seeds):
        started = time.perf_counter()
        metrics = execute_recipe(dataclasses.replace(recipe, classifier_seed=seed), dataset,
                                 device=torch.device("cpu"), logger=NullSink(), sample_metrics=False)
        seconds.append(time.perf_counter() - started)
        test.append(metrics["test_auc"])
        val.append(metrics["val_auc"])
        # One line per seed on stderr: a row cut short by a deadline still leaves its seeds.
        print(f"  seed {seed}: test_auc {test[-1]:.4f} val_auc {val[-1]:.4f} {seconds[-1]:.1f} s "
              f"(load {load_average():.1f})", file=sys.stderr, flush=True)
    return test, val, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--train-per-class", type=int, default=50)
    parser.add_argument("--full", action="store_true", help="the whole train split (no scarcity)")
    parser.add_argument("--min-steps", type=int, nargs="+", default=[0, 60, 120, 210, 420],
                        help="classifier_min_steps of each row (0: no floor)")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="classifier_epochs (default: the Recipe's)")
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--augment", default=None)
    parser.add_argument("--class-weight", default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    recipe = base_recipe(args)
    dataset = load_recipe_data(recipe, args.data_dir)
    real = len(dataset.train)
    print(f"{dataset.summary()}; {real} train images; {recipe.classifier}, {recipe.classifier_epochs} epochs, "
          f"lr {recipe.classifier_lr}, augment {recipe.augment}, class_weight {recipe.class_weight}; "
          f"{args.seeds} classifier seeds, {torch.get_num_threads()} threads", flush=True)
    print("| min_steps | passes/epoch | optimizer steps | test AUC mean [95% CI] | val AUC mean | s/run | load |",
          flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    rows = machine_rows("cpu")
    for floor in args.min_steps:
        row_recipe = dataclasses.replace(recipe, classifier_min_steps=floor)
        settings = classifier_settings(row_recipe)
        passes = passes_per_epoch(real, epochs=settings.epochs, batch_size=settings.batch_size, min_steps=floor)
        steps = total_steps(real, settings)
        test, val, seconds = run_row(row_recipe, dataset, args.seeds)
        stats = mean_ci(test)
        ci = f"[{stats.low:.3f}, {stats.high:.3f}]" if math.isfinite(stats.low) else "[-]"
        cells = (f"{stats.mean:.3f} {ci}", f"{sum(val) / len(val):.3f}", f"{sum(seconds) / len(seconds):.1f}",
                 f"{load_average():.1f}")
        print(f"| {floor} | {passes} | {steps} | " + " | ".join(cells) + " |", flush=True)
        rows.append((f"{steps} steps: test AUC", f"{cells[0]}, {cells[2]} s/run"))
    print()
    print_rows(rows)
    write_json(args.json, "steps", rows, (load_before, load_average()))


if __name__ == "__main__":
    main()
