"""Which sampler finds the better recipe in a small budget: best validation value after N trials, random search vs
today's TPE (seeded, Optuna's default 10 random start-up trials) vs ganmix's TPE settings (start-up scaled to the
budget, multivariate, group), over several search seeds, on one scarce scenario.

    python bench/bench_searcher.py [--data-dir ../shared/data] [--trials 8] [--search-seeds 0 1 2]
                                   [--classifier-epochs 10] [--classifier-min-steps 0]
                                   [--generator-epochs-high 30] [--threads 1] [--json PATH]

The scenario is bench_answer.py's scarce one: breastmnist --train-per-class 50 (drawn with seed 0, the same
images for every sampler), its CPU search space (the default space plus ddpm at a tiny width), with
classifier_epochs fixed small and the generator-epochs range cut to make it affordable. Each sampler drives an
Optuna study through ganmix's own define-by-run space (search.space.DefineByRun), the real-only baseline
enqueued first as a search does, and each trial runs the pipeline a Tune trial runs (`execute_recipe`) to the
end: no scheduler, so the comparison is of the samplers alone. A recipe evaluated once is not trained again
for another sampler or seed (its seeds are the spec's, so the value would be the same); the generator cache
also resumes generators from their snapshots. Prints one row per sampler: the best val value of each search
seed after N trials and after N/2, their means, and how many of the N trials drew a generator.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from _common import load_average, machine_rows, print_rows, write_json
from bench_answer import BUDGETS, SCENARIOS, search_space
from bench_steps import NullSink
from ganmix.models.metrics import metric_info
from ganmix.search.pipeline import execute_recipe
from ganmix.search.preflight import load_search_data
from ganmix.search.recipe import is_real_only
from ganmix.search.searcher import make_sampler, startup_trials
from ganmix.search.space import BASELINE_ATTR, DefineByRun, parse_dim
from ganmix.search.spec import SearchSpec
from ganmix.search.trainable import recipe_from_config

SAMPLERS = ("random", "tpe-default", "tpe-ganmix")


def sampler_for(kind: str, *, trials: int, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe-default":  # what the search used before: seeded, everything else Optuna's default
        return optuna.samplers.TPESampler(seed=seed)
    return make_sampler(trials=trials, seed=seed)


class Evaluator:
    """Runs a trial config through the pipeline once; the same config again is read back."""

    def __init__(self, spec: SearchSpec, data_dir: Path, cache_dir: str) -> None:
        self.spec, self.cache_dir = spec, cache_dir
        self.dataset = load_search_data(spec, data_dir)
        self.seen: dict[str, float] = {}
        self.trained = 0
        self.seconds = 0.0

    def __call__(self, config: dict[str, Any]) -> float:
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in self.seen:
            started = time.perf_counter()
            metrics = execute_recipe(recipe_from_config(config), self.dataset, device=torch.device("cpu"),
                                     logger=NullSink(), cache_dir=self.cache_dir, sample_metrics=False)
            self.seconds += time.perf_counter() - started
            self.trained += 1
            self.seen[key] = float(metrics[self.spec.metric])
        return self.seen[key]


def run_study(kind: str, seed: int, *, spec: SearchSpec, space: DefineByRun, evaluate: Evaluator,
              trials: int) -> list[tuple[float, bool]]:
    """(value, drew a generator) per trial, in order."""
    study = optuna.create_study(direction=metric_info(spec.metric).direction,
                                sampler=sampler_for(kind, trials=trials, seed=seed))
    study.enqueue_trial({}, user_attrs={BASELINE_ATTR: True})  # the real-only baseline goes first
    out = []
    for number in range(trials):
        trial = study.ask()
        constants = space(trial)  # suggests first: trial.params holds the drawn values only after it
        config = {**trial.params, **constants}
        value = evaluate(config)
        study.tell(trial, value)
        generator = not (config.get("baseline") or is_real_only(config.get("generator"), config.get("synthetic_ratio")))
        out.append((value, generator))
        print(f"  {kind} seed {seed} trial {number + 1}/{trials}: {spec.metric} {value:.4f} "
              f"{config.get('generator')} (trained {evaluate.trained}, load {load_average():.1f})",
              file=sys.stderr, flush=True)
    return out


def best(values: list[float], mode: str) -> float:
    return max(values) if mode == "max" else min(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--classifier-min-steps", type=int, default=0,
                        help="the classifier's step floor (the Recipe's 120 costs minutes a trial on a loaded CPU)")
    parser.add_argument("--generator-epochs-high", type=int, default=30)
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None, help="generator cache (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    args = parser.parse_args()
    if not (args.data_dir / "breastmnist.npz").is_file():
        print(f"bench_searcher: {args.data_dir / 'breastmnist.npz'} is absent (see ../shared/data/README.md)",
              file=sys.stderr)
        return 2
    if args.trials < 2:
        print(f"bench_searcher: --trials must be at least 2, got {args.trials}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = load_average()
    scenario = SCENARIOS["breastmnist-50"]
    budget = BUDGETS[("cpu", "breastmnist-50")]
    space_dims, families = search_space(scenario, budget)
    space_dims["generator_epochs"] = parse_dim("generator_epochs", {"type": "int", "low": 3,
                                                                    "high": args.generator_epochs_high, "log": True})
    spec = SearchSpec(name="bench-searcher", dataset=scenario.dataset, train_per_class=scenario.train_per_class,
                      trials=args.trials, space=space_dims, generator_space=families,
                      fixed={"classifier_epochs": args.classifier_epochs,
                                                                        "classifier_min_steps": args.classifier_min_steps})
    space = DefineByRun(spec.space, spec.generator_space, spec.fixed_config(), spec.baseline_recipe().to_dict())
    mode = "max" if metric_info(spec.metric).direction == "maximize" else "min"
    with tempfile.TemporaryDirectory(prefix="ganmix-bench-searcher-") as tmp:
        evaluate = Evaluator(spec, args.data_dir, str(args.cache_dir or Path(tmp) / "cache"))
        print(f"{evaluate.dataset.summary()}; {args.trials} trials per search, search seeds {args.search_seeds}, "
              f"classifier_epochs {args.classifier_epochs} (step floor {args.classifier_min_steps}), generator_epochs 3..{args.generator_epochs_high}, "
              f"families {list(space_dims['generator'].choices)}; ganmix TPE start-up "
              f"{startup_trials(args.trials)} (Optuna's default 10); load {load_before:.1f}", flush=True)
        # Seed by seed, every sampler: a run cut short still leaves whole seeds to compare.
        results: dict[str, dict[int, list[tuple[float, bool]]]] = {kind: {} for kind in args.samplers}
        for seed in args.search_seeds:
            for kind in args.samplers:
                results[kind][seed] = run_study(kind, seed, spec=spec, space=space, evaluate=evaluate,
                                                trials=args.trials)
    half = args.trials // 2
    header = (f"| sampler | best {spec.metric} after {args.trials} (per seed) | mean | best after {half} (mean) "
              f"| generator trials (of {args.trials}, mean) |")
    print("\n" + header + "\n|---|---|---|---|---|")
    rows = machine_rows("cpu")
    for kind, by_seed in results.items():
        finals = [best([v for v, _ in trials], mode) for trials in by_seed.values()]
        halves = [best([v for v, _ in trials[:half]], mode) for trials in by_seed.values()]
        generators = statistics.mean(sum(g for _, g in trials) for trials in by_seed.values())
        print(f"| {kind} | {' '.join(f'{v:.4f}' for v in finals)} | {statistics.mean(finals):.4f} | "
              f"{statistics.mean(halves):.4f} | {generators:.1f} |", flush=True)
        rows.append((f"{kind}: best {spec.metric} after {args.trials}", f"{statistics.mean(finals):.4f} "
                     f"(seeds {' '.join(f'{v:.4f}' for v in finals)})"))
    rows.append(("recipes trained", f"{evaluate.trained} in {evaluate.seconds:.0f} s"))
    rows.append(("load average (1 min) before / after", f"{load_before:.1f} / {load_average():.1f}"))
    print()
    print_rows(rows)
    write_json(args.json, "searcher", rows, (load_before, load_average()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
