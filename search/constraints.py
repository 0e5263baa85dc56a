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

from ganmix.models.metrics import SEARCHABLE, canonical_metric
from ganmix.search.space import SpaceError


# The violation recorded for an unmeasured constraint metric: positive, so TPE ranks the trial as infeasible.
MISSING_VIOLATION = 1.0


@dataclass(frozen=True)
class Bound:
    metric: str
    kind: str  # "max" (metric <= limit) or "min" (metric >= limit)
    limit: float

    def violation(self, value: float | None) -> float:
        """<= 0 when satisfied. A missing value (sample metrics off, or too few samples to measure) is
        a violation of MISSING_VIOLATION: a trial that generated images is feasible only when measured."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING_VIOLATION
        return value - self.limit if self.kind == "max" else self.limit - value


def parse_constraints(raw: Mapping[str, Any] | None) -> tuple[Bound, ...]:
    """From YAML: {near_copy_fraction: {max: 0.01}, label_fidelity: {min: 0.8}}."""
    bounds = []
    for typed, spec in (raw or {}).items():
        metric = canonical_metric(str(typed))  # `sample/near_copy_fraction`, as the UI shows it, is welcome
        if metric not in SEARCHABLE:
            raise SpaceError(f"constraints.{metric}: unknown metric; expected one of {SEARCHABLE}")
        if not isinstance(spec, Mapping) or not spec or set(spec) - {"max", "min"}:
            raise SpaceError(f"constraints.{metric} must look like {{max: 0.01}} or {{min: 0.8}}, got {spec!r}")
        for kind, limit in spec.items():
            if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not math.isfinite(limit):
                raise SpaceError(f"constraints.{metric}.{kind} must be a finite number, got {limit!r}")
            bounds.append(Bound(metric, kind, float(limit)))
    for metric in {b.metric for b in bounds}:  # also across spellings (val_auc, val/auc) of one metric
        lows = [b.limit for b in bounds if b.metric == metric and b.kind == "min"]
        highs = [b.limit for b in bounds if b.metric == metric and b.kind == "max"]
        if lows and highs and max(lows) > min(highs):
            raise SpaceError(f"constraints.{metric}: min {max(lows):g} is above max {min(highs):g}; no trial could "
                             "satisfy it")
    return tuple(bounds)


def violations(bounds: tuple[Bound, ...], metrics: Mapping[str, float], *, real_only: bool = False) -> list[float]:
    """One value per bound, <= 0 when satisfied; a real-only trial generates nothing, so it is feasible."""
    if real_only:
        return [0.0 for _ in bounds]
    return [b.violation(metrics.get(b.metric)) for b in bounds]


def is_feasible(bounds: tuple[Bound, ...], metrics: Mapping[str, float], *, real_only: bool = False) -> bool:
    return all(v <= 0 for v in violations(bounds, metrics, real_only=real_only))


def __getattr__(name: str) -> Any:
    # ConstrainedOptunaSearch subclasses Ray's OptunaSearch; importing Ray (~2 s) here would slow every
    # spec check, so the class lives in ganmix.search.searcher and is re-exported lazily.
    if name == "ConstrainedOptunaSearch":
        from ganmix.search.searcher import ConstrainedOptunaSearch

        return ConstrainedOptunaSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
