"""`ganmix confirm`: re-run a search's best recipes over several seeds on the test split and say whether
augmentation really helped.

Arms (from the finalists' ranking, their mean over several validation seeds, when the search ran that
stage: search/finalists.py): the top K recipes by validation, the best real-only recipe (the tuned baseline: the best
`generator: none` trial), the best GAN recipe (when it is not among the top K) and, for every GAN arm, its
ablation: the same recipe with `generator: none` (Recipe.ablated), so the GAN arm minus its ablation is the
generator's own effect, apart from the lr, augmentation and class weighting it came with. Every arm runs
with the same seeds, each seed setting both the generator and the classifier seed, so arms are paired per
seed and start from the same classifier weights. The runs are Ray tasks with the search's resources.

Two families of comparisons, each Holm-corrected (search/stats.py): every arm against the tuned real-only
baseline, and every GAN arm against its ablation. `plan` counts them and checks the seeds before anything
runs; every verdict line states the smallest lift it could have detected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganmix.datasets import ImageDataset
from ganmix.models.metrics import confirming_metric, metric_info
from ganmix.search.recipe import Recipe
from ganmix.search.confirm_report import arm_rows, describe, search_answer, search_lead
from ganmix.search import finalists
from ganmix.search.spec import SearchSpec
from ganmix.search.stats import ABLATION, MeanCI, Paired, corrected, mean_ci, min_seeds_for_significance, paired, \
    seeds_check, verdict_line
from ganmix.tracking import confirmation as tracking
from ganmix.tracking import query
from ganmix.tracking.describe import write_confirmed_lead
from ganmix.tracking.naming import run_name
from ganmix.tracking.store import TrackingError

# At the decision threshold chosen on val (two classes; models/evaluation.py): every metric but the AUC and loss.
REPORTED = ("test_auc", "test_acc", "test_balanced_acc", "test_macro_f1", "test_loss", "test_sensitivity",
            "test_specificity", "decision_threshold")
ABLATED = "-ablated"  # an ablation arm's key: its GAN arm's key plus this


class ConfirmError(TrackingError):
    """A search that cannot be confirmed (no completed trials, no real-only arm); one clear line."""


@dataclass(frozen=True)
class Arm:
    key: str  # "top1", "top2", ..., "real-only" (or "top2/real-only"), "gan"
    recipe: Recipe
    trial_run_id: str
    val: float
    baseline: bool = False  # the tuned real-only baseline every other arm is compared with
    ablation: bool = False  # added only as the generator-free twin of GAN arm(s); not compared with the baseline

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
    comparisons: dict[str, Paired]  # arm vs the tuned real-only baseline, Holm-corrected over the arms
    lines: list[str]
    verdict: str
    run_id: str
    ablations: dict[str, str]  # GAN arm -> the arm that is its ablation (the same recipe, no generator)
    effects: dict[str, Paired]  # GAN arm vs its ablation: the generator's own effect, Holm-corrected
    best: str | None  # the arm the verdict is about: the best GAN arm (or the top arm when none is a GAN)
    headline: str  # the verdict in a few words, for a table column
    resample_data: bool = False  # each seed drew its own train subsample (--resample-data)

    @property
    def family(self) -> int:
        """How many arms were compared with the baseline (Holm's family)."""
        return len(self.comparisons)


def choose_arms(uri: str, summaries: list[query.TrialSummary], metric: str, top: int) -> list[Arm]:
    """The arms to confirm, from a search's trials ranked by `metric` in its own direction: by the mean of
    the finalists' re-evaluations (search/finalists.py) when the search ran that stage, else by their one
    search value."""
    ranked_finalists = finalists.ranked(summaries, metric)
    ranked = ranked_finalists or query.rank(summaries, metric)
    if not ranked:
        raise ConfirmError(f"no completed trial with a finite {metric}: nothing to confirm")
    chosen: dict[str, query.TrialSummary] = {f"top{i + 1}": s for i, s in enumerate(ranked[:top])}
    real = next((s for s in ranked if query.is_real_only(s)), None)
    if real is None and ranked_finalists:  # no real-only finalist: the best completed real-only trial
        real = next((s for s in query.rank(summaries, metric) if query.is_real_only(s)), None)
    if real is None:
        raise ConfirmError("the search has no completed real-only trial (generator: none) to compare against; "
                           "include `none` in the space's generator choices")
    gan = next((s for s in ranked if not query.is_real_only(s)), None)
    if gan is None and ranked_finalists:  # no generator finalist with a mean: the best completed GAN trial
        gan = next((s for s in query.rank(summaries, metric) if not query.is_real_only(s)), None)
    if gan is None:  # no generator finalist, every GAN trial stopped early: re-run the most promising in full
        gan = next((s for s in query.rank_stopped(summaries, metric) if not query.is_real_only(s)), None)
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
        # A finalist's value is the mean of its re-evaluations; another trial's, its one search value.
        val = summary.metrics.get(finalists.mean_metric(metric), summary.metrics.get(metric, math.nan))
        arms.append(Arm(key, recipe, summary.run_id, val, baseline=summary.run_id == real.run_id))
    return arms + ablation_arms(arms)[0]


def _same_run(recipe: Recipe) -> tuple[tuple[str, str], ...]:
    """What decides a run once confirm sets the seeds: the logged params (a real-only recipe logs none of
    the generator fields it ignores)."""
    return tuple(sorted(recipe.with_seed(0).to_params().items()))


def ablation_arms(arms: list[Arm]) -> tuple[list[Arm], dict[str, str]]:
    """For every GAN arm its ablation (Recipe.ablated): new arms, and GAN arm -> ablation arm key. An
    ablation that is already an arm (the tuned baseline with the same lr, augmentation...) is not run twice."""
    by_run = {_same_run(a.recipe): a.key for a in arms}
    extra: list[Arm] = []
    mapping: dict[str, str] = {}
    for arm in arms:
        if arm.recipe.real_only or arm.ablation:
            continue
        twin = arm.recipe.ablated()
        key = by_run.get(_same_run(twin))
        if key is None:
            key = arm.key + ABLATED
            extra.append(Arm(key, twin, arm.trial_run_id, math.nan, ablation=True))
            by_run[_same_run(twin)] = key
        mapping[arm.key] = key
    return extra, mapping


def families(arms: list[Arm]) -> tuple[int, int]:
    """(arms compared with the tuned baseline, GAN arms compared with their ablations): Holm's two families."""
    return (sum(not a.baseline and not a.ablation for a in arms), len(ablation_arms(arms)[1]))


def plan(*, uri: str, experiment_id: str, parent_run_id: str, metric: str, top: int, seeds: int,
         allow_underpowered: bool = False) -> tuple[list[Arm], str]:
    """The arms a confirmation will run and the line that says, before it starts, how many comparisons it
    makes and whether `seeds` can reach significance; too few seeds is a ConfirmError naming the minimum,
    unless `allow_underpowered`."""
    if seeds < 1 or top < 1:
        raise ConfirmError(f"--seeds and --top must be >= 1, got seeds={seeds}, top={top}")
    arms = choose_arms(uri, query.trial_summaries(uri, experiment_id, parent_run_id), metric, top)
    versus, effects = families(arms)
    family = max(versus, effects, 1)
    plan_line = (f"{len(arms)} arms over {seeds} seeds: {versus} compared with the tuned real-only baseline, "
                 f"{effects} GAN arm(s) with their ablation (Holm within each)")
    problem = seeds_check(seeds, family)
    if problem is None:
        return arms, f"{plan_line}; {seeds} seeds can reach p < 0.05 (the fewest that can: " \
                     f"{min_seeds_for_significance(family)})"
    if not allow_underpowered:
        raise ConfirmError(f"{problem} (or --allow-underpowered to run anyway, with no significance claim)")
    return arms, f"{plan_line}; warning: {problem}; running anyway (--allow-underpowered)"


def confirm(*, uri: str, experiment_id: str, parent_run_id: str, search_name: str, spec: SearchSpec,
            dataset: ImageDataset, top: int, seeds: int, cache_dir: Path,
            address: str | None = None, quiet: bool = False, arms: list[Arm] | None = None,
            allow_underpowered: bool = False, resample_data: bool = False, data_dir: Path | None = None
            ) -> Confirmation:
    """Run the confirmation. `arms`: the ones `plan` chose (else chosen, and the seeds checked, here).
    `resample_data`: each seed draws the search's scarce train subsample anew (its data_seed), from
    `data_dir`, so the intervals include which images were kept."""
    if arms is None:
        arms, _ = plan(uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id, metric=spec.metric,
                       top=top, seeds=seeds, allow_underpowered=allow_underpowered)
    if resample_data:
        check_resample(spec, search_name)
    metric = confirming_metric(spec.metric)
    seed_list = [spec.seed + 1 + i for i in range(seeds)]  # not the search's own seed: fresh draws
    logger = tracking.start_confirmation(uri, experiment_id, parent_run_id, search_name=search_name, metric=metric,
                                         seeds=seed_list, arms={a.key: a.name for a in arms},
                                         resample_data=resample_data)
    try:
        results = _run_all(arms, seed_list, uri=uri, experiment_id=experiment_id, run_id=logger.run_id, spec=spec,
                           dataset=dataset, cache_dir=cache_dir, address=address, quiet=quiet,
                           resample_data=resample_data, data_dir=data_dir)
        outcome = _analyse(arms, seed_list, results, metric=metric, run_id=logger.run_id, resample_data=resample_data)
        tracking.log_results(logger, per_seed=outcome.per_seed, per_arm=arm_rows(outcome), metric=metric,
                             description=describe(outcome, search_name), verdict=outcome.verdict,
                             parent_run_id=parent_run_id)
        metrics, tags = search_answer(outcome, spec.metric)
        tracking.answer_on_search(uri, parent_run_id, metrics=metrics, tags=tags)
        # The confirmation's own row shows the same numbers (it is "-" in every column otherwise).
        tracking.answer_on_search(uri, logger.run_id, metrics=metrics, tags={tracking.VERDICT_SHORT:
                                                                             tags[tracking.VERDICT_SHORT]})
        write_confirmed_lead(uri, parent_run_id, search_lead(outcome, experiment_id))
    except BaseException as exc:
        logger.finish("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    logger.finish("FINISHED")
    return outcome


def check_resample(spec: SearchSpec, search_name: str) -> None:
    """--resample-data draws the scarcity subsample anew; a search that kept every train image has none."""
    if not spec.train_per_class and not spec.class_fraction:
        raise ConfirmError(f"--resample-data: search {search_name!r} kept every train image (no --train-per-class "
                           "or --class-fraction), so there is no subsample to draw anew; drop --resample-data")


def _seed_recipe(recipe: Recipe, seed: int, *, resample_data: bool) -> Recipe:
    """The recipe at one confirmation seed: its generator and classifier seeds, and with --resample-data its
    data seed (which images the scarcity settings keep)."""
    seeded = recipe.with_seed(seed)
    return seeded.replace(data_seed=seed) if resample_data else seeded


def _run_all(arms: list[Arm], seeds: list[int], *, uri: str, experiment_id: str, run_id: str, spec: SearchSpec,
             dataset: ImageDataset, cache_dir: Path, address: str | None, quiet: bool, resample_data: bool = False,
             data_dir: Path | None = None) -> dict[tuple[str, int], dict[str, float] | str]:
    """Every (arm, seed) as a Ray task (confirm_task.run_jobs); returns metrics, or the error text of a failed
    task. With `resample_data` every seed gets its own subsample, shared by its arms (still paired)."""
    from ganmix.search.confirm_task import SeedJob, run_jobs
    from ganmix.tracking.confirmation import seed_run_tags

    datasets = [dataset]
    if resample_data:
        from ganmix.search.recipe_data import load_recipe_data

        datasets = [load_recipe_data(spec.base_recipe().replace(data_seed=seed), data_dir, download=False)
                    for seed in seeds]
    jobs = {(arm.key, seed): SeedJob(_seed_recipe(arm.recipe, seed, resample_data=resample_data).to_yaml(),
                                     parent_run_id=run_id, name=f"{arm.name} seed={seed}",
                                     tags=seed_run_tags(arm=arm.key, seed=seed),
                                     data=seeds.index(seed) if resample_data else 0)
            for arm in arms for seed in seeds}
    from ganmix.search.preflight.weights import fetch_recipe_weights

    # ImageNet weights: fetched once before Ray starts, shipped to every seed (as a search does).
    weights = fetch_recipe_weights(arm.recipe for arm in arms)
    results = run_jobs(jobs, datasets, weights=weights, uri=uri, experiment_id=experiment_id, cpus=spec.cpus_per_trial,
                       gpus=spec.gpus_per_trial, cache_dir=str(cache_dir), address=address, quiet=quiet,
                       label="confirm")
    return results  # type: ignore[return-value]


def _analyse(arms: list[Arm], seeds: list[int], results: dict[tuple[str, int], dict[str, float] | str], *,
             metric: str, run_id: str, resample_data: bool = False) -> Confirmation:
    per_seed, by_arm = _per_seed(arms, seeds, results, metric)
    unit = metric_info(metric).unit_interval
    per_arm = {a.key: mean_ci(list(by_arm[a.key].values()), unit_interval=unit) for a in arms}
    baseline = by_arm[next(a.key for a in arms if a.baseline)]
    comparisons = corrected({a.key: paired(by_arm[a.key], baseline, metric)
                             for a in arms if not a.baseline and not a.ablation})
    _, ablations = ablation_arms(arms)
    effects = corrected({k: paired(by_arm[k], by_arm[twin], metric) for k, twin in ablations.items()})
    names = {a.key: a.name for a in arms}
    lines = []
    for key, comp in comparisons.items():
        lines.append(verdict_line(names[key], comp, metric))
        if key in effects:
            lines.append("  " + verdict_line("its generator's own effect", effects[key], metric, against=ABLATION))
    best, verdict, headline = _verdict(arms, comparisons, effects, metric)
    if resample_data:
        verdict += "; each seed drew its own train subsample (--resample-data)"
    return Confirmation(metric=metric, seeds=seeds, arms=arms, per_seed=per_seed, per_arm=per_arm,
                        comparisons=comparisons, lines=lines, verdict=verdict, run_id=run_id, ablations=ablations,
                        effects=effects, best=best, headline=headline, resample_data=resample_data)


def _per_seed(arms: list[Arm], seeds: list[int], results: dict[tuple[str, int], dict[str, float] | str],
              metric: str) -> tuple[list[dict[str, Any]], dict[str, dict[int, float]]]:
    """The per-seed table rows, and per arm its metric by seed (seeds that finished)."""
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
    return per_seed, by_arm


def _verdict(arms: list[Arm], comparisons: dict[str, Paired], effects: dict[str, Paired],
             metric: str) -> tuple[str | None, str, str]:
    """(the arm the verdict is about, the verdict, its headline). Augmentation helped when a GAN arm beat
    the tuned baseline significantly (Holm-corrected); the generator is why only when it also beat its own
    ablation significantly."""
    names = {a.key: a.name for a in arms}
    gan_keys = [a.key for a in arms if a.key in comparisons and not a.recipe.real_only]
    if not gan_keys:
        top = next((a.key for a in arms if not a.ablation), None)
        return top, "augmentation did not help here: no GAN recipe finished in the search", "no GAN recipe"
    helped = [k for k in gan_keys if comparisons[k].significant and comparisons[k].mean > 0]

    def mean(k: str) -> float:
        return comparisons[k].mean if math.isfinite(comparisons[k].mean) else -math.inf

    best = max(helped or gan_keys, key=mean)
    effect = effects.get(best)
    own = (verdict_line("its generator's own effect", effect, metric, against=ABLATION) if effect is not None
           else "its generator's own effect: unknown (no ablation arm)")
    vs_base = verdict_line(names[best], comparisons[best], metric)
    generator_helped = effect is not None and effect.significant and effect.mean > 0
    if helped and generator_helped:
        head, short = "augmentation helped, and the generator is why: ", "helped (the generator)"
    elif helped:
        head, short = "augmentation helped, but not through its generator: ", "helped (not the generator)"
    else:
        head = ("augmentation did not help here (no GAN recipe beat the tuned real-only baseline significantly); "
                "best GAN recipe ")
        short = "did not help"
    return best, f"{head}{vs_base}; {own}", short
