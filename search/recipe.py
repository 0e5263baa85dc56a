"""The typed, frozen augmentation recipe: everything one trial needs to be re-run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ALLOCATIONS = ("proportional", "balance")
RECIPE_FORMAT = "ganmix.recipe/1"


class RecipeError(ValueError):
    """A recipe field with a bad value; the message names the field and quotes the value."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    # Data: which data set, and the scarcity applied to its train split (val/test never change).
    dataset: str = "digits"
    image_size: int | None = None
    train_per_class: int | None = None
    class_fraction: tuple[tuple[str, float], ...] = ()
    # Generator.
    generator: str = "dcgan"
    gan_epochs: int = 30
    latent_dim: int = 64
    generator_options: tuple[tuple[str, Any], ...] = ()
    # Mixing.
    synthetic_ratio: float = 1.0
    allocation: str = "proportional"
    filter_threshold: float = 0.0
    # Classifier.
    classifier: str = "small_cnn"
    classifier_lr: float = 1e-3
    classifier_epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    # Marks the real-only baseline trial of a search; not a knob.
    baseline: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        # Normalise mappings given as dicts into sorted tuples so the recipe stays hashable and frozen.
        for name in ("class_fraction", "generator_options"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, tuple(sorted(value.items())))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(tuple(p) for p in value))
        self._validate()

    def _validate(self) -> None:
        from ganmix.models.classifiers import list_classifiers
        from ganmix.models.generator import GeneratorError, list_generators, make_generator_config

        _check(isinstance(self.dataset, str) and self.dataset != "", "dataset", self.dataset, "a non-empty name")
        if self.image_size is not None:
            _check_int(self, "image_size", low=8, high=256)
        if self.train_per_class is not None:
            _check_int(self, "train_per_class", low=1)
        for cls, frac in self.class_fraction:
            _check(
                isinstance(frac, (int, float)) and 0 < frac <= 1, f"class_fraction[{cls}]", frac, "a fraction in (0, 1]"
            )
        _check(self.generator in list_generators(), "generator", self.generator, f"one of {list_generators()}")
        _check_int(self, "gan_epochs", low=1, high=100_000)
        _check_int(self, "latent_dim", low=1, high=4096)
        try:  # family options are checked by the family's own typed config
            make_generator_config(self.generator, image_size=28, channels=1, num_classes=2,
                                  latent_dim=self.latent_dim, options=dict(self.generator_options))
        except GeneratorError as exc:
            raise RecipeError(f"generator_options: {exc}") from None
        _check_float(self, "synthetic_ratio", low=0.0, high=100.0)
        _check(self.allocation in ALLOCATIONS, "allocation", self.allocation, f"one of {list(ALLOCATIONS)}")
        _check_float(self, "filter_threshold", low=0.0, high=1.0)
        _check(self.classifier in list_classifiers(), "classifier", self.classifier, f"one of {list_classifiers()}")
        _check_float(self, "classifier_lr", low=1e-8, high=10.0)
        _check_int(self, "classifier_epochs", low=1, high=100_000)
        _check_int(self, "batch_size", low=1, high=1_000_000)
        _check_int(self, "seed", low=0)

    # --- round trips -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["class_fraction"] = dict(self.class_fraction)
        out["generator_options"] = dict(self.generator_options)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "recipe") -> Recipe:
        if not isinstance(data, Mapping):
            raise RecipeError(f"{source}: expected a mapping of recipe fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            raise RecipeError(f"{source}: unknown field(s) {unknown}; expected some of {sorted(known)}")
        if data.get("format", RECIPE_FORMAT) != RECIPE_FORMAT:  # a newer (or foreign) layout: refuse, do not guess
            raise RecipeError(f"{source}: format {data['format']!r} is not supported; expected {RECIPE_FORMAT}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump({"format": RECIPE_FORMAT, **self.to_dict()}, sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "recipe") -> Recipe:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"{source}: not valid YAML ({exc})") from None
        return cls.from_dict(data or {}, source=source)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return cls.from_yaml(path.read_text(), source=str(path))

    def to_params(self) -> dict[str, str]:
        """Flat string params for MLflow (one per field; mappings flattened with dots)."""
        params: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                params.update({f"{key}.{k}": str(v) for k, v in value.items()})
            else:
                params[key] = str(value)
        return params

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise RecipeError(f"{name} must be {expected}, got {value!r}")


def _check_int(recipe: Recipe, name: str, *, low: int, high: int | None = None) -> None:
    value = getattr(recipe, name)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    _check(ok, name, value, f"an integer in [{low}, {high if high is not None else 'inf'}]")


def _check_float(recipe: Recipe, name: str, *, low: float, high: float) -> None:
    value = getattr(recipe, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
    _check(ok, name, value, f"a number in [{low}, {high}]")
