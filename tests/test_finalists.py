"""The finalists stage's choice of trials and the order their seeds are handed out (search/finalists.py)."""

from __future__ import annotations

from ganmix.search.finalists import dispatch_order, pick
from ganmix.tracking.query import TrialSummary


def summary(name: str, value: float, *, generator: str, completed: bool = True) -> TrialSummary:
    return TrialSummary(run_id=name, trial_id=f"t-{name}", name=name, status="FINISHED", completed=completed,
                        baseline=False, early_stopped=not completed, feasible=True, metrics={"val_auc": value},
                        params={"generator": generator})


TRIALS = [
    summary("real-a", 0.93, generator="none"),
    summary("acgan-a", 0.95, generator="acgan"),
    summary("real-b", 0.94, generator="none"),
    summary("dcgan-a", 0.90, generator="dcgan"),
    summary("cvae-a", 0.92, generator="cvae"),
]


def test_the_best_of_each_kind_are_picked_real_only_first():
    assert [s.name for s in pick(TRIALS, "val_auc", 2)] == ["real-b", "real-a", "acgan-a", "cvae-a"]


def test_recipes_with_a_generator_are_handed_out_first_each_kind_in_its_ranking_order():
    # The longer seeds first (a generator trained before the same classifier), so the slots end together.
    order = dispatch_order(pick(TRIALS, "val_auc", 2))
    assert [s.name for s in order] == ["acgan-a", "cvae-a", "real-b", "real-a"]
