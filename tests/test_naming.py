"""Run names and params: what the MLflow runs table shows for each trial."""

from __future__ import annotations

import pytest

from ganmix.search.recipe import GENERATOR_FIELDS, Recipe, is_real_only
from ganmix.tracking.naming import run_name, short_number


@pytest.mark.parametrize(("value", "text"), [(3e-4, "3e-4"), (0.00025, "2.5e-4"), (1.8571, "1.86"), (37, "37"),
                                             (16.0, "16"), (0.5, "0.5"), (0.0, "0"), ("x", "x")])
def test_short_numbers(value, text):
    assert short_number(value) == text


def test_names_say_what_a_run_is():
    assert run_name(Recipe(synthetic_ratio=0.0, baseline=True)) == "baseline"
    real = Recipe(generator="none", synthetic_ratio=0.0, classifier_lr=3e-4, augment="flip")
    assert run_name(real) == "real-only lr=3e-4 flip"
    # A name spells out any augmentation, the default's too: a logged name outlives a change of defaults.
    assert run_name(Recipe(synthetic_ratio=0.0, classifier_lr=0.003)) == "real-only lr=3e-3 flip_rotate"
    assert run_name(Recipe(synthetic_ratio=0.0, classifier_lr=0.003, augment="none")) == "real-only lr=3e-3"
    gan = Recipe(generator="acgan", synthetic_ratio=1.8571, generator_epochs=37, generator_options={"latent_dim": 16},
                 augment="none")
    assert run_name(gan) == "acgan r=1.86 e=37 z=16"
    assert run_name(gan.replace(allocation="balance")) == "acgan r=1.86 e=37 z=16 bal"
    assert run_name(gan.replace(augment="flip_rotate")) == "acgan r=1.86 e=37 z=16 flip_rotate"


def test_real_only_runs_log_no_generator_params():
    baseline = Recipe(generator="dcgan", synthetic_ratio=0.0, generator_options={"width": 32}, baseline=True)
    assert baseline.real_only and is_real_only("none") and not is_real_only("dcgan", 1.0)
    params = baseline.to_params()
    assert params["generator"] == "none" and params["synthetic_ratio"] == "0.0" and params["baseline"] == "True"
    assert not any(key.split(".")[0] in GENERATOR_FIELDS for key in params), sorted(params)


def test_gan_runs_log_every_field_flattened():
    recipe = Recipe(generator="wgan_gp", synthetic_ratio=1.0, generator_options={"n_critic": 3})
    params = recipe.to_params()
    assert params["generator_options.n_critic"] == "3" and params["generator_epochs"] == str(recipe.generator_epochs)
