"""The light descriptions (models/families.py, <family>_info.py, models/choices.py) against the real families,
and the promise they exist for: judging a bad spec value or a bad data file imports no torch."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ganmix.models import families
from ganmix.models.choices import CLASSIFIER_NAMES
from ganmix.models.generator import GENERATORS, generator_class, generator_options


def test_every_registered_family_has_a_light_description_and_no_other() -> None:
    assert sorted(families.described_families()) == GENERATORS.names()
    assert families.family_names() == GENERATORS.names()


@pytest.mark.parametrize("name", GENERATORS.names())
def test_light_description_equals_the_family(name: str) -> None:
    light, cls = families.described_families()[name], generator_class(name)
    assert light.family == cls.family == name
    # The same config: fields, defaults, size range and rule.
    assert [(f.name, f.default) for f in dataclasses.fields(light.config_cls)] == \
           [(f.name, f.default) for f in dataclasses.fields(cls.config_cls)]
    assert (light.config_cls.max_image_size, light.config_cls.size_rule) == \
           (cls.config_cls.max_image_size, cls.config_cls.size_rule)
    assert families.family_options(name) == generator_options(name)
    assert dict(light.search_space) == dict(cls.search_space)
    assert dict(light.tiny_options) == dict(cls.tiny_options)
    assert light.cpu_default == cls.cpu_default
    assert light.control == bool(getattr(cls, "control", False))
    # A config built from the light side is one the family takes.
    config = families.make_family_config(name, image_size=16, channels=1, num_classes=2,
                                         options=dict(light.tiny_options))
    assert isinstance(config, cls.config_cls)
    assert isinstance(cls(config), cls)


def test_light_choices_equal_the_registries() -> None:
    from ganmix.models._gan_info import DIFFAUGMENT_ITEMS
    from ganmix.models.classifiers import list_classifiers
    from ganmix.models.diffaugment import AUGMENTS

    assert sorted(CLASSIFIER_NAMES) == list_classifiers()
    assert tuple(AUGMENTS) == DIFFAUGMENT_ITEMS


def _run_without_torch(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter; it must print its one error line, and import none of the heavy stack."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        heavy = sorted(m for m in ("torch", "torchvision", "kornia", "sklearn", "PIL", "ray", "mlflow", "optuna")
                       if m in sys.modules)
        print("HEAVY", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", "import sys\n" + script], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    return done.stdout


def test_judging_bad_spec_values_imports_no_torch(tmp_path: Path) -> None:
    out = _run_without_torch("""
        from ganmix.search.recipe import Recipe, RecipeError
        from ganmix.search.space import SpaceError
        from ganmix.search.spec import SearchSpec
        from ganmix.search.preflight import PreflightError, check_spec
        for bad in ({"generator_options": {"latent_dim": 0}}, {"generator": "ddpm", "generator_options": {"width": 3}},
                    {"classifier": "vgg"}, {"image_size": 300}, {"generator": "stylegan"}):
            try:
                Recipe(**bad)
            except RecipeError as exc:
                print("RECIPE", exc)
        try:
            spec = SearchSpec.from_mapping({"generator_space": {"dcgan": {"latent_dim": {"type": "int", "low": 0,
                                                                                          "high": 64}}}})
            check_spec(spec, sample_metrics=True)
        except (SpaceError, RecipeError, PreflightError) as exc:
            print("SPEC", exc)
        spec = SearchSpec.from_mapping({"trials": 3})  # a good one: the default space, every family's options
        check_spec(spec, sample_metrics=True)
        print("GOOD", sorted(spec.generator_space))
    """, tmp_path)
    assert out.count("RECIPE") == 5 and "latent_dim must be an int in 1..4096, got 0" in out
    assert "width must be even" in out and "classifier must be one of" in out
    assert "SPEC" in out and "GOOD ['acgan', 'cvae', 'dcgan', 'ddpm', 'wgan_gp']" in out


def test_judging_bad_data_imports_no_torch(tmp_path: Path) -> None:
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "breastmnist.npz").write_text("text\n")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("val", 0), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    (tmp_path / "empty_val").mkdir()
    np.savez(tmp_path / "empty_val" / "breastmnist.npz", **arrays)
    out = _run_without_torch("""
        from pathlib import Path
        from ganmix.datasets import DatasetError
        from ganmix.search.preflight import check_search_data
        from ganmix.search.spec import SearchSpec
        for folder, extra in (("text", {}), ("empty_val", {}), ("empty_val", {"class_fraction": {"foo": 0.5}})):
            try:
                check_search_data(SearchSpec.from_mapping({"dataset": "breastmnist", **extra}), Path(folder))
            except DatasetError as exc:
                print("DATA", exc)
    """, tmp_path)
    assert "not a readable .npz" in out and "the val split is empty" in out
    assert "unknown class 'foo'" in out
