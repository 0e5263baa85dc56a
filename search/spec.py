"""The search spec: data, budget, objective and space, from defaults, a YAML file and CLI flags."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganmix.search.constraints import Bound, parse_constraints
from ganmix.models.metrics import SEARCHABLE, canonical_metric, metric_mode, selection_metric
from ganmix.search.recipe import Recipe, RecipeError
from ganmix.search.space import Dim, SpaceError, dim_to_yaml, parse_dim

SPEC_FORMAT = "ganmix.search/1"
DATA_FIELDS = ("dataset", "size", "image_size", "train_per_class", "class_fraction")
# Every seed of a trial comes from the spec's `seed` (one source); confirmation varies the last two.
SEED_FIELDS = ("data_seed", "generator_seed", "classifier_seed")


def default_families(*, gpu: bool) -> list[str]:
    """The families the default space offers: all on a GPU; on the CPU those that declare cpu_default."""
    from ganmix.models.families import family_info, generator_names

    return [name for name in generator_names() if gpu or family_info(name).cpu_default]


def cpu_left_out() -> str | None:
    """One console line naming the families the default space leaves out on the CPU, or None."""
    from ganmix.models.families import generator_names

    left = sorted(set(generator_names()) - set(default_families(gpu=False)))
    return (f"ganmix: no GPU per trial, so the default space leaves out {', '.join(left)} (too slow on the CPU); "
            "name it in space.generator to search it anyway") if left else None


def default_space(*, gpu: bool = False) -> dict[str, Dim]:
    from ganmix.models.choices import AUGMENTATIONS, CLASS_WEIGHTS
    from ganmix.search.recipe import ALLOCATIONS, NO_GENERATOR

    return {
        "generator": parse_dim("generator", [NO_GENERATOR, *default_families(gpu=gpu)]),
        "generator_epochs": parse_dim("generator_epochs", {"type": "int", "low": 5, "high": 300, "log": True}),
        "synthetic_ratio": parse_dim("synthetic_ratio", {"type": "float", "low": 0.1, "high": 3.0}),
        "allocation": parse_dim("allocation", list(ALLOCATIONS)),
        "classifier_lr": parse_dim("classifier_lr", {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}),
        "augment": parse_dim("augment", list(AUGMENTATIONS)),
        "class_weight": parse_dim("class_weight", list(CLASS_WEIGHTS)),
    }


def default_generator_space() -> dict[str, dict[str, Dim]]:
    """What each family declares it adds to a search (its light description's `search_space`)."""
    from ganmix.models.families import family_info, generator_names

    return {  # a control (holdout) has nothing to search
        name: {option: parse_dim(f"{name}.{option}", raw, section="generator_space")
               for option, raw in family_info(name).search_space.items()}
        for name in generator_names()
    }


def upgrade_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """A spec written for recipe format 2 (`gan_epochs`, a `latent_dim` for every family) in today's names:
    `latent_dim` in `space` or `fixed` becomes a dimension of every latent family's generator_space."""
    from ganmix.search.recipe import RENAMED_FIELDS

    data = dict(data)
    latent = None
    for section in ("space", "fixed"):
        if isinstance(data.get(section), Mapping):
            values = {RENAMED_FIELDS.get(k, k): v for k, v in data[section].items()}
            if "latent_dim" in values:
                raw = values.pop("latent_dim")
                latent = raw if section == "space" else [raw]
            data[section] = values
    if latent is not None:
        from ganmix.models.families import family_names, family_options

        families = data.get("generator_space")
        families = dict(families) if isinstance(families, Mapping) else {
            name: {k: dim_to_yaml(d) for k, d in dims.items()} for name, dims in default_generator_space().items()}
        for name in family_names():
            if "latent_dim" in family_options(name):
                families[name] = {**(families.get(name) or {}), "latent_dim": latent}
        data["generator_space"] = families
    return data


def _space_dim(name: str, raw: Any) -> Dim:
    """A dimension of a spec's `space`; `default` stands for the default space's (e.g. `generator: default`:
    none and every family the default offers, so a spec need not list the families)."""
    if raw != "default":
        return parse_dim(name, raw)
    defaults = default_space()
    if name not in defaults:
        raise SpaceError(f"space.{name}: has no default dimension; `default` works for {sorted(defaults)}")
    return defaults[name]


# The smallest valid value of each integer budget field; check_budget is the one place that judges them
# (the spec and the CLI's flags alike).
# The confirmation's counts (flags of `search` and `confirm`) are judged here too.
_INT_MINIMA = {"trials": 1, "max_concurrent": 1, "grace_period": 1, "reduction_factor": 2, "confirm": 0,
               "confirm_top": 1, "seeds": 1, "top": 1, "finalists.count": 0, "finalists.seeds": 1}
# After the trials: the best `count` recipes of each arm kind (real-only, generator) re-evaluated over
# `seeds` more seeds on the validation split and ranked on the mean (search/finalists.py); count 0: off.
FINALISTS = {"count": 2, "seeds": 3}


def check_budget(name: str, value: Any, *, label: str | None = None) -> None:
    """Raise SpaceError, labelled `label` (a flag) or the field name, unless `value` is a valid `name`."""
    label = label or name
    if name in _INT_MINIMA:
        low = _INT_MINIMA[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SpaceError(f"{label} must be an integer >= {low}, got {value!r}")
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if name == "cpus_per_trial" and not (number and value > 0):
        raise SpaceError(f"{label} must be a number > 0, got {value!r}")
    if name == "gpus_per_trial" and not (number and value >= 0):
        raise SpaceError(f"{label} must be a number >= 0 (fractions allowed), got {value!r}")
    if name == "time_budget" and not (number and value > 0):
        raise SpaceError(f"{label} must be a number of seconds > 0, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class SearchSpec:
    name: str | None = None
    dataset: str = "digits"
    size: int | None = None  # the MedMNIST+ file (28, 64, 128, 224 px); see Recipe
    image_size: int | None = None
    train_per_class: int | None = None
    class_fraction: dict[str, float] = field(default_factory=dict)
    trials: int = 8
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    metric: str = "val_auc"
    seed: int = 0
    # ASHA's first rung, in classifier epochs; None: a third of the budget (at least 2). Judging trials after
    # 2 of 30 epochs would compare models still in their learning-rate warm-up (one-cycle): noise.
    grace_period: int | None = None
    reduction_factor: int = 3
    space: dict[str, Dim] = field(default_factory=default_space)
    generator_space: dict[str, dict[str, Dim]] = field(default_factory=default_generator_space)
    fixed: dict[str, Any] = field(default_factory=dict)
    # Sample metrics as constraints, e.g. {near_copy_fraction: {max: 0.01}}.
    constraints: dict[str, dict[str, float]] = field(default_factory=dict)
    finalists: dict[str, int] = field(default_factory=lambda: dict(FINALISTS))

    def __post_init__(self) -> None:
        from ganmix.datasets.names import canonical_name

        object.__setattr__(self, "dataset", canonical_name(self.dataset))  # one spelling, one experiment
        if isinstance(self.metric, str):  # `val/auc`, as the MLflow UI shows it, is `val_auc`
            object.__setattr__(self, "metric", canonical_metric(self.metric))
        if self.metric not in SEARCHABLE:  # validates the name before any work
            raise SpaceError(f"unknown metric {self.metric!r} for a search; expected one of {SEARCHABLE} "
                             "(validation or sample metrics)")
        parse_constraints(self.constraints)
        bad_keys = sorted(set(self.finalists) - set(FINALISTS))
        if bad_keys:
            raise SpaceError(f"finalists: unknown key(s) {bad_keys}; expected some of {sorted(FINALISTS)}")
        object.__setattr__(self, "finalists", {**FINALISTS, **self.finalists})
        for key, value in self.finalists.items():
            check_budget(f"finalists.{key}", value)
        for name in ("trials", "max_concurrent", "grace_period", "reduction_factor", "cpus_per_trial",
                     "gpus_per_trial"):
            if getattr(self, name) is not None or name != "grace_period":
                check_budget(name, getattr(self, name))
        recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - set(DATA_FIELDS) - set(SEED_FIELDS) - {"baseline"}
        for section, keys in (("space", self.space), ("fixed", self.fixed)):
            bad = sorted(set(keys) - recipe_fields)
            if bad:
                raise SpaceError(f"{section}: unknown recipe field(s) {bad}; expected some of {sorted(recipe_fields)}")
        both = sorted(set(self.space) & set(self.fixed))
        if both:
            raise SpaceError(f"field(s) {both} are both searched (space) and fixed; pick one")
        self.base_recipe()  # fixed values and data settings must form a valid recipe

    @property
    def mode(self) -> str:
        return metric_mode(self.metric)

    @property
    def bounds(self) -> tuple[Bound, ...]:
        return parse_constraints(self.constraints)

    def base_recipe(self) -> Recipe:
        """The recipe before any searched value: data settings + fixed fields + defaults."""
        data = {k: getattr(self, k) for k in DATA_FIELDS}
        seeds = dict.fromkeys(SEED_FIELDS, self.seed)
        # Checkpoints are chosen by the objective when it is a val metric (else val_auc), unless fixed.
        derived = {"select_metric": selection_metric(self.metric), **seeds}
        try:
            return Recipe(**data, **{**derived, **self.fixed})
        except RecipeError as exc:
            try:  # which part is wrong: the data settings alone, or the fixed fields?
                Recipe(**data, **derived)
            except RecipeError:
                raise SpaceError(str(exc)) from None
            raise SpaceError(f"fixed: {exc}") from None

    def baseline_recipe(self) -> Recipe:
        """The fixed real-only baseline: no generator, the same classifier with its default settings.
        The tuned real-only baseline that lifts are measured against is the best `generator: none` trial."""
        from ganmix.search.recipe import NO_GENERATOR

        from ganmix.search.recipe import GAN_FIELDS
        from ganmix.search.space import CategoricalDim

        base = self.base_recipe().replace(generator=NO_GENERATOR, synthetic_ratio=0.0, generator_options=(),
                                          baseline=True)
        # A searched choice the default is not among (`classifier: [resnet18]`): the baseline takes its first
        # choice, so it is a recipe of the space and compares like with like.
        inside = {k: d.choices[0] for k, d in self.space.items() if isinstance(d, CategoricalDim)
                  and k != "generator" and k not in GAN_FIELDS and getattr(base, k, None) not in d.choices}
        try:
            return base.replace(**inside)
        except RecipeError:  # first choices that do not go together: the defaults, as before
            return base

    def fixed_config(self) -> dict[str, Any]:
        """Every recipe field that is not searched, as Tune config constants."""
        full = self.base_recipe().to_dict()
        full.pop("baseline")
        return {k: v for k, v in full.items() if k not in self.space}

    # --- YAML ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["space"] = {k: dim_to_yaml(d) for k, d in self.space.items()}
        out["generator_space"] = {
            fam: {k: dim_to_yaml(d) for k, d in dims.items()} for fam, dims in self.generator_space.items()
        }
        return {"format": SPEC_FORMAT, **out}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "spec") -> SearchSpec:
        if not isinstance(data, Mapping):
            raise SpaceError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"format"})
        if unknown:
            raise SpaceError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        if data.get("format", SPEC_FORMAT) != SPEC_FORMAT:
            raise SpaceError(f"{source}: format {data['format']!r} is not supported; expected {SPEC_FORMAT}")
        kwargs = {k: v for k, v in upgrade_spec(data).items() if k in known}
        for section in ("space", "generator_space", "fixed", "class_fraction", "constraints", "finalists"):
            if kwargs.get(section) is not None and not isinstance(kwargs[section], Mapping):
                raise SpaceError(f"{source}: {section} must be a mapping, got {type(kwargs[section]).__name__} "
                                 f"{str(kwargs[section])[:200]!r}")
        try:
            parse_constraints(kwargs.get("constraints"))  # before the default space is built
            if "space" in kwargs:
                kwargs["space"] = {k: _space_dim(k, v) for k, v in (kwargs["space"] or {}).items()}
            if "generator_space" in kwargs:
                kwargs["generator_space"] = {
                    fam: {k: parse_dim(f"{fam}.{k}", v, section="generator_space") for k, v in (dims or {}).items()}
                    for fam, dims in (kwargs["generator_space"] or {}).items()
                }
            kwargs["fixed"] = dict(kwargs.get("fixed") or {})
            if "space" not in kwargs and kwargs["fixed"]:  # fixing a field takes it out of the default space
                kwargs["space"] = {k: d for k, d in default_space().items() if k not in kwargs["fixed"]}
            kwargs["class_fraction"] = dict(kwargs.get("class_fraction") or {})
            kwargs["constraints"] = dict(kwargs.get("constraints") or {})
            kwargs["finalists"] = dict(kwargs.get("finalists") or {})
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:  # SpaceError and RecipeError are ValueErrors
            raise SpaceError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> SearchSpec:
        return cls.from_mapping({**cls.read(path), **overrides}, source=str(path))

    @staticmethod
    def read(path: str | Path) -> Mapping[str, Any]:
        """A spec file's top-level mapping, as written (the keys the user chose to set)."""
        from ganmix.search.yamlfile import read_yaml_file

        data = read_yaml_file(path, what="search spec", error=SpaceError)
        if not isinstance(data, Mapping):
            raise SpaceError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return data

    def replace(self, **changes: Any) -> SearchSpec:
        return dataclasses.replace(self, **changes)

    def for_device(self) -> tuple[SearchSpec, str | None]:
        """The spec with the default generator dimension fitted to its trials' device, and a console line
        when the CPU default leaves a family out. A `generator` dimension other than the default stands."""
        if self.space.get("generator") != default_space(gpu=False)["generator"]:
            return self, None
        if self.gpus_per_trial > 0:
            return self.replace(space={**self.space, "generator": default_space(gpu=True)["generator"]}), None
        return self, cpu_left_out()
