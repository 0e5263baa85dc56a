"""Sample metrics as constraints: e.g. keep near_copy_fraction <= 0.01 while maximising val_auc.

Optuna's TPE handles constraints natively (`Trial.set_constraint`; values <= 0 are feasible) and ranks
infeasible trials after feasible ones. Ray's OptunaSearch only tells Optuna the objective, so a small
subclass sets the constraint values on the Optuna trial before it is told.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from ganmix.search.metrics import SEARCHABLE
from ganmix.search.space import SpaceError


@dataclass(frozen=True)
class Bound:
    metric: str
    kind: str  # "max" (metric <= limit) or "min" (metric >= limit)
    limit: float

    def violation(self, value: float | None) -> float:
        """<= 0 when satisfied; an absent value (the baseline has no samples) counts as satisfied."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return 0.0
        return value - self.limit if self.kind == "max" else self.limit - value


def parse_constraints(raw: Mapping[str, Any] | None) -> tuple[Bound, ...]:
    """From YAML: {near_copy_fraction: {max: 0.01}, label_fidelity: {min: 0.8}}."""
    bounds = []
    for metric, spec in (raw or {}).items():
        if metric not in SEARCHABLE:
            raise SpaceError(f"constraints.{metric}: unknown metric; expected one of {SEARCHABLE}")
        if not isinstance(spec, Mapping) or not spec or set(spec) - {"max", "min"}:
            raise SpaceError(f"constraints.{metric} must look like {{max: 0.01}} or {{min: 0.8}}, got {spec!r}")
        for kind, limit in spec.items():
            if not isinstance(limit, (int, float)) or isinstance(limit, bool):
                raise SpaceError(f"constraints.{metric}.{kind} must be a number, got {limit!r}")
            bounds.append(Bound(metric, kind, float(limit)))
    return tuple(bounds)


def violations(bounds: tuple[Bound, ...], metrics: Mapping[str, float]) -> list[float]:
    return [b.violation(metrics.get(b.metric)) for b in bounds]


def is_feasible(bounds: tuple[Bound, ...], metrics: Mapping[str, float]) -> bool:
    return all(v <= 0 for v in violations(bounds, metrics))


class ConstrainedOptunaSearch(OptunaSearch):
    """OptunaSearch that records each trial's constraint violations before telling Optuna."""

    def __init__(self, *args: Any, bounds: tuple[Bound, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            for bound, value in zip(self._bounds, violations(self._bounds, result or {})):
                ot_trial.set_constraint(f"{bound.metric}_{bound.kind}", value)
        super().on_trial_complete(trial_id, result, error)
