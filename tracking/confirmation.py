"""MLflow side of `ganmix confirm`: a confirmation run nested under the search's parent run, one nested
run per (arm, seed), the per-seed table, a figure of the per-seed test metric per arm, and the verdict as
the run's description and as tags on the search's parent run (which `ganmix best` reads)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ganmix.tracking.runs import KIND, METRIC, NOTE, SEARCH_NAME, RunLogger, start_run

CONFIRMATION, CONFIRM_SEED = "confirmation", "confirm_seed"
ARM, SEED = "ganmix.arm", "ganmix.seed"
# On the search's parent run: the latest confirmation's one-line verdict and where to read the rest.
VERDICT, CONFIRMATION_RUN = "ganmix.verdict", "ganmix.confirmation_run_id"
# Also on the search's parent run: the confirmed answer in a few words (a column of ganmix's runs view) and
# the recipe it is about.
CONFIRMED, CONFIRMED_ARM = "ganmix.confirmed", "ganmix.confirmed_arm"
# The verdict in a runs-table column's width: the signed lift on the test split, `*` when significant
# ("+0.012*"), "no lift" when not; on the search's row and on its confirmation's.
VERDICT_SHORT = "ganmix.verdict_short"


def start_confirmation(uri: str, experiment_id: str, parent_run_id: str, *, search_name: str, metric: str,
                       seeds: Sequence[int], arms: Mapping[str, str], resample_data: bool = False) -> RunLogger:
    logger = start_run(uri, experiment_id, name=f"confirmation ({len(seeds)} seeds)", parent_run_id=parent_run_id,
                       tags={KIND: CONFIRMATION, SEARCH_NAME: search_name, METRIC: metric})
    logger.log_params({"seeds": ",".join(map(str, seeds)), "metric": metric, "resample_data": resample_data,
                       **{f"arm.{key}": name for key, name in arms.items()}})
    return logger


def seed_run_tags(*, arm: str, seed: int) -> dict[str, Any]:
    """The tags of one (arm, seed) run, nested under the confirmation run (search/recipe_run.py starts it)."""
    return {KIND: CONFIRM_SEED, ARM: arm, SEED: seed}


def log_results(logger: RunLogger, *, per_seed: list[dict[str, Any]], per_arm: list[dict[str, Any]],
                metric: str, description: str, verdict: str, parent_run_id: str) -> None:
    """Tables through MLflow's log_table (the UI renders them), the figure, the description and tags."""
    logger.log_table(_columns(per_seed), "confirmation/per_seed.json")
    logger.log_table(_columns(per_arm), "confirmation/arms.json")
    figure = per_seed_figure(per_seed, metric)
    try:
        logger.log_figure(figure, "confirmation/per_seed.png")
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    logger.set_tags({NOTE: description, VERDICT: verdict})
    RunLogger(logger.uri, parent_run_id).set_tags({VERDICT: verdict, CONFIRMATION_RUN: logger.run_id})


def answer_on_search(uri: str, parent_run_id: str, *, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
    """The confirmed answer on the search's own row of the runs table: metrics (the confirmed arm's
    objective, test metric and lift) and tags (its name, the verdict in a few words)."""
    import math

    logger = RunLogger(uri, parent_run_id)
    logger.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(v)})
    logger.set_tags(tags)
    logger.flush(strict=True)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def per_seed_figure(per_seed: list[dict[str, Any]], metric: str) -> Any:
    """One column per arm, a dot per seed, lines joining the same seed across arms (the pairing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(row["arm"] for row in per_seed))
    labels = {row["arm"]: row["recipe"] for row in per_seed}
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 4.2))
    by_seed: dict[int, dict[str, float]] = {}
    for row in per_seed:
        if row.get(metric) is not None:
            by_seed.setdefault(row["seed"], {})[row["arm"]] = row[metric]
    for seed, values in sorted(by_seed.items()):
        xs = [i for i, arm in enumerate(arms) if arm in values]
        ax.plot(xs, [values[arms[i]] for i in xs], "-o", alpha=0.6, label=f"seed {seed}")
    for i, arm in enumerate(arms):
        values = [v[arm] for v in by_seed.values() if arm in v]
        if values:
            ax.hlines(sum(values) / len(values), i - 0.25, i + 0.25, colors="black", linewidth=2)
    ax.set_xticks(range(len(arms)), [f"{arm}\n{labels[arm]}" for arm in arms], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per seed (black: mean)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig

