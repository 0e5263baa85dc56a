"""`ganmix confirm`: re-run a search's best recipes over several seeds on the test split and say whether
augmentation really helped.

Arms: the top K recipes by validation, the best real-only recipe (the tuned baseline: the best
`generator: none` trial), the best GAN recipe (when it is not among the top K) and, for every GAN arm, its
ablation: the same recipe with `generator: none` (Recipe.ablated), so the GAN arm minus its ablation is the
generator's own effect, apart from the lr, augmentation and class weighting it came with. Every arm runs
with the same seeds, each seed setting both the generator and the classifier seed, so arms are paired per
seed and start from the same classifier weights. The runs are Ray tasks with the search's resources.

Two families of comparisons, each Holm-corrected (search/stats.py): every arm against the tuned real-only
baseline, and every GAN arm against its ablation.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganmix.datasets import ImageDataset
from ganmix.models.metrics import confirming_metric, metric_info
from ganmix.search.recipe import Recipe
from ganmix.search.confirm_report import arm_rows, describe, search_answer, search_lead
from ganmix.search.spec import SearchSpec
from ganmix.search.stats import ABLATION, MeanCI, Paired, corrected, mean_ci, paired, verdict_line
from ganmix.tracking import confirmation as tracking
from ganmix.tracking import query
from ganmix.tracking.describe import write_confirmed_lead
from ganmix.tracking.naming import run_name
from ganmix.tracking.store import TrackingError

REPORTED = ("test_auc", "test_acc", "test_balanced_acc", "test_macro_f1", "test_loss")
STOP_GRACE_S = 30.0  # how long stopped seeds get to reach their next epoch
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

    @property
    def family(self) -> int:
        """How many arms were compared with the baseline (Holm's family)."""
        return len(self.comparisons)


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
    if gan is None:  # every GAN trial was stopped early: confirm re-runs the most promising one in full
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
        arms.append(Arm(key, recipe, summary.run_id, summary.metrics.get(metric, math.nan),
                        baseline=summary.run_id == real.run_id))
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


def confirm(*, uri: str, experiment_id: str, parent_run_id: str, search_name: str, spec: SearchSpec,
            dataset: ImageDataset, top: int, seeds: int, cache_dir: Path,
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
        outcome = _analyse(arms, seed_list, results, metric=metric, run_id=logger.run_id)
        tracking.log_results(logger, per_seed=outcome.per_seed, per_arm=arm_rows(outcome), metric=metric,
                             description=describe(outcome, search_name), verdict=outcome.verdict,
                             parent_run_id=parent_run_id)
        metrics, tags = search_answer(outcome, spec.metric)
        tracking.answer_on_search(uri, parent_run_id, metrics=metrics, tags=tags)
        write_confirmed_lead(uri, parent_run_id, search_lead(outcome, experiment_id))
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

    from ganmix.search.confirm_task import StopFlag, run_seed
    from ganmix.search.runner import start_ray

    from ganmix.search.preflight.weights import fetch_recipe_weights

    # ImageNet weights: fetched once before Ray starts, shipped to every seed (as a search does).
    weights = fetch_recipe_weights(arm.recipe for arm in arms)
    with _interruptible() as interrupted:
        start_ray(address)
        task = ray.remote(run_seed).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial,
                                            max_retries=1)
        stop = ray.remote(num_cpus=0)(StopFlag).remote()
        data_ref = ray.put(dataset)
        weights_ref = ray.put(weights)
        pending = {
            task.remote(data_ref, arm.recipe.with_seed(seed).to_yaml(), uri=uri, experiment_id=experiment_id,
                        confirmation_run_id=run_id, arm=arm.key, name=arm.name, seed=seed, cache_dir=str(cache_dir),
                        cpus=spec.cpus_per_trial, stop=stop, weights=weights_ref): (arm.key, seed)
            for arm in arms for seed in seeds
        }
        results: dict[tuple[str, int], dict[str, float] | str] = {}
        started, total = time.monotonic(), len(pending)
        try:
            while pending:
                # A timeout, so that a Ctrl-C that Ray's own code swallowed (it can, while it starts workers)
                # still ends the loop within a second.
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if not done:
                    continue
                key = pending.pop(done[0])
                try:
                    results[key] = ray.get(done[0])
                except Exception as exc:  # a failed seed is reported, the others still count
                    results[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
                if not quiet:
                    failed = sum(isinstance(v, str) for v in results.values())
                    print(f"[{time.monotonic() - started:6.0f}s] confirm: {len(results)}/{total} runs done, "
                          f"{failed} failed", flush=True)
        except KeyboardInterrupt:
            _wind_down(list(pending), stop, uri=uri, experiment_id=experiment_id, run_id=run_id, quiet=quiet)
            raise
    return results


def _wind_down(pending: list[Any], stop: Any, *, uri: str, experiment_id: str, run_id: str, quiet: bool) -> None:
    """After Ctrl-C: every unfinished seed ends its run (FAILED, "stopped") at its next classifier epoch and
    the queued ones never start. Past STOP_GRACE_S, or at a second Ctrl-C, Ray is shut down (its workers
    with it) and the runs still open are closed as KILLED, so none stays RUNNING."""
    import ray

    from ganmix.search.confirm_task import STOPPED
    from ganmix.tracking import runs

    stop.set.remote()
    if not quiet:
        print(f"stopping: {len(pending)} unfinished seeds end their runs at their next epoch "
              f"(up to {STOP_GRACE_S:.0f} s; Ctrl-C again to stop now)", flush=True)
    try:
        deadline = time.monotonic() + STOP_GRACE_S
        while pending and time.monotonic() < deadline:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
    finally:
        if pending:
            ray.shutdown()
        runs.close_running_children(uri, experiment_id, run_id, status="KILLED", reason=f"{STOPPED} (Ray shut down)")


@contextlib.contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT) and SIGTERM (kill, a scheduler's stop) set the event as well as raising
    KeyboardInterrupt, for the wait loop to see either way; the handlers before are restored after."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield interrupted
        return

    def on_signal(signum: int, frame: object) -> None:
        interrupted.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _analyse(arms: list[Arm], seeds: list[int], results: dict[tuple[str, int], dict[str, float] | str], *,
             metric: str, run_id: str) -> Confirmation:
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
    return Confirmation(metric=metric, seeds=seeds, arms=arms, per_seed=per_seed, per_arm=per_arm,
                        comparisons=comparisons, lines=lines, verdict=verdict, run_id=run_id, ablations=ablations,
                        effects=effects, best=best, headline=headline)


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
