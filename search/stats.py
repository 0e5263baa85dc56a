"""Multi-seed statistics for confirmation: mean and CI per arm, paired differences, a verdict in words.

Maintained implementations only: an arm's mean gets a percentile bootstrap interval when its metric lies in
[0, 1] (AUC, accuracy...: the interval then stays inside [min, max] of the seeds, so inside the metric's
range, where a t interval over few seeds does not) and a Student t interval otherwise (loss); the mean
paired difference gets a percentile bootstrap CI and a two-sided Wilcoxon signed-rank test (scipy); the
p-values of a family of comparisons (every arm against the baseline; every generator against its
ablation) are corrected with Holm's step-down method (statsmodels). Differences are signed by the
metric's direction (from the registry), so positive always means "better than the reference".
scipy and statsmodels load on first use: the CLI's seeds check before a search reads this module.

The power of a verdict (statsmodels' TTestPower): the smallest lift a comparison could have detected is
`d * sd`, with `sd` the standard deviation of its paired differences and `d` the effect size at which a
two-sided one-sample t test over its `n` seeds, at level ALPHA / family (the first, strictest step of Holm's
correction), has power POWER; the seeds a measured lift would need solve the same equation for `n`. The
t test stands in for the Wilcoxon test (asymptotic relative efficiency 3/pi = 0.955 under normal
differences, hence "about"); below the Wilcoxon floor (smallest p 2 / 2**n) no lift is detectable at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ganmix.models.numbers import decimals, interval, number
from ganmix.models.metrics import metric_info

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8  # the power a "detectable" lift is detected with
BOOTSTRAP_RESAMPLES = 9999
MAX_SEEDS_ADVICE = 10_000  # past this many seeds, "more than" (the power equation is then flat)


@dataclass(frozen=True)
class MeanCI:
    mean: float
    low: float
    high: float
    sd: float
    n: int


@dataclass(frozen=True)
class Paired:
    """Recipe minus reference over the seeds both finished, signed so that positive is better."""

    mean: float
    low: float  # bootstrap CI of the mean difference
    high: float
    p_value: float  # Wilcoxon signed-rank, two-sided, uncorrected
    n: int
    wins: int  # seeds where the recipe beat the reference
    p_holm: float | None = None  # Holm-corrected over its family of comparisons; None: not corrected
    family: int = 1  # how many comparisons the correction was over
    sd: float = math.nan  # standard deviation of the paired differences (ddof=1): what the power rests on

    @property
    def p(self) -> float:
        """The p-value a decision uses: the corrected one when there is one."""
        return self.p_holm if self.p_holm is not None else self.p_value

    @property
    def significant(self) -> bool:
        return self.p < ALPHA and (self.low > 0 or self.high < 0)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE, *, unit_interval: bool = False) -> MeanCI:
    """Mean and confidence interval; NaN bounds with fewer than two values. A metric in [0, 1]
    (`unit_interval`) gets the percentile bootstrap interval, which never leaves [min, max] of the values;
    others the Student t interval."""
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
    if unit_interval:
        low, high = bootstrap_ci(x, confidence=confidence)
        return MeanCI(mean, low, high, sd, n)
    from scipy import stats

    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=sd / math.sqrt(n))
    return MeanCI(mean, float(low), float(high), sd, n)


def bootstrap_ci(diffs: Sequence[float], *, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); NaN with fewer than two values."""
    x = np.asarray(diffs, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    if np.all(x == x[0]):  # every resample has the same mean
        return float(x[0]), float(x[0])
    from scipy import stats

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
    from scipy import stats

    return float(stats.wilcoxon(x, alternative="two-sided").pvalue)


def paired(values: dict[int, float], baseline: dict[int, float], metric: str, *, seed: int = 0) -> Paired:
    """Compare per-seed `values` with `baseline` (seed -> metric) on the seeds both have."""
    info = metric_info(metric)
    seeds = sorted(s for s in values if s in baseline and math.isfinite(values[s]) and math.isfinite(baseline[s]))
    diffs = [info.lift(values[s], baseline[s]) for s in seeds]
    low, high = bootstrap_ci(diffs, seed=seed)
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
    return Paired(mean=float(np.mean(diffs)) if diffs else math.nan, low=low, high=high, p_value=wilcoxon_p(diffs),
                  n=len(diffs), wins=sum(d > 0 for d in diffs), sd=sd)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-corrected p-values (statsmodels' multipletests, method "holm") over the finite ones; a NaN
    p-value (no paired seed) stays NaN and does not count in the family."""
    from statsmodels.stats.multitest import multipletests

    finite = {k: p for k, p in p_values.items() if math.isfinite(p)}
    out = {k: math.nan for k in p_values}
    if finite:
        corrected = multipletests(list(finite.values()), alpha=ALPHA, method="holm")[1]
        out.update({k: float(p) for k, p in zip(finite, corrected)})
    return out


def corrected(results: Mapping[str, Paired]) -> dict[str, Paired]:
    """The same comparisons with their Holm-corrected p-values attached (one family)."""
    adjusted = holm({k: r.p_value for k, r in results.items()})
    family = sum(math.isfinite(r.p_value) for r in results.values())
    return {k: dataclasses.replace(r, p_holm=adjusted[k], family=family) for k, r in results.items()}


def min_seeds_for_significance(family: int) -> int:
    """The fewest seeds with which a two-sided exact Wilcoxon test (smallest p: 2 / 2**n, every seed on one
    side) can still pass ALPHA after Holm's correction over `family` comparisons (smallest p times family)."""
    n = 1
    while 2.0 / 2**n * max(1, family) >= ALPHA:
        n += 1
    return n


def detectable_lift(sd: float, n: int, family: int = 1) -> float | None:
    """The smallest lift (in the metric's units) that `n` paired seeds with differences of standard
    deviation `sd` detect with power POWER at level ALPHA / family; None when none is detectable: fewer
    than two seeds, no finite sd, or too few seeds for the Wilcoxon test to reach ALPHA after Holm."""
    if n < 2 or not math.isfinite(sd) or n < min_seeds_for_significance(family):
        return None
    if sd == 0:
        return 0.0
    from statsmodels.stats.power import TTestPower

    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=ALPHA / max(1, family), power=POWER,
                                 alternative="two-sided")
    return float(d) * sd


def seeds_needed(lift: float, sd: float, family: int = 1) -> int | None:
    """About how many paired seeds detect `lift` with power POWER at ALPHA / family, given differences of
    standard deviation `sd`; never fewer than the Wilcoxon floor. None: more than MAX_SEEDS_ADVICE (or no
    lift to detect)."""
    floor = min_seeds_for_significance(family)
    if not (math.isfinite(lift) and math.isfinite(sd)) or lift == 0:
        return None
    if sd == 0:
        return floor
    from statsmodels.stats.power import TTestPower

    effect = abs(lift) / sd
    power = TTestPower()
    alpha = ALPHA / max(1, family)

    def power_at(n: int) -> float:
        value = float(power.power(effect_size=effect, nobs=n, alpha=alpha, alternative="two-sided"))
        # A large effect makes statsmodels' far lower tail NaN (noncentral t); the upper tail is all of it.
        return value if math.isfinite(value) else float(power.power(effect_size=effect, nobs=n, alpha=alpha / 2,
                                                                     alternative="larger"))

    if power_at(floor) >= POWER:
        return floor  # the Wilcoxon floor binds, not the power (and the solver would look below it)
    if power_at(MAX_SEEDS_ADVICE) < POWER:
        return None
    n = power.solve_power(effect_size=effect, nobs=None, alpha=alpha, power=POWER, alternative="two-sided")
    return max(floor, math.ceil(float(np.asarray(n).item()))) if math.isfinite(float(np.asarray(n).item())) else None


def power_text(result: Paired, metric: str) -> str:
    """What the comparison could have seen, in words: `no lift >= 0.011 test AUC at 80% power; the measured
    +0.004 would need about 14 seeds`, or `no lift is detectable with 5 seeds (Holm over 4 needs 8)`."""
    label = metric_info(metric).label
    floor = min_seeds_for_significance(result.family)
    if result.n < floor:
        return (f"no lift is detectable with {result.n} seeds (a two-sided Wilcoxon test after Holm over "
                f"{result.family} needs >= {floor})")
    lift = detectable_lift(result.sd, result.n, result.family)
    if lift is None:
        return "no detectable lift (no spread of the paired differences)"
    text = f"no lift >= {number(lift)} {label} at {POWER:.0%} power"
    if result.significant:
        return f"it could detect lifts >= {number(lift)} {label} at {POWER:.0%} power"
    if math.isfinite(result.mean) and 0 < abs(result.mean) < lift:
        needed = seeds_needed(result.mean, result.sd, result.family)
        text += (f"; the measured {result.mean:+.3f} would need about {needed} seeds" if needed is not None
                 else f"; the measured {result.mean:+.3f} would need more than {MAX_SEEDS_ADVICE} seeds")
    return text


def seeds_check(seeds: int, family: int) -> str | None:
    """None when `seeds` can reach significance over `family` comparisons; else the one line that says so."""
    needed = min_seeds_for_significance(family)
    if seeds >= needed:
        return None
    return (f"{seeds} seeds cannot reach p < {ALPHA} with a two-sided Wilcoxon test after Holm's correction over "
            f"{family} comparison(s) (smallest p: 2/2^{seeds} x {family} = {2 / 2**seeds * family:.3g}); use "
            f"--seeds {needed} or more")


def judgement(result: Paired) -> str:
    if result.n < 2:
        return "not enough seeds to judge"
    if result.significant:
        return "significant improvement" if result.mean > 0 else "significantly worse"
    return "not significant"


BASELINE = "the tuned real-only baseline"
ABLATION = "the same recipe without its generator"


def p_text(result: Paired) -> str:
    """`p=0.031, Holm p=0.094 over 3`, or `p=0.031` for a single comparison."""
    if not math.isfinite(result.p_value):
        return "no p-value"
    text = f"p={result.p_value:.2g}"
    if result.p_holm is not None and result.family > 1 and math.isfinite(result.p_holm):
        text += f", Holm p={result.p_holm:.2g} over {result.family}"
    return text


def verdict_line(name: str, result: Paired, metric: str, *, against: str = BASELINE) -> str:
    """`acgan r=1.86: +0.028 test AUC over the tuned real-only baseline (95% CI -0.001..+0.055, p=0.031,
    Holm p=0.094 over 3, 8 seeds, better on 7): not significant; no lift >= 0.031 test AUC at 80% power;
    the measured +0.028 would need about 10 seeds`."""
    label = metric_info(metric).label
    places = decimals(result.mean, result.low, result.high)  # models/numbers.py: the CI shows around the mean
    ci = f"95% CI {interval(result.low, result.high, places, signed=True)}" if math.isfinite(result.low) else "no CI"
    line = (f"{name}: {number(result.mean, places, signed=True)} {label} over {against} "
            f"({ci}, {p_text(result)}, {result.n} seeds, better on {result.wins}): {judgement(result)}")
    return line + (f"; {power_text(result, metric)}" if result.n >= 2 else "")
