"""Fair early stopping: one set of ASHA rungs per arm kind, so real-only and generator recipes are each
compared with their own kind, and each kind keeps finalists that run to the end.

One shared ASHA judged generator trials where they are most behind (the generator trains before the first
report, synthetic images take the place of real ones in each pass) against real-only trials that reached
the rungs first: on scarce breastmnist it stopped every generator trial. Here a trial joins the rungs of
its arm kind (`arm_kind`), each an unmodified Ray `ASHAScheduler` driven through Tune's public scheduler
API; only the routing is new.

Arm kinds are "real-only" and "generator" (all generator recipes together), not one per generator family:
at ganmix's budgets (8-48 trials, 4-5 families and `none`) a family gets 2-6 trials, and ASHA promotes whoever reaches
an empty rung first, so per-family rungs would stop almost nothing (README, "Early stopping and the searcher").
"""

from __future__ import annotations

import math
import pickle
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from ganmix.search.progress import ARM_OUTCOMES as OUTCOMES, SearchProgress, arms_line
from ganmix.tracking import runs

REAL_ONLY_ARM = "real-only"
GENERATOR_ARM = "generator"
ARMS = (REAL_ONLY_ARM, GENERATOR_ARM)
# Parent-run tags: per arm kind, trials that ran to the end and trials stopped early; one readable summary.
ARM_TAG = "ganmix.arm.{arm}.{outcome}"
ARMS_TAG = "ganmix.arms"


def arm_kind(config: Mapping[str, Any]) -> str:
    """A trial's arm kind, from its Tune config (the enqueued baseline is real-only)."""
    from ganmix.search.recipe import is_real_only

    if config.get("baseline") or is_real_only(config.get("generator"), config.get("synthetic_ratio")):
        return REAL_ONLY_ARM
    return GENERATOR_ARM


def ran_to_end(config: Mapping[str, Any], result: Mapping[str, Any] | None) -> bool:
    """The trial reported its last classifier epoch (the scheduler may stop it inside that report: it still
    ran to the end). A result without `epoch` never came from ganmix's trial: treated as complete."""
    epoch = (result or {}).get("epoch")
    wanted = config.get("classifier_epochs")
    if epoch is None or wanted is None:
        return bool(result)
    return int(epoch) >= int(wanted)


def config_of(flat_result: Mapping[str, Any]) -> dict[str, Any]:
    """The trial config inside a flattened Tune result (Tune adds it as `config/<key>`)."""
    return {key[len("config/"):]: value for key, value in flat_result.items() if key.startswith("config/")}


class ArmASHAScheduler(FIFOScheduler):
    """Ray's ASHAScheduler, one instance (one set of rungs) per arm kind; every call is routed to the arm of
    the trial it is about. Keyword-only, as ASHAScheduler's own arguments."""

    def __init__(self, *, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: int, grace_period: int, reduction_factor: float) -> None:
        super().__init__()
        self._asha_args = {"time_attr": time_attr, "max_t": max_t, "grace_period": grace_period,
                           "reduction_factor": reduction_factor}
        self._metric, self._mode = metric, mode
        self._arms: dict[str, ASHAScheduler] = {}
        self._arm_of: dict[str, str] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False  # set twice: Tune then reports the conflict, as it does for ASHAScheduler
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return all(arm.set_search_properties(metric, mode, **spec) for arm in self._arms.values())

    def arm(self, name: str) -> ASHAScheduler:
        """The rungs of one arm kind (made on its first trial)."""
        if name not in self._arms:
            self._arms[name] = ASHAScheduler(metric=self._metric, mode=self._mode, **self._asha_args)
        return self._arms[name]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        name = arm_kind(trial.config)
        self._arm_of[trial.trial_id] = name
        self.arm(name).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._routed(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._routed(trial).on_trial_complete(tune_controller, trial, result)
        self._arm_of.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._routed(trial).on_trial_remove(tune_controller, trial)
        self._arm_of.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._routed(trial).on_trial_error(tune_controller, trial)

    def _routed(self, trial: Any) -> ASHAScheduler:
        name = self._arm_of.get(trial.trial_id)
        if name is None:  # a trial Tune re-adds after a restore goes through on_trial_add first; be safe anyway
            name = self._arm_of[trial.trial_id] = arm_kind(trial.config)
            self.arm(name).on_trial_add(None, trial)
        return self._arms[name]

    def debug_string(self) -> str:
        return "\n".join(f"{name}: {asha.debug_string()}" for name, asha in self._arms.items()) or "no trials yet"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))


class ArmTally(Callback):
    """Driver-side count, per arm kind, of trials that ran to the end, were stopped early or failed: on the
    console (SearchProgress.arm_finished) and on the parent run (ARM_TAG tags and the ARMS_TAG line)."""

    def __init__(self, *, parent: runs.RunLogger | None = None, progress: SearchProgress | None = None) -> None:
        self.parent, self.progress = parent, progress
        self.counts: Counter[tuple[str, str]] = Counter()

    def resume_from(self, parent_run: Any) -> None:
        """Carry on from an interrupted search's counts (its parent run's tags)."""
        for arm in ARMS:
            for outcome in OUTCOMES:
                value = parent_run.data.tags.get(ARM_TAG.format(arm=arm, outcome=outcome))
                if value is not None and value.isdigit():
                    self.counts[arm, outcome] = int(value)
        if self.progress is not None:
            self.progress.resume_arms(dict(self.counts))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        done = ran_to_end(trial.config, trial.last_result)
        self._count(arm_kind(trial.config), "completed" if done else "stopped_early")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._count(arm_kind(trial.config), "failed")

    def _count(self, arm: str, outcome: str) -> None:
        self.counts[arm, outcome] += 1
        if self.progress is not None:
            self.progress.arm_finished(arm, outcome)
        if self.parent is not None:
            self.parent.set_tags({ARM_TAG.format(arm=arm, outcome=outcome): str(self.counts[arm, outcome]),
                                  ARMS_TAG: arms_line(self.counts)})


def grace_for(max_t: int, grace_period: int | None, reduction_factor: float = 3) -> int:
    """ASHA's first rung: the spec's, else max_t / reduction_factor rounded up (at least 2), never above
    max_t. That default leaves ASHA one rung that stops trials (the next would be at max_t or beyond), so
    the best 1/reduction_factor of each arm kind's trials at that rung (a third by default) run to the end;
    a second rung would let only a ninth finish."""
    grace = grace_period if grace_period is not None else max(2, math.ceil(max_t / reduction_factor))
    return max(1, min(grace, max_t))

