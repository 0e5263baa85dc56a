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

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # A trial rerun on resume (or after a lost worker) starts again at step 1, which its Optuna trial
        # already holds: Optuna would ignore the value with a warning. The rerun's new steps still count.
        ot_trial = optuna_trial(self, trial_id)
        step = result.get("training_iteration")
        if ot_trial is not None and step is not None and step in _intermediate_values(ot_trial):
            return
        super().on_trial_result(trial_id, result)

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


def _intermediate_values(ot_trial: Any) -> dict[int, float]:
    """The steps an Optuna trial has reported so far, as its study records them."""
    frozen = [t for t in ot_trial.study.get_trials(deepcopy=False) if t.number == ot_trial.number]
    return frozen[0].intermediate_values if frozen else {}
