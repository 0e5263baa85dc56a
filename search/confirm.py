"""`ganmix confirm`: re-run a search's best recipes over several seeds on the test split and say whether
augmentation really helped.

Arms: the top K recipes by validation, the best real-only recipe (the tuned baseline: the best
`generator: none` trial) and the best GAN recipe (when it is not among the top K). Every arm runs with the
same seeds, each seed setting both the generator and the classifier seed, so arms are paired per seed
and start from the same classifier weights. The runs are Ray tasks with the search's resources.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganmix.datasets import ImageDataset
from ganmix.models.metrics import confirming_metric
from ganmix.search.recipe import Recipe
from ganmix.search.spec import SearchSpec
from ganmix.search.stats import MeanCI, Paired, mean_ci, paired, verdict_line
from ganmix.tracking import confirmation as tracking
from ganmix.tracking import query
from ganmix.tracking.naming import run_name
from ganmix.tracking.store import TrackingError

DEFAULT_TOP, DEFAULT_SEEDS = 3, 5
REPORTED = ("test_auc", "test_acc", "test_balanced_acc", "test_macro_f1", "test_loss")
# Below this many seeds a two-sided Wilcoxon signed-rank test cannot reach p < 0.05.
MIN_SEEDS_FOR_SIGNIFICANCE = 6


class ConfirmError(TrackingError):
    """A search that cannot be confirmed (no completed trials, no real-only arm); one clear line."""


@dataclass(frozen=True)
class Arm:
    key: str  # "top1", "top2", ..., "real-only" (or "top2/real-only"), "gan"
    recipe: Recipe
    trial_run_id: str
    val: float
    baseline: bool = False  # the tuned real-only baseline every other arm is compared with

    @property
    def name(self) -> str:
        return run_name(self.recipe)


@dataclass(frozen=True)
class Confirmation:
    metric: str
    seeds: list[int]
    arms: list[Arm]
    per_seed: list[dict[str, Any]]
    per_arm: dict[str, MeanCI]
    comparisons: dict[str, Paired]
    lines: list[str]
    verdict: str
    run_id: str


def choose_arms(uri: str, summaries: list[query.TrialSummary], metric: str, top: int) -> list[Arm]:
    """The arms to confirm, from a search's trials ranked by `metric` in its own direction."""
    ranked = query.rank(summaries, metric)
    if not ranked:
        raise ConfirmError(f"no completed trial with a finite {metric}: nothing to confirm")
    chosen: dict[str, query.TrialSummary] = {f"top{i + 1}": s for i, s in enumerate(ranked[:top])}
    real = next((s for s in ranked if query.is_real_only(s)), None)
    if real is None:
        raise ConfirmError("the search has no completed real-only trial (generator: none) to compare against; "
                           "include `none` in the space's generator choices")
    gan = next((s for s in ranked if not query.is_real_only(s)), None)
    picked = {s.run_id: key for key, s in chosen.items()}
    if real.run_id in picked:  # one arm, two roles: no run twice
        chosen[f"{picked[real.run_id]}/real-only"] = chosen.pop(picked[real.run_id])
    else:
        chosen["real-only"] = real
    if gan is not None and gan.run_id not in picked:
        chosen["gan"] = gan
    arms = []
    for key, summary in chosen.items():
        text = query.recipe_yaml(uri, summary.run_id)
        if text is None:
            raise ConfirmError(f"trial run {summary.run_id} has no recipe.yaml; it cannot be re-run")
        recipe = Recipe.from_yaml(text, source=f"run {summary.run_id}").replace(baseline=False)
        arms.append(Arm(key, recipe, summary.run_id, summary.metrics.get(metric, math.nan),
                        baseline=summary.run_id == real.run_id))
    return arms


def confirm(*, uri: str, experiment_id: str, parent_run_id: str, search_name: str, spec: SearchSpec,
            dataset: ImageDataset, top: int = DEFAULT_TOP, seeds: int = DEFAULT_SEEDS, cache_dir: Path,
            address: str | None = None, quiet: bool = False) -> Confirmation:
    if seeds < 1 or top < 1:
        raise ConfirmError(f"--seeds and --top must be >= 1, got seeds={seeds}, top={top}")
    summaries = query.trial_summaries(uri, experiment_id, parent_run_id)
    arms = choose_arms(uri, summaries, spec.metric, top)
    metric = confirming_metric(spec.metric)
    seed_list = [spec.seed + 1 + i for i in range(seeds)]  # not the search's own seed: fresh draws
    logger = tracking.start_confirmation(uri, experiment_id, parent_run_id, search_name=search_name, metric=metric,
                                         seeds=seed_list, arms={a.key: a.name for a in arms})
    try:
        results = _run_all(arms, seed_list, uri=uri, experiment_id=experiment_id, run_id=logger.run_id, spec=spec,
                           dataset=dataset, cache_dir=cache_dir, address=address, quiet=quiet)
        outcome = _analyse(arms, seed_list, results, metric, logger.run_id)
        tracking.log_results(logger, per_seed=outcome.per_seed, per_arm=_arm_rows(outcome), metric=metric,
                             description=describe(outcome, search_name), verdict=outcome.verdict,
                             parent_run_id=parent_run_id)
    except BaseException as exc:
        logger.finish("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    logger.finish("FINISHED")
    return outcome


def _run_all(arms: list[Arm], seeds: list[int], *, uri: str, experiment_id: str, run_id: str, spec: SearchSpec,
             dataset: ImageDataset, cache_dir: Path, address: str | None, quiet: bool
             ) -> dict[tuple[str, int], dict[str, float] | str]:
    """Every (arm, seed) as a Ray task; returns metrics, or the error text of a failed task."""
    import ray

    from ganmix.search.confirm_task import run_seed

    if not ray.is_initialized():
        ray.init(address=address or "local", include_dashboard=False, configure_logging=False, log_to_driver=False)
    task = ray.remote(run_seed).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial, max_retries=1)
    data_ref = ray.put(dataset)
    pending = {
        task.remote(data_ref, arm.recipe.with_seed(seed).to_yaml(), uri=uri, experiment_id=experiment_id,
                    confirmation_run_id=run_id, arm=arm.key, name=arm.name, seed=seed, cache_dir=str(cache_dir),
                    cpus=spec.cpus_per_trial): (arm.key, seed)
        for arm in arms for seed in seeds
    }
    results: dict[tuple[str, int], dict[str, float] | str] = {}
    started, total = time.monotonic(), len(pending)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(done[0])
        try:
            results[key] = ray.get(done[0])
        except Exception as exc:  # a failed seed is reported, the others still count
            results[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
        if not quiet:
            failed = sum(isinstance(v, str) for v in results.values())
            print(f"[{time.monotonic() - started:6.0f}s] confirm: {len(results)}/{total} runs done, {failed} failed",
                  flush=True)
    return results


def _analyse(arms: list[Arm], seeds: list[int], results: dict[tuple[str, int], dict[str, float] | str],
             metric: str, run_id: str) -> Confirmation:
    per_seed: list[dict[str, Any]] = []
    by_arm: dict[str, dict[int, float]] = {a.key: {} for a in arms}
    for arm in arms:
        for seed in seeds:
            out = results[(arm.key, seed)]
            row: dict[str, Any] = {"arm": arm.key, "recipe": arm.name, "seed": seed}
            if isinstance(out, str):
                row["error"] = out
            else:
                row.update({k: out.get(k) for k in REPORTED if k in out})
                if metric in out:
                    by_arm[arm.key][seed] = out[metric]
            per_seed.append(row)
    per_arm = {a.key: mean_ci(list(by_arm[a.key].values())) for a in arms}
    baseline = by_arm[next(a.key for a in arms if a.baseline)]
    comparisons = {a.key: paired(by_arm[a.key], baseline, metric) for a in arms if not a.baseline}
    names = {a.key: a.name for a in arms}
    lines = [verdict_line(names[k], c, metric) for k, c in comparisons.items()]
    gan_keys = [a.key for a in arms if not a.baseline and not a.recipe.real_only]
    helped = [k for k in gan_keys if comparisons[k].significant and comparisons[k].mean > 0]
    if helped:
        best = max(helped, key=lambda k: comparisons[k].mean)
        verdict = "augmentation helped: " + verdict_line(names[best], comparisons[best], metric)
    elif gan_keys:
        best = max(gan_keys, key=lambda k: comparisons[k].mean if math.isfinite(comparisons[k].mean) else -math.inf)
        verdict = ("augmentation did not help here (no GAN recipe beat the tuned real-only baseline significantly); "
                   "best GAN recipe " + verdict_line(names[best], comparisons[best], metric))
    else:
        verdict = "augmentation did not help here: no GAN recipe finished in the search"
    return Confirmation(metric=metric, seeds=seeds, arms=arms, per_seed=per_seed, per_arm=per_arm,
                        comparisons=comparisons, lines=lines, verdict=verdict, run_id=run_id)


def _arm_rows(outcome: Confirmation) -> list[dict[str, Any]]:
    rows = []
    for arm in outcome.arms:
        stats = outcome.per_arm[arm.key]
        comp = outcome.comparisons.get(arm.key)
        rows.append({"arm": arm.key, "recipe": arm.name, "search_val": arm.val, "trial_run_id": arm.trial_run_id,
                     f"{outcome.metric}_mean": stats.mean, "ci_low": stats.low, "ci_high": stats.high, "n": stats.n,
                     "diff_vs_real_only": comp.mean if comp else 0.0, "diff_ci_low": comp.low if comp else None,
                     "diff_ci_high": comp.high if comp else None, "wilcoxon_p": comp.p_value if comp else None})
    return rows


def table(outcome: Confirmation) -> list[str]:
    """Console lines: per arm the mean and 95% CI of the confirming metric, then the verdicts."""
    out = [f"{'arm':<10} {'recipe':<36} {outcome.metric + ' mean':>14} {'95% CI':>17} {'seeds':>5}"]
    for arm in outcome.arms:
        s = outcome.per_arm[arm.key]
        ci = f"{s.low:.3f}..{s.high:.3f}" if math.isfinite(s.low) else "-"
        out.append(f"{arm.key:<10} {arm.name[:36]:<36} {s.mean:>14.4f} {ci:>17} {s.n:>5}")
    return out


def describe(outcome: Confirmation, search_name: str) -> str:
    """Markdown for the confirmation run's description in the MLflow UI."""
    lines = [f"**{outcome.verdict}**", "",
             f"Search `{search_name}`, {len(outcome.seeds)} seeds ({', '.join(map(str, outcome.seeds))}), "
             f"paired by seed; differences are against the tuned real-only baseline.", "",
             f"| arm | recipe | {outcome.metric} mean | 95% CI | diff | diff 95% CI | p |", "|---|---|---|---|---|---|---|"]
    for arm in outcome.arms:
        s, c = outcome.per_arm[arm.key], outcome.comparisons.get(arm.key)
        diff = f"{c.mean:+.4f} | {c.low:+.4f}..{c.high:+.4f} | {c.p_value:.2g}" if c else "0 | - | -"
        lines.append(f"| {arm.key} | {arm.name} | {s.mean:.4f} | {s.low:.4f}..{s.high:.4f} | {diff} |")
    if len(outcome.seeds) < MIN_SEEDS_FOR_SIGNIFICANCE:
        lines += ["", f"With {len(outcome.seeds)} seeds a two-sided Wilcoxon test cannot reach p < 0.05: "
                      f"use --seeds {MIN_SEEDS_FOR_SIGNIFICANCE} or more for a significance claim."]
    return "\n".join(lines)
