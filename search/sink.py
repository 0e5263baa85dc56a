"""Where a recipe's results go: the small protocol the pipeline writes to.

The pipeline (search/pipeline.py) only knows this protocol; tracking.runs.RunLogger implements it for
MLflow, so every MLflow call of a trial lives in tracking/ and the pipeline can be run against any sink
(a test's in-memory one, for instance). Losses and models return metric dicts; only the caller decides
where they go (as in stylegan2-ada's training_stats.report).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np


class Sink(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0) -> None: ...

    def log_metric_steps(self, steps: Sequence[tuple[int, Mapping[str, float], int]]) -> None:
        """(step, metrics, timestamp in ms) triples: many steps in few calls, each stamped when it happened."""

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_bytes(self, data: bytes, artifact_file: str) -> None: ...

    def log_npz(self, artifact_file: str, **arrays: np.ndarray) -> None: ...

    def log_image(self, image: Any, artifact_file: str, *, key: str | None = None) -> None: ...

    def log_table(self, data: Mapping[str, Sequence[Any]], artifact_file: str) -> None:
        """Columns of equal length; MLflow renders them as a table (per-class results, for instance)."""

    def log_datasets(self, sets: Mapping[str, tuple[np.ndarray, np.ndarray]], *, name: str) -> None: ...


class StepBuffer:
    """An on_epoch callback that logs per-step metrics every `seconds` instead of on every step: a GAN epoch
    can take 40 ms on a GPU, and one MLflow call 10-40 ms. Call `flush` when the steps end."""

    def __init__(self, sink: Sink, *, prefix: str = "", seconds: float = 5.0) -> None:
        self.sink, self.prefix, self.seconds = sink, prefix, seconds
        self._steps: list[tuple[int, dict[str, float], int]] = []
        self._last = time.monotonic()

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        # Stamped now, not at the flush: MLflow then shows when each epoch really ended.
        self._steps.append((step, {f"{self.prefix}{k}": v for k, v in metrics.items()}, int(time.time() * 1000)))
        if time.monotonic() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self._steps:
            self.sink.log_metric_steps(self._steps)
            self._steps = []
        self._last = time.monotonic()
