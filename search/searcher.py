"""Ray's OptunaSearch, told the truth about early-stopped trials and about sample-metric constraints, and the
TPE sampler sized to the search's budget."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from ganmix.search.constraints import Bound, violations
from ganmix.search.ray_internals import optuna_trial
from ganmix.search.scheduler import config_of, ran_to_end
from ganmix.search.space import BASELINE_ATTR

# Never fewer random trials than this (the enqueued baseline counts as one): TPE needs a few finished trials
# of more than one arm kind before its good/bad split says anything.
MIN_STARTUP_TRIALS = 3
# Optuna's own default; a larger budget keeps it rather than spending a quarter of its trials at random.
MAX_STARTUP_TRIALS = 10
# At least this share of a search's trials are real-only (the fixed baseline counts) where `none` is a choice:
# a lift measured against a real-only arm that was never tuned comes from tuning one arm only. With 1 of 6
# `generator` choices real-only, TPE drew no real-only recipe besides the baseline in 16 trials (README).
MIN_REAL_ONLY_SHARE = 0.25


def startup_trials(trials: int) -> int:
    """Random trials before TPE takes over: a quarter of the budget, within [MIN_, MAX_STARTUP_TRIALS].

    Optuna's fixed default (10) made the 8-trial demo pure random search and left 2-6 guided trials of the
    12-16-trial CPU runs; a quarter gives the demo 5 guided trials and measured best (README, "Benchmark")."""
    return max(MIN_STARTUP_TRIALS, min(MAX_STARTUP_TRIALS, trials // 4))


def make_sampler(*, trials: int, seed: int | None) -> optuna.samplers.TPESampler:
    """TPE for ganmix's conditional space: multivariate, with `group` so each generator family's options are
    modelled only with the trials that drew that family; startup scaled to the budget; seeded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate/group
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials), multivariate=True,
                                          group=True)


def real_only_share(spec: Any) -> float:
    """MIN_REAL_ONLY_SHARE where the spec searches `generator` with `none` among its choices, else 0 (a fixed
    generator, or choices without `none`: no real-only trial but the baseline is possible)."""
    from ganmix.models.choices import NO_GENERATOR
    from ganmix.search.space import CategoricalDim

    dim = spec.space.get("generator")
    return MIN_REAL_ONLY_SHARE if isinstance(dim, CategoricalDim) and NO_GENERATOR in dim.choices else 0.0


class ConstrainedOptunaSearch(OptunaSearch):
    """OptunaSearch that records each trial's constraint violations before telling Optuna, and tells an
    early-stopped trial as PRUNED (its last value as the intermediate value of its last step), not COMPLETE.

    Ray tells Optuna COMPLETE with whatever the trial last reported, so TPE would rank a trial stopped at the
    first rung by its partial value as if it were final. Optuna's TPE ranks pruned trials after complete ones
    (by how far they got, then their last value), and its importance and history plots use complete trials."""

    def __init__(self, *args: Any, bounds: tuple[Bound, ...] = (), real_only_share: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = bounds
        self._real_only_share = real_only_share

    def suggest(self, trial_id: str) -> dict | None:
        """Ray's suggest, after enqueueing a real-only trial (`generator: none`, the rest drawn by the sampler)
        whenever the real-only trials asked so far fall below `real_only_share` of the trials asked, this one
        included: the real-only arm is tuned beside the generator arm, interleaved, whatever TPE prefers."""
        study = getattr(self, "_ot_study", None)
        if self._real_only_share > 0 and study is not None:
            from ganmix.models.choices import NO_GENERATOR

            trials = study.get_trials(deepcopy=False)
            if not any(t.state == optuna.trial.TrialState.WAITING for t in trials):  # none enqueued already
                real_only = sum(_is_real_only(t) for t in trials)
                if real_only < math.ceil((len(trials) + 1) * self._real_only_share):
                    study.enqueue_trial({"generator": NO_GENERATOR})
        return super().suggest(trial_id)

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
        if ot_trial is not None and result and not error and not ran_to_end(config_of(result), result):
            self._report_last(ot_trial, result)
            # No result: Ray's OptunaSearch then tells Optuna PRUNED, and Optuna takes the last intermediate
            # value as the trial's value.
            super().on_trial_complete(trial_id, None, False)
            return
        super().on_trial_complete(trial_id, result, error)

    def _report_last(self, ot_trial: Any, result: dict) -> None:
        """The value the scheduler stopped the trial on: Tune does not pass a stopping result to
        on_trial_result, so Optuna has not seen it yet."""
        value, step = result.get(self.metric), result.get("training_iteration")
        if not isinstance(value, (int, float)) or not math.isfinite(value) or step is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a step reported already (a restored trial) is ignored, as it should
            ot_trial.report(float(value), int(step))


def _is_real_only(ot_trial: Any) -> bool:
    # The fixed baseline is enqueued with this user attribute (see runner.run_search); searched real-only
    # recipes drew generator "none".
    from ganmix.search.recipe import is_real_only

    return bool(ot_trial.user_attrs.get(BASELINE_ATTR)) or is_real_only(ot_trial.params.get("generator"))


def _intermediate_values(ot_trial: Any) -> dict[int, float]:
    """The steps an Optuna trial has reported so far, as its study records them."""
    frozen = [t for t in ot_trial.study.get_trials(deepcopy=False) if t.number == ot_trial.number]
    return frozen[0].intermediate_values if frozen else {}
