"""MLflow side of the finalists stage (search/finalists.py): one run per (finalist, seed) nested under the
finalist's trial run, the mean on the trial's run (a metric and tags), the ranking as a table on the
search's parent run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ganmix.tracking.runs import KIND, RunLogger

FINALIST_SEED = "finalist_seed"  # KIND of one re-evaluation run
FINALIST_OF, SEED = "ganmix.finalist_of", "ganmix.seed"  # on it: the trial run it re-evaluates, its seed
# On a finalist's trial run: its rank among the finalists (1 = best mean) and the seeds of its mean.
FINALIST_RANK, FINALIST_SEEDS = "ganmix.finalist_rank", "ganmix.finalist_seeds"
TABLE = "finalists.json"  # on the search's parent run


def mean_metric(metric: str) -> str:
    """The name of a finalist's mean as ganmix reads it back (`finalist_val_auc_mean`: runs.read_metrics turns
    the logged `finalist/val_auc_mean`, a section of its own in the MLflow UI, into this)."""
    return f"finalist_{metric}_mean"


def logged_mean_metric(metric: str) -> str:
    return f"finalist/{metric}_mean"


def seed_run_tags(*, trial_run_id: str, seed: int) -> dict[str, Any]:
    return {KIND: FINALIST_SEED, FINALIST_OF: trial_run_id, SEED: seed}


def log_finalist(uri: str, trial_run_id: str, *, metric: str, mean: float, sd: float, n: int, rank: int | None,
                 seeds: Sequence[int]) -> None:
    """A finalist's mean (and sd) over its re-evaluations on its trial's run; its rank as a tag."""
    import math

    logger = RunLogger(uri, trial_run_id)
    values = {logged_mean_metric(metric): mean, f"finalist/{metric}_sd": sd, "finalist/seeds": float(n)}
    logger.log_metrics({k: v for k, v in values.items() if math.isfinite(v)})
    logger.set_tags({FINALIST_RANK: "" if rank is None else str(rank), FINALIST_SEEDS: ",".join(map(str, seeds))})
    logger.flush(strict=True)


def log_ranking(parent: RunLogger, rows: Sequence[Mapping[str, Any]]) -> None:
    """The finalists' ranking as a table (MLflow's log_table) on the search's parent run."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    parent.log_table({k: [row.get(k) for row in rows] for k in keys}, TABLE)
