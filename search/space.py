"""Typed search dimensions and the define-by-run Optuna space built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # Optuna is imported by whoever hands a trial in; the spec checks need not wait for it
    import optuna

# Optuna user attribute that marks the real-only baseline trial enqueued at the start of a search.
BASELINE_ATTR = "ganmix_baseline"


class SpaceError(ValueError):
    """A malformed search dimension; the message names it and quotes the bad value."""


@dataclass(frozen=True)
class FloatDim:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class IntDim:
    low: int
    high: int
    log: bool = False

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class CategoricalDim:
    choices: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))


Dim = Union[FloatDim, IntDim, CategoricalDim]


def parse_dim(name: str, raw: Any, *, section: str = "space") -> Dim:
    """A dimension from YAML: {type: float|int, low, high, log} or {type: categorical, choices}.

    Errors are labelled `<section>.<name>` (e.g. generator_space.wgan_gp.n_critic)."""
    if isinstance(raw, list):
        raw = {"type": "categorical", "choices": raw}
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{section}.{name}: expected a mapping like {{type: float, low: 0, high: 1}}, got {raw!r}")
    kind = raw.get("type", "categorical" if "choices" in raw else None)
    extra = sorted(set(raw) - {"type", "low", "high", "log", "choices"})
    if extra:
        raise SpaceError(f"{section}.{name}: unknown key(s) {extra}; expected type, low, high, log or choices")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{section}.{name}.choices must be a non-empty list, got {choices!r}")
        return CategoricalDim(tuple(choices))
    if kind not in ("float", "int"):
        raise SpaceError(f"{section}.{name}.type must be float, int or categorical, got {kind!r}")
    low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
    if not isinstance(log, bool):  # `log: 'false'` (a string) must not read as true
        raise SpaceError(f"{section}.{name}.log must be true or false (a YAML boolean, unquoted), got {log!r}")
    number = (int,) if kind == "int" else (int, float)
    for key, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool):
            expected = "an integer" if kind == "int" else "a number"
            raise SpaceError(f"{section}.{name}.{key} must be {expected}, got {value!r}")
    if low > high:
        raise SpaceError(f"{section}.{name}: low {low!r} is above high {high!r}")
    if log and low <= 0:
        raise SpaceError(f"{section}.{name}: a log scale needs low > 0, got {low!r}")
    return IntDim(low, high, log) if kind == "int" else FloatDim(float(low), float(high), log)


def dim_to_yaml(dim: Dim) -> dict[str, Any]:
    if isinstance(dim, CategoricalDim):
        return {"type": "categorical", "choices": list(dim.choices)}
    kind = "int" if isinstance(dim, IntDim) else "float"
    return {"type": kind, "low": dim.low, "high": dim.high, "log": dim.log}


def option_key(family: str, option: str) -> str:
    """Optuna/Tune name of a family-specific option, so each family's options stay separate dimensions."""
    return f"{family}.{option}"


@dataclass(frozen=True)
class DefineByRun:
    """The Optuna define-by-run function handed to Ray's OptunaSearch.

    A module-level class rather than a closure, because Tune pickles the searcher to resume it.
    Family-specific options are suggested only when that family is chosen (a conditional space), and
    generator dimensions only when a generator is. The baseline trial suggests nothing: it returns the
    default real-only recipe as constants.
    """

    space: Mapping[str, Dim]
    generator_space: Mapping[str, Mapping[str, Dim]]
    fixed: Mapping[str, Any]
    baseline: Mapping[str, Any]

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        from ganmix.search.recipe import GAN_FIELDS, REAL_ONLY, is_real_only

        if trial.user_attrs.get(BASELINE_ATTR):
            return {**self.fixed, **self.baseline, "baseline": True}
        # The family first: a real-only recipe (`none`) draws no generator, ratio or allocation dimension,
        # so TPE tunes real-only recipes on their own dimensions with the same budget as GAN ones.
        values: dict[str, Any] = {}
        if "generator" in self.space:
            values["generator"] = self.space["generator"].suggest(trial, "generator")
        family = values.get("generator", self.fixed.get("generator"))
        real_only = is_real_only(family)
        for name, dim in self.space.items():
            if name not in values and not (real_only and name in GAN_FIELDS):
                values[name] = dim.suggest(trial, name)
        for option, dim in ({} if real_only else self.generator_space.get(family, {})).items():
            dim.suggest(trial, option_key(family, option))
        # Suggested values reach Tune's config by themselves; only constants are returned.
        constants = {k: v for k, v in self.fixed.items() if k not in values}
        if real_only:
            constants.update(REAL_ONLY)
        return constants


def split_options(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate recipe fields from `family.option` keys of the chosen family (others are dropped)."""
    family = config.get("generator")
    fields: dict[str, Any] = {}
    options: dict[str, Any] = dict(config.get("generator_options") or {})
    for key, value in config.items():
        if "." in key:
            owner, option = key.split(".", 1)
            if owner == family:
                options[option] = value
        elif key != "generator_options":
            fields[key] = value
    return fields, options
