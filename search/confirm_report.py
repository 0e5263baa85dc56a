"""What `ganmix confirm` reports: the console table, the confirmation run's arms table and description, and
the confirmed answer on the search's own run (its row's metrics and tags, the lead of its description).

Pure functions of a Confirmation (search/confirm.py), so they are unit-testable without running an arm.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ganmix.models.metrics import metric_info
from ganmix.models.numbers import decimals, interval, number, rounded
from ganmix.search.stats import Paired, detectable_lift, min_seeds_for_significance, p_text, \
    seeds_needed
from ganmix.tracking import confirmation as tracking
from ganmix.tracking.describe import TUNED_BASELINE, lift_metric, run_link

if TYPE_CHECKING:
    from ganmix.search.confirm import Arm, Confirmation


def arm_rows(outcome: Confirmation) -> list[dict[str, Any]]:
    """The arms table (MLflow log_table): per arm its mean and CI, its difference from the tuned baseline
    and, for a GAN arm, from its ablation (the generator's own effect), each with raw and Holm p."""
    rows = []
    for arm in outcome.arms:
        stats = outcome.per_arm[arm.key]
        row: dict[str, Any] = {"arm": arm.key, "role": role(outcome, arm), "recipe": arm.name,
                               "search_val": arm.val, "trial_run_id": arm.trial_run_id,
                               f"{outcome.metric}_mean": stats.mean, "ci_low": stats.low, "ci_high": stats.high,
                               "n": stats.n}
        for prefix, comp in (("vs_real_only", outcome.comparisons.get(arm.key)),
                             ("generator_effect", outcome.effects.get(arm.key))):
            row.update({prefix: comp.mean if comp else None, f"{prefix}_ci_low": comp.low if comp else None,
                        f"{prefix}_ci_high": comp.high if comp else None,
                        f"{prefix}_p": comp.p_value if comp else None,
                        f"{prefix}_p_holm": comp.p_holm if comp else None,
                        f"{prefix}_detectable": _detectable(comp), f"{prefix}_seeds_needed": _needed(comp)})
        row["ablation_arm"] = outcome.ablations.get(arm.key)
        row.update({f"{k}_mean": v for k, v in decision_means(outcome, arm.key).items()})
        rows.append(row)
    return rows


def _detectable(comp: Paired | None) -> float | None:
    """The smallest lift the comparison could have detected (search/stats.py); None: none at its seeds."""
    return detectable_lift(comp.sd, comp.n, comp.family) if comp is not None else None


def _needed(comp: Paired | None) -> int | None:
    """About how many seeds its measured difference would need to be detected (None: unknown or too many)."""
    if comp is None or not math.isfinite(comp.mean):
        return None
    return seeds_needed(comp.mean, comp.sd, comp.family)


def power_cell(comp: Paired | None) -> str:
    """`>= 0.0110`, `none at 5 seeds`, or `-` (no comparison)."""
    if comp is None:
        return "-"
    lift = _detectable(comp)
    return f">= {number(lift)}" if lift is not None else f"none at {comp.n} seeds"


def role(outcome: Confirmation, arm: Arm) -> str:
    """What an arm is there for, in words."""
    twins = [k for k, v in outcome.ablations.items() if v == arm.key]
    if arm.ablation:
        return "ablation of " + ", ".join(twins)
    kind = ("tuned real-only baseline" if arm.baseline else "real-only" if arm.recipe.real_only
            else "positive control" if arm.recipe.control else "GAN")
    return kind + (f"; ablation of {', '.join(twins)}" if twins else "")


def table(outcome: Confirmation) -> list[str]:
    """Console lines: per arm the mean and 95% CI of the confirming metric, then the verdicts."""
    places = _places(outcome)
    width = max(13, 2 * places + 6)
    out = [f"{'arm':<14} {'recipe':<36} {outcome.metric + ' mean':>14} {'95% CI':>{width}} {'seeds':>5}  role"]
    for arm in outcome.arms:
        s = outcome.per_arm[arm.key]
        ci = interval(s.low, s.high, places)
        at = decision_text(outcome, arm.key)
        out.append(f"{arm.key:<14} {arm.name[:36]:<36} {number(s.mean, places):>14} {ci:>{width}} {s.n:>5}  "
                   f"{role(outcome, arm)}" + (f"; {at}" if at else ""))
    return out


def _places(outcome: Confirmation) -> int:
    """One number of decimals for every arm's mean and CI (models/numbers.py's rule)."""
    return decimals(*(v for s in outcome.per_arm.values() for v in (s.mean, s.low, s.high)))


def _diff_cells(comp: Paired | None) -> str:
    if comp is None:
        return "- | - | - | -"
    places = decimals(comp.mean, comp.low, comp.high)
    return f"{number(comp.mean, places, signed=True)} | {interval(comp.low, comp.high, places, signed=True)} | " \
           f"{p_text(comp)} | {power_cell(comp)}"


def describe(outcome: Confirmation, search_name: str) -> str:
    """Markdown for the confirmation run's description in the MLflow UI."""
    lines = [f"**{outcome.verdict}**", "",
             f"Search `{search_name}`, {len(outcome.seeds)} seeds ({', '.join(map(str, outcome.seeds))}), "
             f"paired by seed. *vs real-only*: difference from the tuned real-only baseline; *generator*: "
             f"difference from the arm's ablation (the same recipe with `generator: none`), the generator's own "
             f"effect. Positive is better; p: two-sided Wilcoxon, Holm-corrected within each column; *detectable*: "
             f"the smallest lift the comparison could have detected (80% power, at its seeds, after Holm).", "",
             f"| arm | role | recipe | {outcome.metric} mean | 95% CI | vs real-only | 95% CI | p | detectable | "
             "generator | 95% CI | p | detectable | at the val-chosen threshold (test, mean) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    places = _places(outcome)
    for arm in outcome.arms:
        s = outcome.per_arm[arm.key]
        lines.append(f"| {arm.key} | {role(outcome, arm)} | {recipe_cell(arm)} | {number(s.mean, places)} | "
                     f"{interval(s.low, s.high, places)} | "
                     f"{_diff_cells(outcome.comparisons.get(arm.key))} | {_diff_cells(outcome.effects.get(arm.key))} | "
                     f"{decision_text(outcome, arm.key) or '-'} |")
    needed = min_seeds_for_significance(outcome.family)
    if len(outcome.seeds) < needed:
        lines += ["", f"With {len(outcome.seeds)} seeds and {outcome.family} arm(s) compared with the baseline, a "
                      f"two-sided Wilcoxon test cannot reach p < 0.05 after Holm's correction: use --seeds {needed} "
                      "or more for a significance claim."]
    if outcome.resample_data:
        lines += ["", RESAMPLED]
    return "\n".join(lines)


RESAMPLED = ("Each seed drew its own train subsample (--resample-data): the intervals include which images the "
             "scarcity settings kept.")


def diff_text(comp: Paired | None) -> str:
    """`+0.0040 (95% CI -0.0100..+0.0200, Holm p=0.6)`."""
    if comp is None or not math.isfinite(comp.mean):
        return "unknown"
    places = decimals(comp.mean, comp.low, comp.high)
    ci = f"95% CI {interval(comp.low, comp.high, places, signed=True)}, " if math.isfinite(comp.low) else ""
    p = f"{'Holm ' if comp.family > 1 else ''}p={comp.p:.2g}" if math.isfinite(comp.p) else "no p-value"
    lift = _detectable(comp)
    power = f"detectable >= {number(lift)}" if lift is not None else f"nothing detectable at {comp.n} seeds"
    return f"{number(comp.mean, places, signed=True)} ({ci}{p}; {power})"


def search_answer(outcome: Confirmation, objective: str) -> tuple[dict[str, float], dict[str, str]]:
    """What the search's own row shows once confirmed: the verdict's arm's objective (its search value),
    its mean confirming metric, its lift over the tuned baseline; the verdict with the lift's CI as a tag."""
    arm = next(a for a in outcome.arms if a.key == outcome.best)
    comp, effect = outcome.comparisons.get(arm.key), outcome.effects.get(arm.key)
    # Rounded as the tables print them (models/numbers.py): the runs table's narrow columns then show the
    # whole value (the arms table keeps full precision).
    test = outcome.per_arm[arm.key]
    metrics = {objective: rounded(arm.val), outcome.metric: rounded(test.mean, test.low, test.high),
               **({lift_metric(outcome.metric): rounded(comp.mean, comp.low, comp.high)}
                  if comp and math.isfinite(comp.mean) else {})}
    text = f"{outcome.headline}: {arm.name} {diff_text(comp)} {metric_info(outcome.metric).label} over real-only"
    if arm.key in outcome.ablations:
        text += f"; generator's own effect {diff_text(effect)}"
    if decision_text(outcome, arm.key):
        text += f"; {decision_text(outcome, arm.key)}"
    seeds = f"{len(outcome.seeds)} seeds" + (", subsample drawn per seed" if outcome.resample_data else "")
    return metrics, {tracking.CONFIRMED: f"{text} ({seeds})", tracking.CONFIRMED_ARM: arm.name,
                     tracking.VERDICT_SHORT: short_verdict(outcome, comp)}


def short_verdict(outcome: Confirmation, comp: Paired | None) -> str:
    """The verdict in a runs-table column's ~9 characters: the signed lift starred when significant
    (Holm-corrected; "+0.012*", or "-0.012*" when augmentation hurt), else "no lift" (the lift itself is the
    column beside it), "no GAN" when no GAN recipe finished."""
    if comp is None or not math.isfinite(comp.mean) or outcome.headline == "no GAN recipe":
        return "no GAN" if outcome.headline == "no GAN recipe" else "unknown"
    if not comp.significant:
        return "no lift"
    return number(comp.mean, decimals(comp.mean, comp.low, comp.high), signed=True) + "*"


def recipe_cell(arm: Arm) -> str:
    """An arm's recipe; the tuned baseline named as the search's description names it."""
    return f"{TUNED_BASELINE}: {arm.name}" if arm.baseline else arm.name


def search_lead(outcome: Confirmation, experiment_id: str) -> str:
    """The top of the search's description once confirmed: the verdict, then per arm its confirmed metric,
    its lift and its generator's own effect, and a link to the confirmation run."""
    label = metric_info(outcome.metric).label
    lines = [f"**Confirmed over {len(outcome.seeds)} seeds on the test split: {outcome.verdict}**", "",
             f"| arm | recipe | {label} (95% CI) | vs tuned real-only | generator's own effect |",
             "|---|---|---|---|---|"]
    places = _places(outcome)
    for arm in outcome.arms:
        s = outcome.per_arm[arm.key]
        ci = f" ({interval(s.low, s.high, places)})" if math.isfinite(s.low) else ""
        vs = diff_text(outcome.comparisons[arm.key]) if arm.key in outcome.comparisons else "-"
        own = diff_text(outcome.effects[arm.key]) if arm.key in outcome.effects else "-"
        lines.append(f"| {arm.key} | {recipe_cell(arm)} | {number(s.mean, places)}{ci} | {vs} | {own} |")
    lines += ["", f"Paired by seed; p: two-sided Wilcoxon, Holm-corrected; detectable: the smallest lift the "
                  f"comparison could have detected (80% power, at its seeds, after Holm). Per seed, figure and "
                  f"tables: the [confirmation run]({run_link(experiment_id, outcome.run_id)})."]
    if outcome.resample_data:
        lines += ["", RESAMPLED]
    return "\n".join(lines)


# Two classes: what the arm's decisions are worth at the threshold chosen on val (models/evaluation.py).
DECISION_METRICS = {"test_sensitivity": "sensitivity", "test_specificity": "specificity",
                    "test_balanced_acc": "balanced accuracy", "decision_threshold": "threshold"}


def decision_means(outcome: Confirmation, arm_key: str) -> dict[str, float]:
    """Per decision metric its mean over the arm's finished seeds (none for more than two classes)."""
    rows = [r for r in outcome.per_seed if r["arm"] == arm_key and "error" not in r]
    means = {}
    for key in DECISION_METRICS:
        values = [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]
        if values:
            means[key] = sum(values) / len(values)
    return means if "test_sensitivity" in means else {}


def decision_text(outcome: Confirmation, arm_key: str) -> str:
    """`test sensitivity .812, specificity .774, balanced accuracy .793 (val-chosen threshold .43)`; empty when
    the arm has no two-class decision metrics."""
    means = decision_means(outcome, arm_key)
    if not means:
        return ""
    text = ", ".join(f"{DECISION_METRICS[k]} {means[k]:.3f}" for k in ("test_sensitivity", "test_specificity",
                                                                     "test_balanced_acc") if k in means)
    thr = f" (val-chosen threshold {means['decision_threshold']:.3f}, mean)" if "decision_threshold" in means else ""
    return f"test {text}{thr}"
