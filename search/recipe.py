"""The typed, frozen augmentation recipe: everything one trial needs to be re-run."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# `generator: none` (NO_GENERATOR) is a real-only recipe: no generator is trained and nothing synthetic is
# mixed in. It lives below search/ because tracking/ reads it back from a run's params.
from ganmix.models.choices import CLASSIFIER_NAMES, NO_GENERATOR, TRAINER_DEFAULTS

ALLOCATIONS = ("proportional", "balance")
# Fields that only mean something when a generator is trained: a real-only recipe logs none of them as
# MLflow params, and the search space draws none of them (nor the ratio) for a real-only trial.
GENERATOR_FIELDS = ("generator_epochs", "generator_options", "allocation", "filter_threshold", "generator_seed")
GAN_FIELDS = (*GENERATOR_FIELDS, "synthetic_ratio")
# What a real-only recipe sets instead of drawing the GAN fields (the search space and its pre-flight check).
REAL_ONLY = {"synthetic_ratio": 0.0, "generator_options": {}}
RECIPE_FORMAT = "ganmix.recipe/3"
# Older formats still load. Format 1 had one `seed` for everything: data, generator and classifier seed alike.
# Formats 1 and 2 named the generator budget `gan_epochs` and had a `latent_dim` for every family: now a
# generator option of the families that have a latent (dropped for the others). They had no step floor:
# they load with classifier_min_steps 0, so an exported recipe re-runs exactly as it ran.
_OLD_FORMATS = ("ganmix.recipe/1", "ganmix.recipe/2")
RENAMED_FIELDS = {"gan_epochs": "generator_epochs"}
# Seeds reach numpy, torch and Ray, which all stop at 2**32 - 1.
SEED_MAX = 2**32 - 1
# Integer fields that CLI flags set, judged from this table alone (no model registry, no torch) so that a bad
# flag is answered before any heavy import; _validate judges the same fields through it. (Image sizes have
# their own judge, models/sizes.py.)
INT_RANGES: dict[str, tuple[int, int | None]] = {
    "train_per_class": (1, None), **dict.fromkeys(("data_seed", "generator_seed", "classifier_seed"), (0, SEED_MAX)),
}


class RecipeError(ValueError):
    """A recipe field with a bad value; the message names the field and quotes the value."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    # Data: which data set, and the scarcity applied to its train split (val/test never change).
    dataset: str = "digits"
    size: int | None = None  # MedMNIST+ file to read (28, 64, 128, 224 px); None: the 28 px file
    image_size: int | None = None  # resize to this; None: the file's size (8 digits, `size` MedMNIST, 64 folders)
    train_per_class: int | None = None
    class_fraction: tuple[tuple[str, float], ...] = ()
    data_seed: int = 0  # seeds the scarcity subsample (and an image folder's split): `ganmix train` sees the same data
    # Generator ("none": a real-only recipe).
    generator: str = "dcgan"
    generator_epochs: int = 30  # passes over the real train split
    generator_options: tuple[tuple[str, Any], ...] = ()
    # Mixing.
    synthetic_ratio: float = 1.0
    allocation: str = "proportional"
    filter_threshold: float = 0.0
    generator_seed: int = 0
    # Classifier. The budget is counted in epochs of the real train split: synthetic images replace real
    # ones in the batches rather than adding optimizer steps (see models/classify.py). A small split also
    # gets at least `classifier_min_steps` optimizer steps: each epoch then makes several passes over it.
    classifier: str = "small_cnn"
    # "imagenet": torchvision's ImageNet weights (resnet18, resnet50, efficientnet_b0, convnext_tiny; see
    # models/pretrained.py). "none" keeps resnet18 the from-scratch 3x3-stem network it always was.
    pretrained: str = "none"
    # The size the classifier sees (the data are resized on the fly); None: 224 px with ImageNet weights,
    # the data's own size otherwise. Both default to what recipes without them ran as.
    classifier_size: int | None = None
    # bench_steps.py --full, 6 seeds: real-only test AUC .907 at 60 epochs, lr 2e-3, flip_rotate (.893 at the
    # old 30 epochs, lr 1e-3, no augmentation): a well-trained baseline, above MedMNIST v2's ResNet-18 .901.
    classifier_lr: float = 2e-3
    classifier_epochs: int = 60
    # bench_steps.py, 100 images, 6 seeds, these defaults: test AUC .812@60 steps, .841@120, .840@240
    classifier_min_steps: int = 120
    batch_size: int = TRAINER_DEFAULTS["batch_size"]
    weight_decay: float = TRAINER_DEFAULTS["weight_decay"]
    lr_schedule: str = TRAINER_DEFAULTS["lr_schedule"]
    augment: str = TRAINER_DEFAULTS["augment"]
    class_weight: str = TRAINER_DEFAULTS["class_weight"]
    select_metric: str = TRAINER_DEFAULTS["select_metric"]  # the final model is the epoch with the best value of this val metric
    classifier_seed: int = 0  # the same classifier seed gives the same initial weights in any recipe
    # Marks the real-only baseline trial of a search; not a knob.
    baseline: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        from ganmix.datasets.names import canonical_name

        object.__setattr__(self, "dataset", canonical_name(self.dataset))  # one spelling, one experiment
        # Normalise mappings given as dicts into sorted tuples so the recipe stays hashable and frozen.
        for name in ("class_fraction", "generator_options"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, tuple(sorted(value.items())))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(tuple(p) for p in value))
        self._validate()

    @property
    def real_only(self) -> bool:
        return is_real_only(self.generator, self.synthetic_ratio)

    @property
    def control(self) -> bool:
        """A positive control (`holdout`: held-out real images), not a generator: labelled so everywhere."""
        from ganmix.models.families import is_control

        return not self.real_only and is_control(self.generator)

    def _validate(self) -> None:
        # Light descriptions only (models/families.py, models/choices.py): judging a recipe imports no torch.
        from ganmix.models.choices import AUGMENTATIONS, CLASS_WEIGHTS, LR_SCHEDULES
        from ganmix.models.errors import GeneratorError
        from ganmix.models.families import family_names, is_control, make_family_config
        from ganmix.models.metrics import SELECTABLE

        _check(isinstance(self.dataset, str) and self.dataset != "", "dataset", self.dataset, "a non-empty name")
        self._validate_sizes()
        for name in INT_RANGES:
            if getattr(self, name) is not None or name != "train_per_class":
                check_int_field(name, getattr(self, name))
        for cls, frac in self.class_fraction:
            _check(
                isinstance(frac, (int, float)) and 0 < frac <= 1, f"class_fraction[{cls}]", frac, "a fraction in (0, 1]"
            )
        families = [NO_GENERATOR, *family_names()]
        _check(self.generator in families, "generator", self.generator, f"one of {families}")
        if is_control(self.generator) and not (self.train_per_class or self.class_fraction):
            from ganmix.models.holdout_info import NEEDS_HELDOUT  # the only control: its own words

            raise RecipeError(f"{NEEDS_HELDOUT}; this recipe keeps the whole train split")
        _check_int(self, "generator_epochs", low=1, high=100_000)
        _check_float(self, "synthetic_ratio", low=0.0, high=100.0)
        if self.generator == NO_GENERATOR:
            _check(self.synthetic_ratio == 0, "synthetic_ratio", self.synthetic_ratio,
                   "0 with generator 'none' (a real-only recipe mixes in no synthetic images)")
            _check(not self.generator_options, "generator_options", dict(self.generator_options),
                   "empty with generator 'none'")
        else:
            try:  # family options are checked by the family's own typed config
                make_family_config(self.generator, image_size=28, channels=1, num_classes=2,
                                   options=dict(self.generator_options))
            except GeneratorError as exc:
                raise RecipeError(f"generator_options: {exc}") from None
        _check(self.allocation in ALLOCATIONS, "allocation", self.allocation, f"one of {list(ALLOCATIONS)}")
        _check_float(self, "filter_threshold", low=0.0, high=1.0)
        # CLASSIFIER_NAMES lists the registry's names without torch (tests/test_families.py keeps them equal).
        _check(self.classifier in CLASSIFIER_NAMES, "classifier", self.classifier, f"one of {sorted(CLASSIFIER_NAMES)}")
        self._validate_pretrained()
        _check_float(self, "classifier_lr", low=1e-8, high=10.0)
        _check_int(self, "classifier_epochs", low=1, high=100_000)
        _check_int(self, "classifier_min_steps", low=0, high=10_000_000)
        _check_int(self, "batch_size", low=2, high=1_000_000)
        _check_float(self, "weight_decay", low=0.0, high=1.0)
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, f"one of {list(LR_SCHEDULES)}")
        _check(self.augment in AUGMENTATIONS, "augment", self.augment, f"one of {list(AUGMENTATIONS)}")
        _check(self.class_weight in CLASS_WEIGHTS, "class_weight", self.class_weight, f"one of {list(CLASS_WEIGHTS)}")
        _check(self.select_metric in SELECTABLE, "select_metric", self.select_metric, f"one of {SELECTABLE}")

    def _validate_pretrained(self) -> None:
        from ganmix.models.choices import BACKBONES, MIN_BACKBONE_SIZE, PRETRAINED
        from ganmix.models.sizes import MAX_IMAGE_SIZE

        _check(self.pretrained in PRETRAINED, "pretrained", self.pretrained, f"one of {list(PRETRAINED)}")
        if self.pretrained == "imagenet":
            _check(self.classifier in BACKBONES, "pretrained", self.pretrained,
                   f"'none' with classifier {self.classifier!r} (ImageNet weights exist for {sorted(BACKBONES)})")
        if self.classifier_size is not None:
            low = max(8, MIN_BACKBONE_SIZE.get(self.classifier, 0))
            _check_int(self, "classifier_size", low=low, high=MAX_IMAGE_SIZE)

    def _validate_sizes(self) -> None:
        """`size` names a MedMNIST+ file; the size the models will see (image_size, else the file's own
        size) is judged by models/sizes.py against this recipe's generator and the classifiers."""
        from ganmix.datasets import MEDMNIST_SIZES, DatasetError, native_image_size
        from ganmix.models.sizes import ImageSizeError, check_image_size

        if self.size is not None:
            _check(self.size in MEDMNIST_SIZES and not isinstance(self.size, bool), "size", self.size,
                   f"one of {list(MEDMNIST_SIZES)} (a MedMNIST+ file)")
        if self.image_size is not None:
            size, label, hint = self.image_size, "image_size", ""
        else:
            try:
                size = native_image_size(self.dataset, size=self.size)
            except DatasetError as exc:
                if self.size is not None:  # a size with digits or a folder
                    raise RecipeError(str(exc)) from None
                return  # an unknown name is the loader's to report, with the names it knows
            label, hint = f"{self.dataset}'s own size", "; set image_size to resize it"
        try:
            check_image_size(size, generators=[self.generator], label=label)
        except ImageSizeError as exc:
            raise RecipeError(f"{exc}{hint}") from None

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
        data = dict(data)
        fmt = data.pop("format", RECIPE_FORMAT)
        if fmt in _OLD_FORMATS:
            data = upgrade_fields(data)
        elif fmt != RECIPE_FORMAT:
            raise RecipeError(f"{source}: format {fmt!r} is not supported; expected {RECIPE_FORMAT!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
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
        from ganmix.search.yamlfile import parse_yaml

        if not text.strip():
            raise RecipeError(f"{source}: empty; expected a recipe (ganmix best --export writes one)")
        return cls.from_dict(parse_yaml(text, source, RecipeError), source=source)

    def save(self, path: str | Path) -> None:
        from ganmix.models.files import atomic_write

        atomic_write(path, self.to_yaml())

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        from ganmix.search.yamlfile import read_yaml_file

        return cls.from_dict(read_yaml_file(path, what="recipe file", error=RecipeError), source=str(path))

    def to_params(self) -> dict[str, str]:
        """Flat string params for MLflow (one per field; mappings flattened with dots). A real-only recipe
        logs generator "none" and none of the generator fields, so the runs table never shows a generator
        that did not run."""
        params: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if self.real_only and key in GENERATOR_FIELDS:
                continue
            if self.real_only and key == "generator":
                value = NO_GENERATOR
            if isinstance(value, dict):
                params.update({f"{key}.{k}": str(v) for k, v in value.items()})
            else:
                params[key] = str(value)
        return params

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def ablated(self) -> Recipe:
        """The same recipe without its generator (`confirm`'s ablation arm): only the generator fields
        change, so the classifier's lr, augmentation, class weighting, budget, data and seeds stay the same
        and the difference between the two is the generator's own effect."""
        return self.replace(generator=NO_GENERATOR, **REAL_ONLY)

    def with_seed(self, seed: int) -> Recipe:
        """The same recipe with another generator and classifier seed (the data stay the same)."""
        return self.replace(generator_seed=seed, classifier_seed=seed)


def check_int_field(name: str, value: Any) -> None:
    """One of INT_RANGES' fields, judged without building a Recipe."""
    low, high = INT_RANGES[name]
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    _check(ok, name, value, f"an integer in [{low}, {high if high is not None else 'inf'}]")


def upgrade_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of a format 1 or 2 recipe under their format 3 names (see _OLD_FORMATS)."""
    from ganmix.models.families import family_names, family_options

    data = {RENAMED_FIELDS.get(k, k): v for k, v in data.items()}
    if "seed" in data:
        seed = data.pop("seed")
        data = {"data_seed": seed, "generator_seed": seed, "classifier_seed": seed, **data}
    data.setdefault("classifier_min_steps", 0)
    if "latent_dim" in data:
        latent_dim, family = data.pop("latent_dim"), data.get("generator", Recipe.generator)
        if family in family_names() and "latent_dim" in family_options(family):
            data["generator_options"] = {"latent_dim": latent_dim, **dict(data.get("generator_options") or {})}
    return data


def is_real_only(generator: str | None, synthetic_ratio: float | None = None) -> bool:
    """The one test of real-only: generator "none", or a synthetic ratio of 0. The search space and the
    searcher ask it of a drawn generator before (or without) its ratio; `Recipe.real_only` asks it of both."""
    return generator == NO_GENERATOR or synthetic_ratio == 0


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
