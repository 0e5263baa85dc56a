"""The answer next to the published table: search + confirm on BreastMNIST (whole and scarce) and PneumoniaMNIST.

    python bench/bench_answer.py [--budget cpu|gpu] [--data-dir ../shared/data] [--scenarios breastmnist ...]
                                 [--results-dir DIR] [--out answer.md]

Scenarios: `breastmnist` and `pneumoniamnist` (their whole train splits) and `breastmnist-50`, the scarce
one where augmentation has its best chance: `breastmnist --train-per-class 50` (50 train images per class,
drawn with the search's seed; val and test stay whole), and `breastmnist-malignant20`, the imbalanced one:
`--class-fraction malignant=0.2` (29 of the 147 malignant train images kept, all 399 benign).

For each scenario it runs a search with the default space (real-only recipes included) and then
`ganmix confirm` over several seeds, and prints: the tuned real-only arm, the confirmed best GAN recipe
and its verdict (test metrics, mean and 95% CI over the seeds), and the MedMNIST v2 test AUC / ACC of
the published baselines (values transcribed from the MedMNIST v2 paper, named as such: one run each).

Budgets: `gpu` is sized to finish in about 10 minutes per data set on one GPU (fractional GPUs, 8 trials
at once); its space is the default one for a GPU, so it holds `ddpm`. `cpu` is a small budget for 2 CPU
cores (fewer trials, epochs and seeds); the scarce scenarios add `ddpm` at a tiny width there (8 or 16
channels, 10..50 sampling steps), since the CPU default leaves it out. The numbers are what
this machine measured; nothing here is cached or hard-coded except the published table.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ganmix.models.metrics import metric_info
from ganmix.search.confirm import confirm
from ganmix.search.confirm_report import diff_text, role
from ganmix.search.runner import RunOptions, load_search_data, run_search
from ganmix.search.space import Dim, parse_dim
from ganmix.search.spec import SearchSpec, default_generator_space, default_space
from ganmix.search.stats import mean_ci

# MedMNIST v2 (Yang et al., Scientific Data 10, 41, 2023), benchmark table: test AUC, ACC.
PUBLISHED = {
    "breastmnist": {"ResNet-18 (28)": (0.901, 0.863), "ResNet-18 (224)": (0.891, 0.833),
                    "ResNet-50 (28)": (0.857, 0.812), "ResNet-50 (224)": (0.866, 0.842),
                    "auto-sklearn": (0.836, 0.803), "AutoKeras": (0.871, 0.831),
                    "Google AutoML Vision": (0.919, 0.861)},
    "pneumoniamnist": {"ResNet-18 (28)": (0.944, 0.854), "ResNet-18 (224)": (0.956, 0.864),
                       "ResNet-50 (28)": (0.948, 0.854), "ResNet-50 (224)": (0.962, 0.884),
                       "auto-sklearn": (0.942, 0.855), "AutoKeras": (0.947, 0.878),
                       "Google AutoML Vision": (0.991, 0.946)},
}


@dataclass(frozen=True)
class Scenario:
    dataset: str
    train_per_class: int | None = None  # None: the whole train split
    class_fraction: tuple[tuple[str, float], ...] = ()  # e.g. (("malignant", 0.2),): a scarce minority class

    @property
    def scarce(self) -> bool:
        return self.train_per_class is not None or bool(self.class_fraction)


SCENARIOS = {
    "breastmnist": Scenario("breastmnist"),
    "pneumoniamnist": Scenario("pneumoniamnist"),
    "breastmnist-50": Scenario("breastmnist", train_per_class=50),
    # The imbalanced one: 29 of 147 malignant train images kept, all 399 benign.
    "breastmnist-malignant20": Scenario("breastmnist", class_fraction=(("malignant", 0.2),)),
}


@dataclass(frozen=True)
class Budget:
    trials: int
    max_concurrent: int
    cpus_per_trial: float
    gpus_per_trial: float
    classifier_epochs: int
    generator_epochs_high: int
    top: int
    seeds: int


BUDGETS = {
    ("gpu", "breastmnist"): Budget(48, 8, 2, 0.125, 60, 200, 3, 8),
    ("gpu", "pneumoniamnist"): Budget(32, 8, 2, 0.125, 30, 100, 3, 8),
    ("cpu", "breastmnist"): Budget(12, 2, 1, 0.0, 20, 30, 2, 6),
    ("cpu", "pneumoniamnist"): Budget(6, 2, 1, 0.0, 6, 8, 1, 6),
    # 100 train images: trials are short, so the search can afford more trials and generator epochs.
    ("gpu", "breastmnist-50"): Budget(48, 8, 2, 0.125, 60, 300, 3, 8),
    # 8 seeds: Holm over the top 2 and the best GAN recipe (three comparisons) needs 7 for p < 0.05.
    ("cpu", "breastmnist-50"): Budget(16, 2, 1, 0.0, 20, 60, 2, 8),
    ("gpu", "breastmnist-malignant20"): Budget(48, 8, 2, 0.125, 60, 200, 3, 8),
    ("cpu", "breastmnist-malignant20"): Budget(12, 2, 1, 0.0, 20, 30, 2, 8),
}
# ddpm on the CPU (the scarce scenarios only): tiny width, few sampling steps.
CPU_DDPM = {"width": [8, 16], "sample_steps": {"type": "int", "low": 10, "high": 50, "log": True},
            "guidance_scale": {"type": "float", "low": 1.0, "high": 4.0}}


def search_space(scenario: Scenario, budget: Budget) -> tuple[dict[str, Dim], dict[str, dict[str, Dim]]]:
    """The default space for the budget's device (a GPU's holds ddpm), and ddpm at a tiny width in a CPU
    budget's scarce scenario."""
    gpu = budget.gpus_per_trial > 0
    epochs = {"type": "int", "low": 3, "high": budget.generator_epochs_high, "log": True}
    space = {**default_space(gpu=gpu), "generator_epochs": parse_dim("generator_epochs", epochs)}
    families = default_generator_space()
    if not gpu and scenario.scarce:
        space["generator"] = parse_dim("generator", [*space["generator"].choices, "ddpm"])
        families["ddpm"] = {k: parse_dim(f"ddpm.{k}", v, section="generator_space") for k, v in CPU_DDPM.items()}
    return space, families


def arm_counts(uri: str, parent_run_id: str) -> str:
    """Per arm kind, trials that ran to the end vs stopped early (the parent run's tags, see search.scheduler),
    and whether at least the top third of that arm's trials ran to the end."""
    from ganmix.search.scheduler import ARM_TAG, ARMS
    from ganmix.tracking import runs

    tags = runs.get_run(uri, parent_run_id).data.tags
    parts = []
    for arm in ARMS:
        done, stopped, failed = (int(tags.get(ARM_TAG.format(arm=arm, outcome=o), 0))
                                 for o in ("completed", "stopped_early", "failed"))
        total = done + stopped + failed
        if total:
            third = math.ceil(total / 3)
            parts.append(f"{arm} {done} of {total} ran to the end ({stopped} stopped early"
                         + (f", {failed} failed" if failed else "")
                         + f"; top third = {third}: {'met' if done >= third else 'NOT met'})")
    return "; ".join(parts) or "no trial finished"


def run_one(name: str, budget: Budget, args: argparse.Namespace) -> list[str]:
    scenario = SCENARIOS[name]
    space, families = search_space(scenario, budget)
    spec = SearchSpec(name=f"bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}", dataset=scenario.dataset,
                      train_per_class=scenario.train_per_class, class_fraction=dict(scenario.class_fraction),
                      trials=budget.trials,
                      max_concurrent=budget.max_concurrent, cpus_per_trial=budget.cpus_per_trial,
                      gpus_per_trial=budget.gpus_per_trial, space=space, generator_space=families,
                      fixed={"classifier_epochs": budget.classifier_epochs})
    started = time.perf_counter()
    outcome = run_search(spec, RunOptions(results_dir=args.results_dir, data_dir=args.data_dir, quiet=True))
    searched = time.perf_counter() - started
    dataset = load_search_data(spec, args.data_dir)
    conf = confirm(uri=outcome.tracking_uri, experiment_id=outcome.experiment_id, parent_run_id=outcome.parent_run_id,
                   search_name=outcome.name, spec=spec, dataset=dataset, top=budget.top, seeds=budget.seeds,
                   cache_dir=(args.results_dir / "cache").resolve(), quiet=True)
    confirmed = time.perf_counter() - started - searched
    scarce = f", --train-per-class {scenario.train_per_class}" if scenario.train_per_class is not None else ""
    scarce += "".join(f", --class-fraction {k}={v:g}" for k, v in scenario.class_fraction)
    lines = [f"## {name}: {args.budget} budget ({budget.trials} trials{scarce}, {budget.classifier_epochs} classifier "
             f"epochs, generator epochs 3..{budget.generator_epochs_high}, families {list(space['generator'].choices)}, "
             f"confirm top {budget.top} over {budget.seeds} seeds)",
             f"search {outcome.name}: {searched:.0f} s, {outcome.num_errors} failed trials; confirmation {confirmed:.0f} s",
             f"trials per arm kind: {arm_counts(outcome.tracking_uri, outcome.parent_run_id)}",
             "", f"| arm | role | recipe | test AUC mean [95% CI] | test ACC mean [95% CI] | {conf.metric} vs tuned "
             "real-only | generator's own effect |", "|---|---|---|---|---|---|---|"]
    for arm in conf.arms:
        cells = []
        for metric in ("test_auc", "test_acc"):
            values = [r[metric] for r in conf.per_seed if r["arm"] == arm.key and r.get(metric) is not None]
            stats = mean_ci(values, unit_interval=metric_info(metric).unit_interval)
            ci = f"[{stats.low:.3f}, {stats.high:.3f}]" if math.isfinite(stats.low) else "[-]"
            cells.append(f"{stats.mean:.3f} {ci}")
        vs = diff_text(conf.comparisons[arm.key]) if arm.key in conf.comparisons else "-"
        own = diff_text(conf.effects[arm.key]) if arm.key in conf.effects else "-"
        lines.append(f"| {arm.key} | {role(conf, arm)} | {arm.name} | {cells[0]} | {cells[1]} | {vs} | {own} |")
    lines += ["", *conf.lines, "", f"**verdict:** {conf.verdict}", "",
              "MedMNIST v2 paper (Yang et al. 2023), test AUC / ACC, one published run each:", ""]
    if scenario.scarce:
        kept = (f"{scenario.train_per_class} images per class" if scenario.train_per_class is not None else
                ", ".join(f"{v:g} of the {k} images" for k, v in scenario.class_fraction))
        lines += [f"(trained on {kept}; the published runs used the whole train split)", ""]
    lines += [f"- {model}: {auc:.3f} / {acc:.3f}" for model, (auc, acc) in PUBLISHED[scenario.dataset].items()]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--scenarios", "--datasets", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--results-dir", type=Path, default=Path("ganmix-bench-answer"))
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    for name in args.scenarios:
        path = args.data_dir / f"{SCENARIOS[name].dataset}.npz"
        if not path.is_file():
            print(f"bench_answer: {path} is absent (see ../shared/data/README.md)", file=sys.stderr)
            return 2
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU only ({platform.processor() or platform.machine()})"
    out = [f"# ganmix answer bench ({args.budget} budget) on {platform.node()}: {device}, "
           f"{__import__('os').cpu_count()} CPUs, torch {torch.__version__}", ""]
    for name in args.scenarios:
        section = run_one(name, BUDGETS[(args.budget, name)], args)
        print("\n".join(section), flush=True)
        out += section + [""]
    if args.out is not None:
        args.out.write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
