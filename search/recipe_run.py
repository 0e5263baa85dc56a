"""One recipe under its own MLflow run: what a Tune trial, a confirmation task and `ganmix train` all do.

`run_recipe` starts the run, logs the recipe's params and recipe.yaml, chooses the device, runs
pipeline.execute_recipe and closes the run: FINISHED and completed, or FAILED with the error (tagged not
retryable when a rerun would only repeat it). The callers differ only in the run's name, tags and parent.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganmix.datasets import ImageDataset
from ganmix.search.pipeline import execute_recipe
from ganmix.search.recipe import Recipe
from ganmix.tracking import runs
from ganmix.tracking.inputs import split_arrays

# A report callback that also gets the run's logger (a trial tags its run from its reports).
RunReport = Callable[[runs.RunLogger, dict[str, float]], None]


@dataclass(frozen=True)
class NewRun:
    """Where the recipe's run goes and what it is called."""

    uri: str
    experiment_id: str
    name: str
    tags: Mapping[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None


def deterministic_errors() -> tuple[type[BaseException], ...]:
    """Failures that a rerun of the same recipe and seed hits again; Tune's retries are for lost workers."""
    from ganmix.models.generator import DivergenceError, GeneratorError
    from ganmix.search.recipe import RecipeError
    from ganmix.search.space import SpaceError

    return DivergenceError, GeneratorError, RecipeError, SpaceError


def choose_device(*, prefer_gpu: bool = True) -> torch.device:
    """Inside Ray (a trial, a confirmation task): the GPU Ray assigned to it, if any; outside Ray (`ganmix
    train`): the local GPU unless `prefer_gpu` is False."""
    ray = sys.modules.get("ray")  # imported by every Ray worker; `ganmix train` never pays for the import
    wanted = bool(ray.get_gpu_ids()) if ray is not None and ray.is_initialized() else prefer_gpu
    return torch.device("cuda") if wanted and torch.cuda.is_available() else torch.device("cpu")


def run_recipe(recipe: Recipe, dataset: ImageDataset, *, run: NewRun, cache_dir: str | Path | None,
               sample_metrics: bool = True, report: RunReport | None = None, prefer_gpu: bool = True,
               log_inputs: bool = False, cpus: float | None = None,
               left_to_driver: tuple[type[BaseException], ...] = ()) -> tuple[dict[str, float], runs.RunLogger]:
    """Run `recipe` on `dataset` under a new MLflow run; returns its final metrics and the run's logger.

    `left_to_driver`: exceptions after which the run stays open for the driver to close (Tune stopping a
    trial unwinds it with SystemExit; only the driver knows whether it was an early stop or an interrupt)."""
    if cpus is not None:
        torch.set_num_threads(max(1, int(cpus)))
    logger = runs.start_run(run.uri, run.experiment_id, name=run.name, tags=run.tags, parent_run_id=run.parent_run_id)
    logger.log_params(recipe.to_params())
    if log_inputs:
        logger.log_datasets(split_arrays(dataset), name=dataset.name)
    logger.log_text(recipe.to_yaml(), "recipe.yaml")
    device = choose_device(prefer_gpu=prefer_gpu)
    logger.set_tags({runs.DEVICE: device.type, **({runs.CONTROL: recipe.generator} if recipe.control else {})})
    try:
        metrics = execute_recipe(recipe, dataset, device=device, logger=logger, cache_dir=cache_dir,
                                 sample_metrics=sample_metrics,
                                 report=(lambda m: report(logger, m)) if report is not None else None)
    except left_to_driver:
        raise
    except BaseException as exc:
        if isinstance(exc, deterministic_errors()):
            logger.set_tags({runs.RETRYABLE: "false"})
        # Ctrl-C or SIGTERM (`ganmix train`): stopped by the user, not failed.
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        logger.finish(status, error=f"{type(exc).__name__}: {exc}")
        raise
    logger.set_tags({runs.COMPLETED: "true"})
    logger.finish("FINISHED")
    return metrics, logger
