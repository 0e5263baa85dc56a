"""Confirmation statistics against scipy on known inputs, and the metric registry's directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ganmix.search import stats
from ganmix.models.metrics import SEARCHABLE, MetricError, confirming_metric, metric_info, selection_metric


def test_mean_ci_is_the_student_t_interval() -> None:
    values = [0.86, 0.88, 0.91, 0.87, 0.90]
    got = stats.mean_ci(values)
    low, high = sps.t.interval(0.95, df=4, loc=np.mean(values), scale=sps.sem(values))
    assert got.mean == pytest.approx(0.884) and got.n == 5
    assert (got.low, got.high) == pytest.approx((low, high))
    assert math.isnan(stats.mean_ci([0.9]).low) and stats.mean_ci([]).n == 0


def test_an_auc_interval_never_leaves_zero_one() -> None:
    # Two seeds near the top: the old t interval (df=1) gave .788..1.009, past the metric's range.
    wide = stats.mean_ci([0.8898, 0.9072])
    assert wide.high > 1.0  # the t interval, still used for unbounded metrics such as the loss
    auc = stats.mean_ci([0.8898, 0.9072], unit_interval=True)
    assert 0.8898 <= auc.low <= auc.mean <= auc.high <= 0.9072
    rng = np.random.default_rng(0)
    for n in range(2, 9):
        for _ in range(30):
            values = np.clip(rng.choice([1.0, 0.0, 0.5]) + rng.normal(0, 0.2, n), 0, 1)
            got = stats.mean_ci(values, unit_interval=True)
            assert 0.0 <= got.low <= got.mean <= got.high <= 1.0, (values, got)
    assert stats.mean_ci([1.0, 1.0, 0.99], unit_interval=True).high == 1.0
    assert metric_info("test_auc").unit_interval and metric_info("test_recall_malignant").unit_interval
    assert not metric_info("test_loss").unit_interval


def test_holm_against_a_hand_checked_example() -> None:
    # Holm: sort p ascending, multiply the i-th smallest (from 0) by (m - i), keep the running maximum, cap at 1.
    # 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    got = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert got == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert stats.holm({"a": 0.4, "b": 0.9}) == pytest.approx({"a": 0.8, "b": 0.9})
    nan = stats.holm({"a": 0.02, "b": math.nan})  # no paired seed: not in the family
    assert nan["a"] == pytest.approx(0.02) and math.isnan(nan["b"])


def test_the_corrected_p_decides_and_is_in_the_verdict() -> None:
    six = {s: 0.9 for s in range(6)}
    better = {s: 0.9 + 0.01 * (s + 1) for s in range(6)}
    alone = stats.corrected({"top1": stats.paired(better, six, "test_auc")})["top1"]
    assert alone.p_holm == pytest.approx(0.03125) and alone.significant
    family = stats.corrected({k: stats.paired(better, six, "test_auc") for k in ("top1", "top2", "gan")})
    assert family["top1"].p_holm == pytest.approx(3 * 0.03125) and not family["top1"].significant
    line = stats.verdict_line("acgan r=1.00", family["top1"], "test_auc")
    assert "p=0.031, Holm p=0.094 over 3, 6 seeds, better on 6): not significant" in line
    # Exact two-sided Wilcoxon: smallest p is 2/2**n; Holm multiplies it by the family size.
    assert [stats.min_seeds_for_significance(m) for m in (1, 2, 3, 4)] == [6, 7, 7, 8]


def test_wilcoxon_matches_scipy_and_known_exact_values() -> None:
    diffs = [0.03, 0.01, -0.005, 0.02, 0.04, 0.015, 0.025, -0.01]
    assert stats.wilcoxon_p(diffs) == pytest.approx(sps.wilcoxon(diffs).pvalue)
    # Exact two-sided p for n all-positive differences is 2 / 2**n: 0.0625 for 5 seeds, 0.03125 for 6.
    assert stats.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)
    assert stats.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(0.03125)
    assert stats.wilcoxon_p([0.0, 0.0]) == 1.0


def test_bootstrap_ci_matches_scipy_with_the_same_rng() -> None:
    diffs = [0.03, 0.01, -0.005, 0.02, 0.04, 0.015]
    expected = sps.bootstrap((np.array(diffs),), np.mean, n_resamples=9999, method="percentile",
                             rng=np.random.default_rng(7)).confidence_interval
    assert stats.bootstrap_ci(diffs, seed=7) == pytest.approx((expected.low, expected.high))
    low, high = stats.bootstrap_ci(diffs)
    assert min(diffs) <= low < np.mean(diffs) < high <= max(diffs)
    assert stats.bootstrap_ci([0.02, 0.02]) == (0.02, 0.02)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([0.1]))


def test_paired_differences_are_signed_by_the_metric_direction() -> None:
    baseline = {1: 0.50, 2: 0.40, 3: 0.45}
    lower_loss = {1: 0.30, 2: 0.35, 3: 0.20}
    result = stats.paired(lower_loss, baseline, "test_loss")
    assert result.mean == pytest.approx(np.mean([0.2, 0.05, 0.25])) and result.wins == 3  # lower loss is better
    higher_auc = stats.paired({1: 0.9, 2: 0.8}, {1: 0.85, 2: 0.82, 3: 0.9}, "test_auc")
    assert higher_auc.n == 2 and higher_auc.mean == pytest.approx(0.015)  # only seeds both arms finished


def test_verdict_says_significant_only_when_it_is() -> None:
    six = {s: 0.9 for s in range(6)}
    better = {s: 0.9 + 0.01 * (s + 1) for s in range(6)}
    sig = stats.paired(better, six, "test_auc")
    assert sig.significant and "significant improvement" in stats.verdict_line("acgan r=1.00", sig, "test_auc")
    five = stats.paired({s: better[s] for s in range(5)}, six, "test_auc")
    assert not five.significant  # 5 seeds cannot reach p < 0.05 with a two-sided Wilcoxon test
    line = stats.verdict_line("acgan r=1.00", five, "test_auc")
    assert line.startswith("acgan r=1.00: +0.030 test AUC over the tuned real-only baseline (95% CI +0.0")
    assert "p=0.062, 5 seeds, better on 5): not significant" in line


def test_registry_directions_lifts_and_counterparts() -> None:
    assert metric_info("val_loss").lift(0.3, 0.5) == pytest.approx(0.2)  # lower loss: a positive lift
    assert metric_info("val_auc").lift(0.8, 0.9) == pytest.approx(-0.1)
    assert metric_info("fid").better(10.0, 20.0) and not metric_info("precision").better(0.1, 0.2)
    assert metric_info("val_recall_malignant").mode == "max"
    assert confirming_metric("val_balanced_acc") == "test_balanced_acc" and confirming_metric("fid") == "test_auc"
    assert selection_metric("fid") == "val_auc" and selection_metric("val_loss") == "val_loss"
    assert not any(name.startswith("test_") for name in SEARCHABLE)
    with pytest.raises(MetricError, match="unknown metric 'val_accuracy'"):
        metric_info("val_accuracy")


def test_detectable_lift_against_a_hand_checked_example() -> None:
    # 8 seeds, one comparison, alpha 0.05 two-sided, power 0.8. By hand with t quantiles (7 df):
    # d ~ (t_0.975 + t_0.80) / sqrt(8) = (2.3646 + 0.8960) / 2.8284 = 1.153; the exact noncentral-t answer
    # (scipy.stats.nct, solved independently below) is 1.156. Paired differences with sd 0.010: 0.0116.
    assert sps.t.ppf(0.975, 7) == pytest.approx(2.3646, abs=1e-4) and sps.t.ppf(0.8, 7) == pytest.approx(0.8960, abs=1e-4)
    by_hand = (sps.t.ppf(0.975, 7) + sps.t.ppf(0.8, 7)) / math.sqrt(8)
    assert by_hand == pytest.approx(1.153, abs=1e-3)

    def power(d: float, n: int, alpha: float) -> float:
        t = sps.t.ppf(1 - alpha / 2, n - 1)
        return sps.nct.sf(t, n - 1, d * math.sqrt(n)) + np.nan_to_num(sps.nct.cdf(-t, n - 1, d * math.sqrt(n)))

    from scipy.optimize import brentq

    exact = brentq(lambda d: power(d, 8, 0.05) - 0.8, 0.1, 2)
    assert exact == pytest.approx(1.156, abs=1e-3)
    assert stats.detectable_lift(0.010, 8, 1) == pytest.approx(0.01156, abs=1e-5)
    # After Holm over 2 the first step tests at 0.025: a larger lift (exact d at alpha 0.025, 10 seeds).
    over_two = brentq(lambda d: power(d, 10, 0.025) - 0.8, 0.1, 2)
    assert stats.detectable_lift(0.010, 10, 2) == pytest.approx(over_two * 0.010, rel=1e-4)
    # The Wilcoxon floor: 5 seeds can never reach 0.05 (smallest p 2/2**5 = 0.0625): nothing detectable.
    assert stats.detectable_lift(0.010, 5, 1) is None and stats.detectable_lift(0.010, 7, 4) is None
    # Seeds a measured lift would need: the smallest n whose power at that lift reaches 0.8.
    needed = stats.seeds_needed(0.004, 0.010, 1)
    assert power(0.4, needed, 0.05) >= 0.8 > power(0.4, needed - 1, 0.05)
    assert stats.seeds_needed(0.05, 0.010, 4) == stats.min_seeds_for_significance(4)  # never below the floor
    assert stats.seeds_needed(1e-7, 0.010, 1) is None  # past MAX_SEEDS_ADVICE


def test_every_verdict_line_states_what_it_could_have_detected() -> None:
    base = {s: 0.9 for s in range(8)}
    noisy = {s: 0.9 + 0.002 + 0.01 * ((-1) ** s) for s in range(8)}  # a small lift under a lot of noise
    result = stats.corrected({"top1": stats.paired(noisy, base, "test_auc")})["top1"]
    line = stats.verdict_line("acgan", result, "test_auc")
    lift = stats.detectable_lift(result.sd, 8, 1)
    assert f"not significant; no lift >= {lift:.3f} test AUC at 80% power; the measured +0.002 would need about " \
           f"{stats.seeds_needed(0.002, result.sd, 1)} seeds" in line
    five = stats.corrected({k: stats.paired({s: noisy[s] for s in range(5)}, base, "test_auc") for k in "ab"})["a"]
    assert "no lift is detectable with 5 seeds (a two-sided Wilcoxon test after Holm over 2 needs >= 7)" in \
        stats.verdict_line("acgan", five, "test_auc")
    better = {s: 0.9 + 0.01 * (s + 1) for s in range(8)}
    sig = stats.corrected({"top1": stats.paired(better, base, "test_auc")})["top1"]
    assert sig.significant and "significant improvement; it could detect lifts >= " in \
        stats.verdict_line("acgan", sig, "test_auc")
    assert stats.seeds_check(8, 4) is None
    assert stats.seeds_check(5, 4) == ("5 seeds cannot reach p < 0.05 with a two-sided Wilcoxon test after Holm's "
                                       "correction over 4 comparison(s) (smallest p: 2/2^5 x 4 = 0.25); use --seeds 8 "
                                       "or more")
