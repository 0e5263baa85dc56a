"""Generators in the MLflow Model Registry: `ganmix best --register` and sampling a registered version.

A registered version is an MLflow pyfunc model (GeneratorModel) whose only artifact is a copy of the trial's
`generator/generator.pt`, so loading it needs ganmix and MLflow, never the search's results folder.
`predict` takes a table with integer columns `label` and `count` (one row per class wanted) and returns a
table with one row per image: `label` (int) and `image` (a uint8 numpy array of shape (C, H, W), the
generator's own size and channels). The seed is a predict param (`params={"seed": 0}`, default 0): the
same seed gives the same images.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from ganmix.models.metrics import SAMPLE_METRICS
from ganmix.tracking import query
from ganmix.tracking.confirmation import CONFIRMATION_RUN, CONFIRMED, CONFIRMED_ARM, VERDICT
from ganmix.tracking.location import TrackingError
from ganmix.tracking.runs import FINGERPRINT, KIND, SEARCH_NAME, start_run
from ganmix.tracking.store import client, retry

GENERATOR_ARTIFACT = "generator/generator.pt"  # what search/pipeline.py logs on every generator trial
REGISTRATION = "registration"  # the KIND of the run that logs the model, nested under the search
MODEL_NAME = "generator"  # the logged model's name inside that run
# Model-version tags (read them with MlflowClient.get_model_version(...).tags).
RECIPE, TRIAL_RUN, CHOSEN_AS, DATASET = "ganmix.recipe", "ganmix.trial_run_id", "ganmix.chosen_as", "ganmix.dataset"


class RegistryError(TrackingError):
    """Nothing to register or sample (no generator trial, no checkpoint, a bad model URI); one clear line."""


class GeneratorModel(mlflow.pyfunc.PythonModel):
    """A ganmix generator as a pyfunc: (label, count) rows in, one (label, image) row per image out."""

    def load_context(self, context: Any) -> None:
        from ganmix.models.generator import load_generator

        self._model = load_generator(context.artifacts["generator"])

    # A DataFrame hint is one MLflow infers no schema from: the logged signature stays the one in force.
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        import torch

        from ganmix.models.generator import sample_images

        labels = request_labels(model_input, num_classes=self._model.config.num_classes)
        seed = int((params or {}).get("seed", 0))
        images = sample_images(self._model, torch.as_tensor(labels, dtype=torch.long), seed=seed)
        return pd.DataFrame({"label": labels, "image": list(images.numpy())})


def request_labels(table: Any, *, num_classes: int) -> np.ndarray:
    """The label of every image a (label, count) table asks for, in the table's order."""
    if not isinstance(table, pd.DataFrame) or not {"label", "count"} <= set(table.columns):
        raise RegistryError(f"predict expects a table with integer columns 'label' and 'count', got "
                            f"{list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__}")
    labels, counts = table["label"].to_numpy(), table["count"].to_numpy()
    if not (np.issubdtype(labels.dtype, np.integer) and np.issubdtype(counts.dtype, np.integer)):
        raise RegistryError("predict: 'label' and 'count' must be integer columns")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise RegistryError(f"predict: labels must be in [0, {num_classes - 1}], got {sorted(set(labels.tolist()))}")
    if len(counts) and counts.min() < 0:
        raise RegistryError("predict: counts must be >= 0")
    return np.repeat(labels.astype(np.int64), counts)


@dataclass(frozen=True)
class Chosen:
    trial: query.TrialSummary
    parent: Any  # the search's parent run
    why: str  # "confirmed" (the confirmation's best GAN arm) or "best generator trial" (unconfirmed)


def choose_generator_trial(uri: str, result: query.BestResult) -> Chosen:
    """The generator `best` stands for: the confirmed best GAN arm's trial when the search was confirmed
    (and that arm has a generator), else the search's best generator trial by its metric."""
    parent = query.find_search(uri, result.search, experiment_id=result.best.experiment_id)
    if parent is None:
        raise RegistryError(f"no search named {result.search!r} at {uri}")
    trials = query.trial_summaries(uri, parent.info.experiment_id, parent.info.run_id)
    by_id = {t.run_id: t for t in trials}
    confirmed = _confirmed_trial(uri, parent)
    if confirmed in by_id and not query.is_real_only(by_id[confirmed]):
        return Chosen(by_id[confirmed], parent, "confirmed")
    ranked = query.rank(trials, result.metric) + query.rank_stopped(trials, result.metric)
    trial = next((t for t in ranked if not query.is_real_only(t)), None)
    if trial is None:
        raise RegistryError(f"search {result.search!r} has no finished generator trial (every ranked trial is "
                            "real-only): there is no generator to register")
    return Chosen(trial, parent, "best generator trial")


def _confirmed_trial(uri: str, parent: Any) -> str | None:
    """The trial run of the confirmation's verdict arm, from the confirmation run's arms table."""
    tags = parent.data.tags
    if not tags.get(CONFIRMATION_RUN) or not tags.get(CONFIRMED_ARM):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = retry(client(uri).download_artifacts, tags[CONFIRMATION_RUN], "confirmation/arms.json", tmp)
            table = json.loads(Path(path).read_text())
        except Exception:  # an older or interrupted confirmation: fall back to the unconfirmed choice
            return None
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    return next((r.get("trial_run_id") for r in rows
                 if r.get("recipe") == tags[CONFIRMED_ARM] and r.get("role", "") != "ablation"), None)


def register_generator(uri: str, result: query.BestResult, *, name: str) -> tuple[Any, Chosen]:
    """Log the chosen trial's generator as a pyfunc model in a run nested under its search and register it
    as a new version of `name`; returns (the ModelVersion, what was chosen)."""
    from ganmix.models.generator import load_generator

    chosen = choose_generator_trial(uri, result)
    mlflow_client = client(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            checkpoint = retry(mlflow_client.download_artifacts, chosen.trial.run_id, GENERATOR_ARTIFACT, tmp)
        except Exception as exc:
            raise RegistryError(f"trial run {chosen.trial.run_id} has no {GENERATOR_ARTIFACT} artifact "
                                f"({type(exc).__name__}); it cannot be registered") from exc
        config = load_generator(checkpoint).config  # a broken file is an error here, not at load time
        logger = start_run(uri, chosen.parent.info.experiment_id, name=f"register {chosen.trial.name}",
                           tags={KIND: REGISTRATION, SEARCH_NAME: result.search},
                           parent_run_id=chosen.parent.info.run_id)
        with pointed_at(uri), mlflow.start_run(run_id=logger.run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME, python_model=GeneratorModel(), artifacts={"generator": str(checkpoint)},
                signature=mlflow.models.infer_signature(pd.DataFrame({"label": [0], "count": [1]}),
                                                        params={"seed": 0}),
                # Given, not inferred: inference would load the model in a subprocess to watch its imports.
                pip_requirements=_requirements(),
                metadata={"num_classes": config.num_classes, "channels": config.channels,
                          "image_size": config.image_size},
                registered_model_name=name)
    version = info.registered_model_version
    for key, value in version_tags(uri, result, chosen).items():
        retry(mlflow_client.set_model_version_tag, name, str(version), key, value)
    return retry(mlflow_client.get_model_version, name, str(version)), chosen


def version_tags(uri: str, result: query.BestResult, chosen: Chosen) -> dict[str, str]:
    """What a registered version carries: its recipe, data, verdict and the trial's sample metrics."""
    parent_tags = chosen.parent.data.tags
    tags = {RECIPE: query.recipe_yaml(uri, chosen.trial.run_id) or "",
            DATASET: result.dataset, FINGERPRINT: parent_tags.get(FINGERPRINT, ""), SEARCH_NAME: result.search,
            TRIAL_RUN: chosen.trial.run_id, CHOSEN_AS: chosen.why,
            VERDICT: parent_tags.get(VERDICT, "unconfirmed: one seed, chosen on validation"),
            CONFIRMED: parent_tags.get(CONFIRMED, "")}
    for metric in SAMPLE_METRICS:
        if metric in chosen.trial.metrics:
            tags[f"ganmix.sample.{metric}"] = f"{chosen.trial.metrics[metric]:.6g}"
    return {k: v[:8000] for k, v in tags.items() if v}  # MLflow's tag value limit


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("ganmix", "mlflow", "torch", "pandas", "numpy"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


@contextmanager
def pointed_at(uri: str) -> Iterator[None]:
    """MLflow's fluent API (log_model, load_model) on `uri`, then back to what it was before: setting the
    URI also sets MLFLOW_TRACKING_URI in this process's environment, which would outlive the call."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
        if saved["MLFLOW_REGISTRY_URI"] is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)


def sample_registered(model_uri: str, counts: dict[int, int], seed: int, *,
                      tracking_uri: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, H, W) uint8 and labels (N,) int64 from a registered generator (`models:/NAME/VERSION`),
    `counts[label]` images of each label, in the order of `counts`. `ganmix export --model` calls this."""
    with pointed_at(tracking_uri) if tracking_uri is not None else nullcontext():
        try:
            model = mlflow.pyfunc.load_model(model_uri)
        except Exception as exc:
            raise RegistryError(f"cannot load model {model_uri!r} from {mlflow.get_registry_uri()}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    table = pd.DataFrame({"label": list(counts), "count": list(counts.values())}, dtype=np.int64)
    out = model.predict(table, params={"seed": int(seed)})
    meta = model.metadata.metadata or {}
    if len(out) == 0:
        shape = (0, int(meta.get("channels", 1)), int(meta.get("image_size", 0)), int(meta.get("image_size", 0)))
        return np.empty(shape, dtype=np.uint8), np.empty(0, dtype=np.int64)
    return np.stack(list(out["image"])).astype(np.uint8), out["label"].to_numpy(dtype=np.int64)


def model_version_tags(uri: str, model_uri: str) -> dict[str, str]:
    """The tags of `models:/NAME/VERSION` (the recipe, fingerprint and verdict `register_generator` wrote)."""
    from mlflow import MlflowClient

    parts = model_uri.removeprefix("models:/").split("/")
    if not model_uri.startswith("models:/") or len(parts) != 2 or not parts[1].isdigit():
        raise RegistryError(f"--model {model_uri!r}: expected models:/NAME/VERSION (a version number)")
    try:
        version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(parts[0], parts[1])
    except Exception as exc:  # noqa: BLE001 - MLflow's RestException: one line
        raise RegistryError(f"--model {model_uri!r}: not in the registry at {uri} "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return dict(version.tags)
