"""The generator families as the Recipe, the spec and the pre-flight see them: names, options, defaults, search
spaces, size rules and cpu_default, all without importing torch.

Each family module `ganmix/models/<m>.py` (the one with `@register_generator`, torch) has a light description
beside it, `<m>_info.py`, that defines `FAMILY = FamilyInfo(...)` with the family's typed config class; the
family's class takes its declarations from there (one source), and tests/test_families.py checks every
registered family against its description. A family module without a description still works: its facts are
then read off the registered class (importing torch, so its errors come slower), never guessed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganmix.models._registry import UnknownModelError
from ganmix.models.generator_config import GeneratorConfig, normalise_option
from ganmix.models.errors import GeneratorError

# How a family module is recognised without importing every module of the package (classify, quality, ...):
# a line that is exactly the decorator (models/generator.py's registry looks for the same).
FAMILY_MARK = re.compile(r"^@register_generator$", re.MULTILINE)
DESCRIPTION_SUFFIX = "_info"


@dataclass(frozen=True)
class FamilyInfo:
    """What ganmix needs to know about a family before building one: its name, typed config (options,
    defaults, ranges, size rule), the search dimensions it adds by default (option -> a spec dimension as
    YAML would write it), the options tests train it with, and whether the default space offers it on CPUs."""

    family: str
    config_cls: type[GeneratorConfig]
    search_space: Mapping[str, Any] = field(default_factory=dict)
    tiny_options: Mapping[str, Any] = field(default_factory=dict)
    cpu_default: bool = True
    control: bool = False  # a positive control (`holdout`): never in the default space, labelled as such

    @classmethod
    def of_class(cls, model_cls: Any) -> FamilyInfo:
        """The description read off a registered family class (the fallback for an undescribed family)."""
        return cls(family=model_cls.family, config_cls=model_cls.config_cls, search_space=model_cls.search_space,
                   tiny_options=model_cls.tiny_options, cpu_default=model_cls.cpu_default,
                   control=bool(getattr(model_cls, "control", False)))


_described: dict[str, FamilyInfo] | None = None
_undescribed_modules: list[str] = []


def _scan() -> dict[str, FamilyInfo]:
    """Every light description in ganmix.models, and the family modules that lack one."""
    global _described
    if _described is None:
        import ganmix.models as package

        found: dict[str, FamilyInfo] = {}
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            spec = importlib.util.find_spec(f"ganmix.models.{info.name}")
            if not (spec and spec.origin and FAMILY_MARK.search(Path(spec.origin).read_text())):
                continue
            name = f"ganmix.models.{info.name}{DESCRIPTION_SUFFIX}"
            if importlib.util.find_spec(name) is None:
                _undescribed_modules.append(info.name)
                continue
            described = getattr(importlib.import_module(name), "FAMILY", None)
            if not isinstance(described, FamilyInfo):
                raise TypeError(f"{name} must define FAMILY = FamilyInfo(...)")
            found[described.family] = described
        _described = found
    return _described


def described_families() -> dict[str, FamilyInfo]:
    """The families that have a light description, by name (what tests compare with the registry)."""
    return dict(_scan())


@functools.cache
def _has_plugins() -> bool:
    """Whether an installed package declares a generator family (read once: every Recipe asks)."""
    from ganmix.models._registry import PLUGIN_GROUP, entry_point_names

    return bool(entry_point_names(PLUGIN_GROUP))


def _all() -> dict[str, FamilyInfo]:
    found = _scan()
    # A plugin family (entry-point group ganmix.generators) has no light description: read off its class.
    if not _undescribed_modules and not _has_plugins():
        return found
    from ganmix.models.generator import GENERATORS  # torch: only for a family without a description

    return {**{name: FamilyInfo.of_class(GENERATORS.get(name)) for name in GENERATORS.names()}, **found}


def family_names() -> list[str]:
    """Every generator family, sorted (as the registry lists them)."""
    return sorted(_all())


def generator_names() -> list[str]:
    """The generator families a default space may offer: every family but the controls."""
    return [name for name, info in sorted(_all().items()) if not info.control]


def is_control(name: str) -> bool:
    """Whether `name` is a control family (`holdout`), judged without torch."""
    info = _all().get(name)
    return info is not None and info.control


def family_info(name: str) -> FamilyInfo:
    families = _all()
    if name not in families:
        raise UnknownModelError(f"unknown generator {name!r}; expected one of {sorted(families)}")
    return families[name]


def family_options(name: str) -> dict[str, object]:
    """The family's extra config fields (beyond GeneratorConfig) mapped to their defaults."""
    base = {f.name for f in dataclasses.fields(GeneratorConfig)}
    return {f.name: f.default for f in dataclasses.fields(family_info(name).config_cls) if f.name not in base}


def make_family_config(
    name: str,
    *,
    image_size: int,
    channels: int,
    num_classes: int,
    batch_size: int = 64,
    lr: float | None = None,
    options: Mapping[str, object] | None = None,
) -> GeneratorConfig:
    """The family's typed config; `lr=None` keeps the family's default learning rate."""
    cls = family_info(name).config_cls
    valid = family_options(name)
    given = dict(options or {})
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise GeneratorError(f"unknown option(s) {unknown} for generator {name!r}; valid options: {sorted(valid)}")
    values = {key: normalise_option(name, key, value, valid[key]) for key, value in given.items()}
    if lr is not None:
        values["lr"] = normalise_option(name, "lr", lr, 0.0)
    return cls(
        image_size=image_size, channels=channels, num_classes=num_classes,
        batch_size=batch_size, **values,  # type: ignore[arg-type]
    )
