"""The search space through Optuna's FixedTrial, and the search spec's parsing and validation."""

from __future__ import annotations

import optuna
import pytest
import yaml

from ganmix.models.metrics import metric_mode
from ganmix.search.space import BASELINE_ATTR, DefineByRun, SpaceError, option_key, parse_dim, split_options
from ganmix.models.generator import generator_class, list_generators
from ganmix.search.spec import SearchSpec
from ganmix.search.trainable import recipe_from_config


def _space(spec: SearchSpec) -> DefineByRun:
    return DefineByRun(spec.space, spec.generator_space, spec.fixed_config(), spec.baseline_recipe().to_dict())


def test_default_space_matches_the_documented_ranges():
    spec = SearchSpec(dataset="breastmnist")
    dims = {k: v for k, v in spec.to_dict()["space"].items()}
    assert dims["generator_epochs"] == {"type": "int", "low": 5, "high": 300, "log": True}
    assert dims["synthetic_ratio"] == {"type": "float", "low": 0.1, "high": 3.0, "log": False}
    assert dims["classifier_lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert dims["allocation"]["choices"] == ["proportional", "balance"]
    assert dims["augment"]["choices"] == ["none", "flip", "flip_rotate", "trivial"]
    assert dims["class_weight"]["choices"] == ["none", "balanced"]
    on_cpu = [name for name in list_generators() if generator_class(name).cpu_default]
    assert dims["generator"]["choices"] == ["none", *on_cpu]
    assert "latent_dim" not in dims  # an option of the latent families, drawn per family
    # Each family's dimensions are the ones its module declares.
    assert {name: {k: parse_dim(k, v) for k, v in generator_class(name).search_space.items()}
            for name in list_generators()} == spec.generator_space
    assert spec.generator_space["cvae"]["latent_dim"] == parse_dim("latent_dim", [16, 32, 64, 128, 256])


def test_default_generator_dimension_fits_the_device():
    cpu, note = SearchSpec(dataset="digits").for_device()
    gpu_only = [name for name in list_generators() if not generator_class(name).cpu_default]
    assert (note is None) == (not gpu_only) and all(name in (note or "") for name in gpu_only)
    assert not set(gpu_only) & set(cpu.space["generator"].choices)
    gpu, note = SearchSpec(dataset="digits", gpus_per_trial=0.5).for_device()
    assert gpu.space["generator"].choices == ("none", *list_generators()) and note is None
    named = SearchSpec(dataset="digits", space={"generator": parse_dim("generator", ["none", "ddpm"])})
    assert named.for_device() == (named, None)  # a spec may name a GPU family on the CPU


def test_space_dimension_default_and_format_2_spec_names(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("space:\n  generator: default\n  gan_epochs: {type: int, low: 1, high: 3}\n"
                    "  latent_dim: [16, 32]\nfixed: {classifier_epochs: 2}\n")
    spec = SearchSpec.load(path)
    assert spec.space["generator"] == SearchSpec().space["generator"]
    assert spec.space["generator_epochs"] == parse_dim("x", {"type": "int", "low": 1, "high": 3})
    latent = [name for name in list_generators() if "latent_dim" in generator_class(name).search_space]
    assert {name for name, dims in spec.generator_space.items() if "latent_dim" in dims} == set(latent)
    assert all(spec.generator_space[name]["latent_dim"].choices == (16, 32) for name in latent)
    fixed = SearchSpec.from_mapping({"space": {"synthetic_ratio": [1.0]}, "fixed": {"latent_dim": 16, "gan_epochs": 2}})
    assert fixed.fixed == {"generator_epochs": 2} and fixed.generator_space["dcgan"]["latent_dim"].choices == (16,)
    with pytest.raises(SpaceError, match=r"space.nonsense: has no default dimension"):
        SearchSpec.from_mapping({"space": {"nonsense": "default"}})


def test_real_only_trials_draw_no_generator_dimensions():
    spec = SearchSpec(dataset="digits", seed=4, fixed={"classifier_epochs": 4})
    params = {"generator": "none", "classifier_lr": 3e-4, "augment": "flip", "class_weight": "balanced"}
    # FixedTrial raises on any parameter it was not given: no generator_epochs, ratio, allocation or latent size.
    recipe = recipe_from_config({**params, **_space(spec)(optuna.trial.FixedTrial(params))})
    assert recipe.generator == "none" and recipe.synthetic_ratio == 0.0 and recipe.real_only
    assert (recipe.augment, recipe.class_weight, recipe.classifier_epochs) == ("flip", "balanced", 4)
    assert (recipe.data_seed, recipe.generator_seed, recipe.classifier_seed) == (4, 4, 4)


def test_fixed_trial_gives_a_valid_recipe_with_family_options():
    spec = SearchSpec(dataset="digits", fixed={"classifier_epochs": 4})
    params = {"generator_epochs": 17, "synthetic_ratio": 1.25, "classifier_lr": 0.01, "generator": "wgan_gp",
              "allocation": "balance", "augment": "none", "class_weight": "none",
              option_key("wgan_gp", "latent_dim"): 32, option_key("wgan_gp", "n_critic"): 2,
              option_key("wgan_gp", "diffaugment"): "color,translation,cutout"}
    trial = optuna.trial.FixedTrial(params)
    constants = _space(spec)(trial)
    # Tune merges what the trial suggested with the constants the function returned.
    recipe = recipe_from_config({**params, **constants})
    assert recipe.generator_epochs == 17 and recipe.generator == "wgan_gp" and recipe.classifier_epochs == 4
    assert dict(recipe.generator_options) == {"n_critic": 2, "diffaugment": "color,translation,cutout", "latent_dim": 32}
    assert recipe.baseline is False


def test_family_options_are_conditional():
    spec = SearchSpec(dataset="digits")
    params = {"generator_epochs": 5, "synthetic_ratio": 1.0, "classifier_lr": 0.001, "generator": "cvae",
              "allocation": "proportional", "augment": "trivial", "class_weight": "none",
              option_key("cvae", "latent_dim"): 16, option_key("cvae", "kl_weight"): 0.5}
    # No wgan_gp option is asked for when cvae is chosen: FixedTrial would raise on a missing param.
    _space(spec)(optuna.trial.FixedTrial(params))
    fields, options = split_options({**params, option_key("dcgan", "diffaugment"): "color"})
    assert options == {"kl_weight": 0.5, "latent_dim": 16} and "cvae.kl_weight" not in fields


def test_baseline_trial_is_real_only_with_default_lr():
    from ganmix.search.recipe import Recipe

    spec = SearchSpec(dataset="digits", fixed={"classifier": "resnet18"})
    trial = optuna.trial.FixedTrial({})
    trial.set_user_attr(BASELINE_ATTR, True)
    recipe = recipe_from_config(_space(spec)(trial))
    assert recipe.baseline and recipe.synthetic_ratio == 0.0 and recipe.generator == "none"
    assert recipe.classifier == "resnet18" and recipe.classifier_lr == Recipe().classifier_lr


def test_spec_yaml_round_trip(tmp_path):
    spec = SearchSpec(dataset="digits", trials=5, metric="val_balanced_acc",
                      space={"synthetic_ratio": parse_dim("synthetic_ratio", {"type": "float", "low": 0, "high": 2})})
    path = tmp_path / "spec.yaml"
    path.write_text(spec.to_yaml())
    again = SearchSpec.load(path)
    assert again.to_dict() == spec.to_dict() and again.mode == "max"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("space: {generator_epochs: {type: int, low: 10, high: 5}}", "low 10 is above high 5"),
        ("space: {classifier_lr: {type: float, low: 0, high: 1, log: true}}", "log scale needs low > 0"),
        ("space: {generator_epochs: {type: normal, low: 1, high: 2}}", "'normal'"),
        ("space: {nonsense: [1, 2]}", "unknown recipe field(s) ['nonsense']"),
        ("metric: val_accuracy", "unknown metric 'val_accuracy'"),
        ("trials: 0", "trials must be an integer >= 1, got 0"),
        ("fixed: {classifier: vgg99}", "classifier must be one of"),
        ("trails: 4", "unknown key(s) ['trails']"),
        ("space: {synthetic_ratio: [0, 1]}\nfixed: {synthetic_ratio: 1}", "both searched (space) and fixed"),
    ],
)
def test_bad_spec_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        SearchSpec.load(path)
    assert message in str(info.value) and "space.yaml" in str(info.value)


def test_metric_modes():
    assert metric_mode("val_auc") == "max" and metric_mode("fid") == "min" and metric_mode("val_loss") == "min"


def test_packaged_demo_spec_is_valid():
    from importlib import resources

    data = yaml.safe_load((resources.files("ganmix.search") / "demo.yaml").read_text())
    spec = SearchSpec.from_mapping(data)
    assert spec.dataset == "digits" and spec.trials >= 4


def test_constraints_parse_and_judge_feasibility(tmp_path):
    from ganmix.search.constraints import is_feasible, violations

    path = tmp_path / "space.yaml"
    path.write_text("constraints: {near_copy_fraction: {max: 0.05}, label_fidelity: {min: 0.8}}\n")
    bounds = SearchSpec.load(path).bounds
    assert violations(bounds, {"near_copy_fraction": 0.10, "label_fidelity": 0.9}) == pytest.approx([0.05, -0.1])
    assert not is_feasible(bounds, {"near_copy_fraction": 0.10, "label_fidelity": 0.9})
    assert is_feasible(bounds, {"near_copy_fraction": 0.01, "label_fidelity": 0.95})
    assert is_feasible(bounds, {}, real_only=True)  # a real-only trial generates nothing to measure
    assert not is_feasible(bounds, {})  # an unmeasured trial (no or too few samples) is infeasible
    assert not is_feasible(bounds, {"near_copy_fraction": float("nan"), "label_fidelity": 0.9})
    path.write_text("constraints: {fidelity: {max: 1}}\n")
    with pytest.raises(SpaceError, match="constraints.fidelity: unknown metric"):
        SearchSpec.load(path)
    path.write_text("constraints: {fid: {below: 1}}\n")
    with pytest.raises(SpaceError, match=r"constraints.fid must look like"):
        SearchSpec.load(path)


def test_constraints_reach_optuna_trials_as_tpe_reads_them():
    """ConstrainedOptunaSearch sets Optuna constraints that TPE ranks by (infeasible after feasible)."""
    from ganmix.search.constraints import ConstrainedOptunaSearch, parse_constraints
    from ganmix.search.ray_internals import optuna_study

    spec = SearchSpec(dataset="digits")
    searcher = ConstrainedOptunaSearch(space=_space(spec), metric="val_auc", mode="max",
                                       sampler=optuna.samplers.TPESampler(seed=0),
                                       bounds=parse_constraints({"near_copy_fraction": {"max": 0.05}}))
    for trial_id, (auc, copies) in enumerate([(0.9, 0.5), (0.6, 0.0), (0.7, 0.01)]):
        searcher.suggest(str(trial_id))
        searcher.on_trial_complete(str(trial_id), {"val_auc": auc, "near_copy_fraction": copies})
    trials = optuna_study(searcher).trials
    assert [t.constraints for t in trials] == [
        {"near_copy_fraction_max": pytest.approx(0.45)},
        {"near_copy_fraction_max": pytest.approx(-0.05)},
        {"near_copy_fraction_max": pytest.approx(-0.04)},
    ]
    feasible = [t for t in trials if all(v <= 0 for v in t.constraints.values())]
    assert max(t.value for t in feasible) == 0.7


def test_the_step_floor_is_a_recipe_field_a_spec_can_fix_or_search(tmp_path):
    from ganmix.search.preflight import check_spec

    fixed = SearchSpec(dataset="digits", fixed={"classifier_min_steps": 0})
    assert fixed.baseline_recipe().classifier_min_steps == 0
    searched = SearchSpec.from_mapping({"dataset": "digits", "space": {
        "generator": ["none"], "classifier_min_steps": {"type": "int", "low": 0, "high": 800}}})
    params = {"generator": "none", "classifier_min_steps": 240, "classifier_lr": 0.001, "augment": "none",
              "class_weight": "none"}
    recipe = recipe_from_config({**params, **_space(searched)(optuna.trial.FixedTrial(params))})
    assert recipe.classifier_min_steps == 240 and recipe.real_only
    check_spec(searched, sample_metrics=False)
    bad = SearchSpec.from_mapping({"dataset": "digits", "space": {
        "classifier_min_steps": {"type": "int", "low": -5, "high": 800}}})
    with pytest.raises(SpaceError, match=r"space\.classifier_min_steps: low -5 is not a valid value"):
        check_spec(bad, sample_metrics=False)
