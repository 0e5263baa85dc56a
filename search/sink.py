"""Where a recipe's results go: the small protocol the pipeline writes to.

The pipeline (search/pipeline.py) only knows this protocol; tracking.runs.RunLogger implements it for
MLflow, so every MLflow call of a trial lives in tracking/ and the pipeline can be run against any sink
(a test's in-memory one, for instance). Losses and models return metric dicts; only the caller decides
where they go (as in stylegan2-ada's training_stats.report).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np


class Sink(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_bytes(self, data: bytes, artifact_file: str) -> None: ...

    def log_npz(self, artifact_file: str, **arrays: np.ndarray) -> None: ...

    def log_image(self, image: Any, artifact_file: str, *, key: str | None = None) -> None: ...

    def log_datasets(self, sets: Mapping[str, tuple[np.ndarray, np.ndarray]], *, name: str) -> None: ...
