"""Recipe round trips and validation; allocation arithmetic."""

from __future__ import annotations

import pytest

from ganmix.search.allocation import allocate, synthetic_total
from ganmix.search.recipe import Recipe, RecipeError


def test_round_trip_dict_and_yaml(tmp_path):
    recipe = Recipe(dataset="breastmnist", generator="wgan_gp", generator_epochs=42, synthetic_ratio=1.5,
                    allocation="balance", classifier="resnet18", classifier_lr=3e-3, classifier_epochs=7, data_seed=3,
                    generator_seed=4, classifier_seed=5, augment="flip_rotate", class_weight="balanced",
                    class_fraction={"malignant": 0.5}, generator_options={"n_critic": 3, "latent_dim": 32})
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    path = tmp_path / "r.yaml"
    recipe.save(path)
    assert Recipe.load(path) == recipe
    assert recipe.to_params()["generator_options.n_critic"] == "3"
    assert recipe.to_params()["class_fraction.malignant"] == "0.5"


@pytest.mark.parametrize(
    ("field", "value", "quoted"),
    [
        ("synthetic_ratio", -1.0, "-1.0"),
        ("generator_epochs", 0, "0"),
        ("allocation", "random", "'random'"),
        ("generator", "stylegan9", "'stylegan9'"),
        ("classifier", "vgg99", "'vgg99'"),
        ("classifier_lr", float("nan"), "nan"),
        ("filter_threshold", 1.5, "1.5"),
        ("augment", "mixup", "'mixup'"),
        ("class_weight", "inverse", "'inverse'"),
        ("lr_schedule", "step", "'step'"),
        ("select_metric", "test_auc", "'test_auc'"),
        ("classifier_seed", -1, "-1"),
    ],
)
def test_validation_names_field_and_quotes_value(field, value, quoted):
    with pytest.raises(RecipeError) as info:
        Recipe(**{field: value})
    assert field in str(info.value) and quoted in str(info.value)


def test_generator_options_are_checked_by_the_family():
    with pytest.raises(RecipeError, match="generator_options") as info:
        Recipe(generator="cvae", generator_options={"n_critic": 3})
    assert "n_critic" in str(info.value)
    assert dict(Recipe(generator="wgan_gp", generator_options={"n_critic": 3}).generator_options) == {"n_critic": 3}


def test_unknown_field_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown field\(s\) \['ratio'\]"):
        Recipe.from_dict({"ratio": 1.0})
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator_epochs: [unclosed")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        Recipe.load(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        Recipe.load(tmp_path / "missing.yaml")


def test_synthetic_total_rounds_ratio_times_train():
    assert synthetic_total(0.0, 546) == 0
    assert synthetic_total(1.0, 546) == 546
    assert synthetic_total(0.5, 3) == 2  # 1.5 rounds half up


def test_proportional_keeps_class_balance_and_sums_exactly():
    assert allocate(546, [147, 399], "proportional") == [147, 399]
    assert allocate(100, [1, 1, 1], "proportional") == [34, 33, 33]
    alloc = allocate(1000, [147, 399], "proportional")
    assert sum(alloc) == 1000 and alloc == [269, 731]


def test_balance_fills_minority_first():
    # 252 images bring malignant (147) level with normal (399) and nothing is left.
    assert allocate(252, [147, 399], "balance") == [252, 0]
    # Fewer than the gap: everything goes to the minority class.
    assert allocate(100, [147, 399], "balance") == [100, 0]
    # Water-filling: the smallest class rises to the next, then both rise together.
    assert allocate(50, [100, 30, 10], "balance") == [0, 15, 35]
    # Beyond the majority count: what is left is spread evenly.
    assert allocate(10, [3, 1], "balance") == [4, 6]
    assert allocate(7, [5, 5, 5], "balance") == [3, 2, 2]


@pytest.mark.parametrize("total", [0, 1, 13, 252, 999])
@pytest.mark.parametrize("mode", ["proportional", "balance"])
def test_allocation_always_sums_to_total(total, mode):
    alloc = allocate(total, [147, 399, 12], mode)
    assert sum(alloc) == total and min(alloc) >= 0


def test_unknown_allocation_mode():
    with pytest.raises(RecipeError, match="'random'"):
        allocate(10, [1, 2], "random")


def test_real_only_recipe_mixes_nothing_and_logs_no_generator_params():
    recipe = Recipe(generator="none", synthetic_ratio=0.0, augment="flip")
    assert recipe.real_only
    params = recipe.to_params()
    assert params["generator"] == "none" and "generator_epochs" not in params and params["synthetic_ratio"] == "0.0"
    with pytest.raises(RecipeError, match="synthetic_ratio must be 0 with generator 'none'"):
        Recipe(generator="none", synthetic_ratio=1.0)


def test_recipe_formats():
    old = Recipe.from_dict({"format": "ganmix.recipe/1", "seed": 7, "generator": "cvae"})
    assert (old.data_seed, old.generator_seed, old.classifier_seed) == (7, 7, 7)
    with pytest.raises(RecipeError, match="format 'ganmix.recipe/9' is not supported"):
        Recipe.from_dict({"format": "ganmix.recipe/9"})
    assert Recipe.from_yaml(Recipe(classifier_seed=3).to_yaml()).classifier_seed == 3
    # Formats before the step floor re-run as they ran: no floor; today's recipes keep theirs.
    assert old.classifier_min_steps == 0
    assert Recipe.from_dict({"format": "ganmix.recipe/2", "generator": "cvae"}).classifier_min_steps == 0
    assert Recipe.from_yaml(Recipe(classifier_min_steps=123).to_yaml()).classifier_min_steps == 123
    assert "format: ganmix.recipe/3" in Recipe().to_yaml()
    with pytest.raises(RecipeError, match="classifier_min_steps must be an integer"):
        Recipe(classifier_min_steps=-1)


@pytest.mark.parametrize("fmt", ["ganmix.recipe/1", "ganmix.recipe/2"])
def test_format_2_names_load_as_generator_epochs_and_a_latent_option(fmt, tmp_path):
    # What `ganmix best --export` wrote before format 3: gan_epochs, and a latent_dim for every family.
    path = tmp_path / "exported.yaml"
    path.write_text(f"format: {fmt}\ngenerator: wgan_gp\ngan_epochs: 12\nlatent_dim: 32\n"
                    "generator_options: {n_critic: 2}\n")
    recipe = Recipe.load(path)
    assert recipe.generator_epochs == 12
    assert dict(recipe.generator_options) == {"latent_dim": 32, "n_critic": 2}
    real_only = Recipe.from_dict({"format": fmt, "generator": "none", "synthetic_ratio": 0, "latent_dim": 64})
    assert real_only.generator_options == ()  # a latent size means nothing without a generator
    with pytest.raises(RecipeError, match=r"unknown field\(s\) \['gan_epochs'\]"):
        Recipe.from_dict({"gan_epochs": 3})  # format 3 has only the new name


def test_latent_dim_is_an_option_of_latent_families_only():
    assert Recipe(generator="cvae", generator_options={"latent_dim": 8}).generator_options == (("latent_dim", 8),)
    with pytest.raises(RecipeError, match="latent_dim must be an int in 1..4096, got 0"):
        Recipe(generator="dcgan", generator_options={"latent_dim": 0})


def test_with_seed_changes_generator_and_classifier_seeds_only():
    recipe = Recipe(data_seed=2).with_seed(9)
    assert (recipe.data_seed, recipe.generator_seed, recipe.classifier_seed) == (2, 9, 9)


def test_the_ablated_recipe_differs_from_its_gan_recipe_only_in_the_generator_fields():
    import dataclasses

    from ganmix.search.recipe import GAN_FIELDS, NO_GENERATOR

    recipe = Recipe(dataset="breastmnist", generator="wgan_gp", generator_epochs=42, synthetic_ratio=1.5,
                    allocation="balance", classifier_lr=3e-3, classifier_epochs=7, classifier_min_steps=123,
                    augment="flip_rotate", class_weight="balanced", class_fraction={"malignant": 0.2},
                    generator_options={"n_critic": 3, "latent_dim": 32}, data_seed=3, generator_seed=4, classifier_seed=5,
                    filter_threshold=0.3)
    twin = recipe.ablated()
    assert twin.real_only and twin.generator == NO_GENERATOR and twin.synthetic_ratio == 0
    changed = {f.name for f in dataclasses.fields(Recipe) if getattr(twin, f.name) != getattr(recipe, f.name)}
    assert changed and changed <= {"generator", *GAN_FIELDS}, changed
    # Everything the classifier sees is the same: lr, augmentation, class weighting, budget, data, seeds.
    kept = {k: v for k, v in recipe.to_params().items() if k not in {"generator", *GAN_FIELDS}
            and not k.startswith("generator_options.")}
    assert kept.items() <= twin.to_params().items()
    assert twin.with_seed(9).classifier_seed == recipe.with_seed(9).classifier_seed == 9
    assert Recipe.from_yaml(twin.to_yaml()) == twin  # it validates and round-trips
    assert twin.ablated() == twin


def test_image_sizes_are_judged_against_the_recipes_generator():
    """models/sizes.py is the one judge: classifiers take 8..256 px, the conv generators 8..128 px."""
    assert Recipe(image_size=128, generator="wgan_gp").image_size == 128
    real_only = Recipe(image_size=256, generator="none", synthetic_ratio=0.0)
    assert real_only.image_size == 256
    with pytest.raises(RecipeError, match=r"image_size 200 does not suit generator 'cvae': it takes 8\.\.128 px"):
        Recipe(image_size=200, generator="cvae")
    for bad in (0, 300, True):
        with pytest.raises(RecipeError, match=rf"image_size must be an integer in 8\.\.256 .*got {bad!r}"):
            Recipe(image_size=bad, generator="none", synthetic_ratio=0.0)


def test_medmnist_plus_size_is_a_data_field():
    recipe = Recipe(dataset="breastmnist", size=224, image_size=128)
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe and recipe.to_params()["size"] == "224"
    with pytest.raises(RecipeError, match="size must be one of \\[28, 64, 128, 224\\]"):
        Recipe(dataset="breastmnist", size=96)
    # Without image_size the data set's own size is judged, before any file is read.
    with pytest.raises(RecipeError, match="breastmnist's own size 224 does not suit generator 'dcgan'.*set image_size"):
        Recipe(dataset="breastmnist", size=224)
    with pytest.raises(RecipeError, match="size 64 picks a MedMNIST\\+ file; data set 'digits' is not MedMNIST"):
        Recipe(dataset="digits", size=64)
