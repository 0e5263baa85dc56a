"""MLflow dataset inputs for image sets: mlflow.data.from_numpy with the role as the input's context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from mlflow.entities import DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT


def dataset_inputs(sets: Mapping[str, tuple[np.ndarray, np.ndarray]], *, name: str) -> list[DatasetInput]:
    """One input per set, named `<name>/<role>` (e.g. digits/train); MLflow digests the arrays, so the
    same split in every trial is one dataset of the experiment and each synthetic set its own."""
    import mlflow.data

    inputs = []
    for role, (images, labels) in sets.items():
        dataset = mlflow.data.from_numpy(np.asarray(images), targets=np.asarray(labels), name=f"{name}/{role}")
        # What mlflow.log_input(dataset, context=role) sends, without its global active run.
        inputs.append(DatasetInput(dataset._to_mlflow_entity(),  # noqa: SLF001
                                   tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=role)]))
    return inputs


def split_arrays(dataset: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train, val and test of an ImageDataset as (images, labels) arrays."""
    return {role: (split.images.numpy(), split.labels.numpy()) for role, split in dataset.splits().items()}
