"""Ray's OptunaSearch with sample-metric constraints (see ganmix.search.constraints)."""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

from ganmix.search.constraints import Bound, violations
from ganmix.search.ray_internals import optuna_trial
from ganmix.search.space import BASELINE_ATTR


class ConstrainedOptunaSearch(OptunaSearch):
    """OptunaSearch that records each trial's constraint violations before telling Optuna."""

    def __init__(self, *args: Any, bounds: tuple[Bound, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = optuna_trial(self, trial_id)
        if ot_trial is not None:
            values = violations(self._bounds, result or {}, real_only=_is_real_only(ot_trial))
            for bound, value in zip(self._bounds, values):
                ot_trial.set_constraint(f"{bound.metric}_{bound.kind}", value)
        super().on_trial_complete(trial_id, result, error)


def _is_real_only(ot_trial: Any) -> bool:
    # The fixed baseline is enqueued with this user attribute (see runner.run_search); searched real-only
    # recipes drew generator "none".
    from ganmix.search.recipe import is_real_only

    return bool(ot_trial.user_attrs.get(BASELINE_ATTR)) or is_real_only(ot_trial.params.get("generator"))
