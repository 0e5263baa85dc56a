"""`confirm`'s arms and analysis on hand-made per-seed results: ablation arms, the two Holm-corrected
families (arms vs the tuned baseline, GAN arms vs their ablations) and the verdict that names both."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ganmix.models.numbers import number
from ganmix.search.confirm import Arm, _analyse, ablation_arms
from ganmix.search.confirm_report import arm_rows, describe, search_answer, search_lead, table
from ganmix.search.recipe import Recipe

SEEDS = list(range(1, 9))
BASE = Recipe(dataset="digits", generator="none", synthetic_ratio=0.0, classifier_lr=1e-3)
GAN = Recipe(dataset="digits", generator="dcgan", synthetic_ratio=1.0, classifier_lr=3e-3, augment="flip")
GAN2 = Recipe(dataset="digits", generator="acgan", synthetic_ratio=0.5, classifier_lr=1e-3)  # baseline's lr


def arms() -> list[Arm]:
    chosen = [Arm("top1", GAN, "r1", 0.99), Arm("top2", GAN2, "r2", 0.98), Arm("real-only", BASE, "r3", 0.97,
                                                                               baseline=True)]
    extra, _ = ablation_arms(chosen)
    return chosen + extra


def test_every_gan_arm_gets_its_ablation_and_a_duplicate_is_not_run_twice():
    all_arms = arms()
    keys = [a.key for a in all_arms]
    # top2's ablation is the tuned baseline itself (same lr, no augmentation): it reuses that arm.
    assert keys == ["top1", "top2", "real-only", "top1-ablated"]
    twin = all_arms[-1]
    assert twin.ablation and twin.recipe == GAN.ablated() and twin.recipe.augment == "flip"
    assert ablation_arms(all_arms) == ([], {"top1": "top1-ablated", "top2": "real-only"})


def results(effect: dict[str, float]) -> dict[tuple[str, int], dict[str, float] | str]:
    """Per-seed test AUC: the baseline 0.80 + seed noise, each arm a fixed shift from it."""
    out: dict[tuple[str, int], dict[str, float] | str] = {}
    for key, shift in effect.items():
        for seed in SEEDS:
            noise = 0.002 * ((seed + len(key)) % 3 - 1) if key != "real-only" else 0.0  # no sign of its own
            out[(key, seed)] = {"test_auc": 0.80 + 0.001 * seed + shift + noise}
    return out


def test_the_generator_is_credited_only_when_it_beats_its_own_ablation():
    # top1 beats the baseline, but its ablation (flip, lr 3e-3) does just as well: not the generator.
    outcome = _analyse(arms(), SEEDS, results({"top1": 0.05, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.05}),
                       metric="test_auc", run_id="run")
    assert set(outcome.comparisons) == {"top1", "top2"}  # the ablation arm is not in the baseline family
    assert all(c.family == 2 for c in outcome.comparisons.values())
    assert outcome.comparisons["top1"].significant and outcome.best == "top1"
    assert not outcome.effects["top1"].significant
    assert outcome.verdict.startswith("augmentation helped, but not through its generator: dcgan")
    assert "its generator's own effect: " in outcome.verdict and "Holm p=" in outcome.verdict
    assert outcome.headline == "helped (not the generator)"

    helped = _analyse(arms(), SEEDS, results({"top1": 0.05, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.0}),
                      metric="test_auc", run_id="run")
    assert helped.effects["top1"].significant and helped.verdict.startswith("augmentation helped, and the generator")

    none = _analyse(arms(), SEEDS, results({"top1": 0.0, "top2": -0.01, "real-only": 0.0, "top1-ablated": 0.0}),
                    metric="test_auc", run_id="run")
    assert none.verdict.startswith("augmentation did not help here") and none.headline == "did not help"


def test_tables_and_description_show_both_effects():
    outcome = _analyse(arms(), SEEDS, results({"top1": 0.05, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.05}),
                       metric="test_auc", run_id="run")
    rows = {r["arm"]: r for r in arm_rows(outcome)}
    assert rows["top1"]["ablation_arm"] == "top1-ablated" and rows["top1-ablated"]["role"] == "ablation of top1"
    assert rows["real-only"]["role"] == "tuned real-only baseline; ablation of top2"
    assert rows["top1"]["vs_real_only"] == pytest.approx(0.05, abs=0.002)
    assert abs(rows["top1"]["generator_effect"]) < 0.003 and rows["top1"]["generator_effect_p_holm"] is not None
    assert rows["real-only"]["vs_real_only"] is None and rows["top1-ablated"]["generator_effect"] is None
    for row in rows.values():
        assert 0 <= row["ci_low"] <= row["test_auc_mean"] <= row["ci_high"] <= 1
    text = describe(outcome, "s")
    assert text.startswith("**augmentation helped") and "| generator |" in text and "top1-ablated" in text
    assert any("ablation of top1" in line for line in table(outcome))


def test_a_failed_ablation_leaves_the_effect_unknown_not_a_crash():
    res = results({"top1": 0.05, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.0})
    for seed in SEEDS:
        res[("top1-ablated", seed)] = "RuntimeError: boom"
    outcome = _analyse(arms(), SEEDS, res, metric="test_auc", run_id="run")
    assert outcome.effects["top1"].n == 0 and math.isnan(outcome.effects["top1"].mean)
    assert not outcome.effects["top1"].significant and "not enough seeds" in outcome.verdict


def test_the_search_row_and_description_lead_with_the_confirmed_answer():
    from ganmix.models.numbers import decimals, number
    from ganmix.tracking.describe import ONE_SEED, lead_with_confirmation

    outcome = _analyse(arms(), SEEDS, results({"top1": 0.05, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.05}),
                       metric="test_auc", run_id="run")
    metrics, tags = search_answer(outcome, "val_auc")
    assert metrics["val_auc"] == 0.99 and metrics["lift_test_auc"] == pytest.approx(0.05, abs=0.002)
    test = outcome.per_arm["top1"]
    places = decimals(test.mean, test.low, test.high)
    assert metrics["test_auc"] == round(test.mean, places)  # as the tables print it (models/numbers.py)
    # The verdict in a column's width: the signed lift, starred when significant.
    assert tags["ganmix.verdict_short"] == number(outcome.comparisons["top1"].mean, decimals(
        outcome.comparisons["top1"].mean, outcome.comparisons["top1"].low, outcome.comparisons["top1"].high),
        signed=True) + "*"
    assert tags["ganmix.confirmed"].startswith(f"helped (not the generator): {outcome.arms[0].name} +0.05")
    assert "95% CI" in tags["ganmix.confirmed"] and "generator's own effect" in tags["ganmix.confirmed"]
    lead = search_lead(outcome, "1")
    assert lead.startswith("**Confirmed over 8 seeds on the test split: augmentation helped, but not")
    ranking = "**On digits, `dcgan` wins (val_auc 0.9900), +0.02 over ...**\n\n| rank | trial |"
    once = lead_with_confirmation(ranking, lead)
    assert once.startswith(lead) and once.index(ONE_SEED) < once.index("On digits")
    assert "On digits, `dcgan` ranks first (val_auc" in once and "wins" not in once  # no second, louder claim
    # The tuned baseline has one name in every table: its recipe, marked as the tuned baseline.
    base = next(a for a in outcome.arms if a.baseline)
    assert f"| tuned baseline: {base.name} |" in lead
    again = lead_with_confirmation(once, "**Confirmed: newer**")  # a later confirmation replaces the lead
    assert again.startswith("**Confirmed: newer**") and again.count(ONE_SEED) == 1 and "but not" not in again


def test_the_detectable_lift_is_in_every_place_the_verdict_is_shown():
    from ganmix.search.stats import detectable_lift

    outcome = _analyse(arms(), SEEDS, results({"top1": 0.0, "top2": -0.01, "real-only": 0.0, "top1-ablated": 0.0}),
                       metric="test_auc", run_id="run")
    top1 = outcome.comparisons["top1"]
    lift = detectable_lift(top1.sd, top1.n, top1.family)
    assert lift is not None and lift > 0
    assert f"no lift >= {number(lift)} test AUC at 80% power" in outcome.verdict  # console, tag, `ganmix best`
    assert all("at 80% power" in line or "no lift is detectable" in line for line in outcome.lines)
    rows = {r["arm"]: r for r in arm_rows(outcome)}  # confirmation/arms.json
    assert rows["top1"]["vs_real_only_detectable"] == pytest.approx(lift)
    assert rows["real-only"]["vs_real_only_detectable"] is None
    assert f">= {number(lift)}" in describe(outcome, "s") and "| detectable |" in describe(outcome, "s")
    _, tags = search_answer(outcome, "val_auc")  # the ganmix.confirmed tag
    assert f"detectable >= {number(lift)}" in tags["ganmix.confirmed"]
    assert "detectable >= " in search_lead(outcome, "1")
    few = _analyse(arms(), SEEDS[:4], results({"top1": 0.0, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.0}),
                   metric="test_auc", run_id="run")
    assert "no lift is detectable with 4 seeds" in few.verdict
    assert "nothing detectable at 4 seeds" in search_answer(few, "val_auc")[1]["ganmix.confirmed"]


def test_resample_data_draws_each_seeds_subsample_and_says_so(monkeypatch):
    """--resample-data: every seed its own data_seed, so its own scarce subsample (real digits, real
    scarcity), the same one for every arm of that seed (still paired); the verdict and tables say it was on."""
    from ganmix.datasets import load_dataset
    from ganmix.search import confirm_task
    from ganmix.search.confirm import ConfirmError, _run_all, check_resample
    from ganmix.search.spec import SearchSpec

    spec = SearchSpec(dataset="digits", train_per_class=5, finalists={"count": 0})
    captured = {}

    def fake_run_jobs(jobs, datasets, **_kwargs):  # what Ray would run: checked here, not run
        captured.update(jobs=jobs, datasets=datasets)
        return {key: {"test_auc": 0.9} for key in jobs}

    monkeypatch.setattr(confirm_task, "run_jobs", fake_run_jobs)
    chosen = arms()
    _run_all(chosen, [1, 2, 3], uri="u", experiment_id="e", run_id="r", spec=spec, dataset=load_dataset("digits"),
             cache_dir=Path("."), address=None, quiet=True, resample_data=True, data_dir=None)
    jobs, datasets = captured["jobs"], captured["datasets"]
    assert len(datasets) == 3 and all(len(d.train) == 50 for d in datasets)  # 5 per class, 10 classes
    assert len({d.fingerprint for d in datasets}) == 3  # three different subsamples
    for (key, seed), job in jobs.items():
        recipe = Recipe.from_yaml(job.recipe_yaml)
        assert recipe.data_seed == recipe.classifier_seed == seed and job.data == [1, 2, 3].index(seed)
    _run_all(chosen, [1, 2], uri="u", experiment_id="e", run_id="r", spec=spec, dataset=datasets[0],
             cache_dir=Path("."), address=None, quiet=True)
    assert len(captured["datasets"]) == 1 and {Recipe.from_yaml(j.recipe_yaml).data_seed
                                                for j in captured["jobs"].values()} == {0}  # off: the search's
    outcome = _analyse(chosen, SEEDS, results({"top1": 0.0, "top2": 0.0, "real-only": 0.0, "top1-ablated": 0.0}),
                       metric="test_auc", run_id="run", resample_data=True)
    assert outcome.verdict.endswith("each seed drew its own train subsample (--resample-data)")
    assert "drew its own train subsample" in describe(outcome, "s")
    assert "subsample drawn per seed" in search_answer(outcome, "val_auc")[1]["ganmix.confirmed"]
    with pytest.raises(ConfirmError, match="--resample-data: search 'x' kept every train image"):
        check_resample(SearchSpec(dataset="digits"), "x")


def test_search_confirm_with_too_few_seeds_is_refused_before_the_search(tmp_path):
    """`search --confirm N` checks N against the most comparisons it can make (--confirm-top K and the best
    GAN recipe) before anything starts: one line, exit 2, no results folder; --allow-underpowered runs it."""
    import subprocess
    import sys

    results = tmp_path / "results"

    def search(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ganmix.search.cli", "search", "--results-dir", str(results),
                               *extra], capture_output=True, text=True, timeout=300, cwd=tmp_path)

    done = search("--confirm", "5")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "ganmix: error: --confirm 5: 5 seeds cannot reach p < 0.05 with a two-sided Wilcoxon test after Holm's "
        "correction over 4 comparison(s) (smallest p: 2/2^5 x 4 = 0.25); use --confirm 8 or more, or "
        "--allow-underpowered to run it anyway (up to 4: the --confirm-top 3 and the best GAN recipe against the "
        "tuned baseline)"]
    assert not results.exists()
    assert search("--confirm", "7", "--confirm-top", "2", "--dry-run").returncode == 0  # 3 comparisons: 7 suffice
    allowed = search("--confirm", "5", "--allow-underpowered", "--dry-run")
    assert allowed.returncode == 0 and "running anyway (--allow-underpowered)" in allowed.stdout


def test_verdicts_report_decisions_at_the_val_chosen_threshold_and_name_the_positive_control():
    control = Recipe(dataset="digits", generator="holdout", train_per_class=20, synthetic_ratio=0.5)
    base = BASE.replace(train_per_class=20)
    chosen = [Arm("top1", control, "r1", 0.99), Arm("real-only", base, "r2", 0.97, baseline=True)]
    chosen += ablation_arms(chosen)[0]
    res = {}
    for seed in SEEDS:
        res[("top1-ablated", seed)] = {"test_auc": 0.80 + 0.001 * seed}  # no decision metrics: none shown
        res[("top1", seed)] = {"test_auc": 0.85 + 0.001 * seed, "test_sensitivity": 0.8, "test_specificity": 0.7,
                               "test_balanced_acc": 0.75, "decision_threshold": 0.4}
        res[("real-only", seed)] = {"test_auc": 0.80 + 0.001 * seed, "test_sensitivity": 0.6,
                                    "test_specificity": 0.9, "test_balanced_acc": 0.75, "decision_threshold": 0.6}
    outcome = _analyse(chosen, SEEDS, res, metric="test_auc", run_id="run")
    rows = {r["arm"]: r for r in arm_rows(outcome)}
    assert rows["top1"]["role"] == "positive control" and rows["top1"]["recipe"].startswith("holdout (control)")
    assert rows["top1"]["test_sensitivity_mean"] == pytest.approx(0.8)
    assert rows["real-only"]["decision_threshold_mean"] == pytest.approx(0.6)
    assert "test_sensitivity_mean" not in rows["top1-ablated"]
    expected = "test sensitivity 0.800, specificity 0.700, balanced accuracy 0.750 (val-chosen threshold 0.400, mean)"
    assert expected in describe(outcome, "s") and any(expected in line for line in table(outcome))
    assert expected in search_answer(outcome, "val_auc")[1]["ganmix.confirmed"]
