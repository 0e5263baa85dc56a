"""The parent run's tables and plots: every trial through MLflow's log_table (the UI renders it), and
Optuna's own matplotlib plots of the study (history, parallel coordinates, importances) via log_figure."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from ganmix.models.metrics import logged_name, test_counterpart
from ganmix.tracking.describe import lift_metric, rank_label
from ganmix.tracking.query import rank
from ganmix.tracking.query import TrialSummary
from ganmix.tracking.runs import RunLogger

log = logging.getLogger(__name__)

TABLE_FILE = "trials_table.json"
PARAM_COLUMNS = ("generator", "synthetic_ratio", "generator_epochs", "allocation", "classifier_lr")


def trials_table(summaries: Sequence[TrialSummary], metric: str) -> dict[str, list[Any]]:
    """One row per trial, best first (ranked trials, then the rest in start order), as columns."""
    ranking = rank(summaries, metric)
    order = {s.run_id: i + 1 for i, s in enumerate(ranking)}
    rows = ranking + [s for s in summaries if s.run_id not in order]
    test = test_counterpart(metric)
    # Headed by the names the runs table shows (`val/auc`), read under ganmix's own (`val_auc`).
    shown = {key: logged_name(key) for key in (metric, lift_metric(metric), *([test] if test else []))}
    columns: dict[str, list[Any]] = {"rank": [], "trial": [], **{name: [] for name in shown.values()}}
    columns.update({"status": [], **{p: [] for p in PARAM_COLUMNS}, "trial_id": [], "run_id": []})
    for s in rows:
        columns["rank"].append(rank_label(s, order) or "running")
        columns["trial"].append(s.name)
        for key, name in shown.items():
            columns[name].append(s.metrics.get(key))
        columns["status"].append(s.status)
        for p in PARAM_COLUMNS:
            columns[p].append(s.params.get(p, ""))
        columns["trial_id"].append(s.trial_id)
        columns["run_id"].append(s.run_id)
    return columns


def log_trials_table(parent: RunLogger, summaries: Sequence[TrialSummary], metric: str) -> None:
    """Logged once, when the search has finished: log_table appends to an existing file."""
    parent.log_table(trials_table(summaries, metric), TABLE_FILE)


def log_study_figures(parent: RunLogger, study: Any) -> list[str]:
    """Optuna's plots of the study on the parent run; returns the artifact paths logged.

    A plot that the study cannot support yet (importances need two finished trials with the same
    searched parameters) is skipped with a debug line, not an error: the search itself succeeded.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a driver
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {"optuna/optimization_history.png": ovm.plot_optimization_history,
             "optuna/parallel_coordinate.png": ovm.plot_parallel_coordinate,
             "optuna/param_importances.png": ovm.plot_param_importances}
    logged = []
    for path, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning, "few trials per regime" UserWarnings
            try:
                axes = plot(study)
            except Exception as exc:  # Optuna raises ValueError/RuntimeError for too few trials
                log.debug("skipping %s: %s", path, exc)
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        try:
            parent.log_figure(figure, path)
            logged.append(path)
        finally:
            plt.close(figure)
    return logged
