"""Multi-seed statistics for confirmation: mean and CI per arm, paired differences, a verdict in words.

Everything is scipy: a t interval for an arm's mean, a percentile bootstrap CI of the mean paired
difference, and a two-sided Wilcoxon signed-rank test. Differences are signed by the metric's direction
(from the registry), so positive always means "better than the baseline".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ganmix.models.metrics import metric_info

CONFIDENCE = 0.95
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class MeanCI:
    mean: float
    low: float
    high: float
    sd: float
    n: int


@dataclass(frozen=True)
class Paired:
    """Recipe minus baseline over the seeds both finished, signed so that positive is better."""

    mean: float
    low: float  # bootstrap CI of the mean difference
    high: float
    p_value: float  # Wilcoxon signed-rank, two-sided
    n: int
    wins: int  # seeds where the recipe beat the baseline

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanCI:
    """Mean and Student-t confidence interval; NaN bounds with fewer than two values."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return MeanCI(mean, math.nan, math.nan, math.nan, 1)
    sd = float(x.std(ddof=1))
    if sd == 0:
        return MeanCI(mean, mean, mean, 0.0, n)
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=sd / math.sqrt(n))
    return MeanCI(mean, float(low), float(high), sd, n)


def bootstrap_ci(diffs: Sequence[float], *, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); NaN with fewer than two values."""
    x = np.asarray(diffs, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):  # every resample has the same mean
        return float(x[0]), float(x[0])
    result = stats.bootstrap((x,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is zero, NaN when empty."""
    x = np.asarray(diffs, dtype=float)
    if len(x) == 0:
        return math.nan
    if np.all(x == 0):
        return 1.0
    return float(stats.wilcoxon(x, alternative="two-sided").pvalue)


def paired(values: dict[int, float], baseline: dict[int, float], metric: str, *, seed: int = 0) -> Paired:
    """Compare per-seed `values` with `baseline` (seed -> metric) on the seeds both have."""
    info = metric_info(metric)
    seeds = sorted(s for s in values if s in baseline and math.isfinite(values[s]) and math.isfinite(baseline[s]))
    diffs = [info.lift(values[s], baseline[s]) for s in seeds]
    low, high = bootstrap_ci(diffs, seed=seed)
    return Paired(mean=float(np.mean(diffs)) if diffs else math.nan, low=low, high=high, p_value=wilcoxon_p(diffs),
                  n=len(diffs), wins=sum(d > 0 for d in diffs))


def judgement(result: Paired) -> str:
    if result.n < 2:
        return "not enough seeds to judge"
    if result.significant:
        return "significant improvement" if result.mean > 0 else "significantly worse"
    return "not significant"


def verdict_line(name: str, result: Paired, metric: str) -> str:
    """`acgan r=1.86: +0.028 test AUC over the tuned real-only baseline (95% CI -0.001..+0.055, p=0.08,
    8 seeds): not significant`."""
    label = metric_info(metric).label
    ci = f"95% CI {result.low:+.3f}..{result.high:+.3f}" if math.isfinite(result.low) else "no CI"
    p = f"p={result.p_value:.2g}" if math.isfinite(result.p_value) else "no p-value"
    return (f"{name}: {result.mean:+.3f} {label} over the tuned real-only baseline "
            f"({ci}, {p}, {result.n} seeds, better on {result.wins}): {judgement(result)}")
