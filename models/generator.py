"""Class-conditional generators: shared config, registry, and the create/sample/save/load API (training:
models/generator_training.py).

A family is one module in ganmix.models that registers a GenerativeModel subclass with `@register_generator`
and declares, on that class, everything else ganmix needs to know about it: its typed config (options,
defaults, ranges), the search dimensions it adds by default and the tiny options tests train it with.
The registry finds those modules itself on first use (they import this one, so a top-level import
would be circular): adding a family needs its module and nothing else. Families outside ganmix are found the
same way through the `ganmix.generators` entry-point group (models/_registry.py): an installed package that
declares one is imported on first use and registers its class like a built-in family.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import numbers
import pickle
import pkgutil
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from ganmix.models._images import to_uint8
from ganmix.models._registry import PLUGIN_GROUP, Registry, UnknownModelError, load_entry_points
from ganmix.models.errors import GeneratorError
from ganmix.models.sizes import MIN_IMAGE_SIZE

CHECKPOINT_FORMAT = "ganmix.generator/1"
# How a family module is recognised without importing every module of the package (classify, quality, ...):
# a line that is exactly the decorator.
_FAMILY_MARK = re.compile(r"^@register_generator$", re.MULTILINE)


class DivergenceError(RuntimeError):
    """A training loss became NaN or infinite; the message names the epoch and the loss."""


def check_int(field: str, value: object, *, low: int, high: int | None = None) -> None:
    """Raise GeneratorError unless `value` is an int (not a bool) in low..high."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        expected = f"an int in {low}..{high}" if high is not None else f"an int >= {low}"
        raise GeneratorError(f"{field} must be {expected}, got {value!r}")


def check_float(field: str, value: object, *, positive: bool = False) -> None:
    """Raise GeneratorError unless `value` is a finite number >= 0 (> 0 when `positive`)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise GeneratorError(f"{field} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """Fields every family shares; families subclass it and add their own typed options."""

    image_size: int
    channels: int
    num_classes: int
    batch_size: int = 64
    lr: float = 2e-4
    # The family's image sizes: MIN_IMAGE_SIZE..max_image_size, and the rule its depth follows (its
    # error message states it; models/sizes.py asks it before any work).
    max_image_size: ClassVar[int] = 128
    size_rule: ClassVar[str] = "any size in range"

    @classmethod
    def size_problem(cls, size: int) -> str | None:
        """None when the family takes `size` px images, else what it takes."""
        if MIN_IMAGE_SIZE <= size <= cls.max_image_size:
            return None
        return f"it takes {MIN_IMAGE_SIZE}..{cls.max_image_size} px ({cls.size_rule})"

    def __post_init__(self) -> None:
        size = self.image_size
        if not isinstance(size, int) or isinstance(size, bool) or self.size_problem(size):
            raise GeneratorError(f"image_size must be an int in {MIN_IMAGE_SIZE}..{self.max_image_size} "
                                 f"({self.size_rule}), got {size!r}")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise GeneratorError(f"channels must be 1 or 3, got {self.channels!r}")
        check_int("num_classes", self.num_classes, low=2)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, positive=True)


class GenerativeModel(nn.Module, ABC):
    """A trainable class-conditional generator that owns its networks and optimizers.

    A family declares, besides `family` and `config_cls`: `search_space`, the dimensions a search draws for
    it when the spec names none (option -> a spec dimension as YAML would write it: a list of choices or
    {type, low, high, log}); `tiny_options`, options that make it train in milliseconds (tests); and
    `cpu_default`, whether the default search space offers it on the CPU.
    """

    family: ClassVar[str]
    config_cls: ClassVar[type[GeneratorConfig]]
    search_space: ClassVar[Mapping[str, Any]] = {}
    tiny_options: ClassVar[Mapping[str, Any]] = {}
    cpu_default: ClassVar[bool] = True
    config: GeneratorConfig

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        if not isinstance(cfg, self.config_cls):
            raise GeneratorError(f"{self.family} needs a {self.config_cls.__name__}, got {type(cfg).__name__}")
        self.config = cfg

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abstractmethod
    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """One optimisation step on a batch (`real` float in [-1, 1] on the model's device).

        Returns detached 0-d tensors on the device, never Python floats: reading a value would make the
        host wait for the GPU on every step; train_generator averages them and reads them once per epoch.
        """

    def trainer_state(self) -> dict[str, object]:
        """What a resumed run needs beyond the weights: every optimizer's state (and a family's counters)."""
        return {name: opt.state_dict() for name, opt in vars(self).items() if isinstance(opt, torch.optim.Optimizer)}

    def load_trainer_state(self, state: Mapping[str, object]) -> None:
        for name, opt in vars(self).items():
            if isinstance(opt, torch.optim.Optimizer):
                opt.load_state_dict(state[name])  # type: ignore[arg-type]

    @abstractmethod
    def sample(self, labels: Tensor, *, seed: int, batch_size: int = 512) -> Tensor:
        """Labels (N,) long on the model's device -> images float (N, C, H, W) in [-1, 1], called in eval mode
        under no_grad. The same seed gives the same images on one device, whatever `batch_size` (the most
        images pushed through the network at once): draw every image's noise up front, on the CPU."""


def seeded_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> Tensor:
    """Standard normal noise drawn on the CPU from `seed`, so a seed gives the same noise on every device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


class LatentGenerator(GenerativeModel):
    """A family that maps a code z ~ N(0, I) of `latent_dim` (an option of its config) to an image."""

    @abstractmethod
    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        """Latent codes (N, latent_dim) and labels (N,) -> images float (N, C, H, W) in [-1, 1]."""

    def sample_latent(self, n: int) -> Tensor:
        """Training noise, from torch's global RNG (seeded by train_generator)."""
        return torch.randn(n, self.config.latent_dim, device=self.device)  # type: ignore[attr-defined]

    def sample(self, labels: Tensor, *, seed: int, batch_size: int = 512) -> Tensor:
        z = seeded_noise((len(labels), self.config.latent_dim), seed, self.device)  # type: ignore[attr-defined]
        return torch.cat([self.decode(z_chunk, y_chunk) for z_chunk, y_chunk in
                          zip(z.split(batch_size), labels.split(batch_size))])


M = TypeVar("M", bound=type[GenerativeModel])


class _FamilyRegistry(Registry[type[GenerativeModel]]):
    """A Registry that imports the family modules before any lookup, so it is never seen half-filled."""

    _loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        import ganmix.models as package

        for info in pkgutil.iter_modules(package.__path__):
            spec = None if info.name.startswith("_") else importlib.util.find_spec(f"ganmix.models.{info.name}")
            if spec is not None and spec.origin and _FAMILY_MARK.search(Path(spec.origin).read_text()):
                importlib.import_module(spec.name)  # registers its family
        self._loaded = True  # before the plugins: one that looks names up must not recurse into _load
        try:
            self._load_plugins()
        except BaseException:
            self._loaded = False  # a broken plugin fails every lookup, not only the first
            raise

    def _load_plugins(self) -> None:
        for family, loaded in load_entry_points(PLUGIN_GROUP):
            # An entry point naming a class (module:Class) that is not yet registered is registered here, so
            # a plugin needs no decorator; one naming a module registered its family when imported.
            if isinstance(loaded, type) and issubclass(loaded, GenerativeModel) and loaded.family not in self._entries:
                self._entries[loaded.family] = loaded
            if family not in self._entries:
                raise GeneratorError(f"entry point {family!r} of group {PLUGIN_GROUP!r} registered no generator "
                                     f"family named {family!r} (it must register a GenerativeModel subclass "
                                     f"whose `family` is the entry point's name)")

    def get(self, name: str) -> type[GenerativeModel]:
        self._load()
        return super().get(name)

    def names(self) -> list[str]:
        self._load()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._load()
        return super().__contains__(name)


GENERATORS: Registry[type[GenerativeModel]] = _FamilyRegistry("generator")


def register_generator(cls: M) -> M:
    """Class decorator: register a family under its `family` name."""
    return GENERATORS.register(cls.family)(cls)


def list_generators() -> list[str]:
    return GENERATORS.names()


def generator_class(name: str) -> type[GenerativeModel]:
    """The family's class, with its declarations (config_cls, search_space, tiny_options, cpu_default)."""
    return GENERATORS.get(name)


def generator_options(name: str) -> dict[str, object]:
    """The family's extra config fields (beyond GeneratorConfig) mapped to their defaults."""
    base = {f.name for f in dataclasses.fields(GeneratorConfig)}
    return {f.name: f.default for f in dataclasses.fields(GENERATORS.get(name).config_cls) if f.name not in base}


def _normalise_option(name: str, key: str, value: object, default: object) -> object:
    # Search spaces hand over numpy scalars, or ints for float fields; store plain Python values so
    # configs compare equal and checkpoints stay loadable with weights_only=True.
    kind = type(default)
    if kind is str:
        if isinstance(value, str):
            return value
    elif kind in (int, float):
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            number = float(value)
            if kind is float:
                return number
            if number.is_integer():  # an int option takes 2 or 2.0, never 2.5
                return int(number)
    else:
        return value
    raise GeneratorError(f"option {key!r} of generator {name!r} must be {kind.__name__}, got {value!r}")


def make_generator_config(
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
    cls = GENERATORS.get(name).config_cls
    valid = generator_options(name)
    given = dict(options or {})
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise GeneratorError(f"unknown option(s) {unknown} for generator {name!r}; valid options: {sorted(valid)}")
    values = {key: _normalise_option(name, key, value, valid[key]) for key, value in given.items()}
    if lr is not None:
        values["lr"] = _normalise_option(name, "lr", lr, 0.0)
    return cls(
        image_size=image_size, channels=channels, num_classes=num_classes,
        batch_size=batch_size, **values,  # type: ignore[arg-type]
    )


def create_generator(name: str, cfg: GeneratorConfig) -> GenerativeModel:
    """A fresh model; its initial weights come from torch's global RNG, so seed before calling."""
    return GENERATORS.get(name)(cfg)


def check_labels(labels: Tensor, num_classes: int, *, count: int | None = None) -> Tensor:
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise GeneratorError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if count is not None and len(labels) != count:
        raise GeneratorError(f"{count} images but {len(labels)} labels")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise GeneratorError(
            f"labels must lie in 0..{num_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    return labels.long()


def sample_images(model: GenerativeModel, labels: Tensor, *, seed: int = 0, batch_size: int = 512) -> Tensor:
    """One uint8 (C, H, W) image per label, on the CPU; the same seed gives the same images."""
    cfg = model.config
    labels = check_labels(labels, cfg.num_classes)
    check_int("batch_size", batch_size, low=1)
    if len(labels) == 0:
        return torch.empty((0, cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return to_uint8(model.sample(labels.to(model.device), seed=seed, batch_size=batch_size))
    finally:
        model.train(was_training)


def save_generator(model: GenerativeModel, path: str | Path) -> None:
    """Write weights and config (plain tensors and primitives, loadable with weights_only=True)."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "family": model.family,
        "config": dataclasses.asdict(model.config),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    # Write then rename, so a trial killed mid-save never leaves a truncated checkpoint behind.
    from ganmix.models.files import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_generator(path: str | Path, *, map_location: str | torch.device = "cpu") -> GenerativeModel:
    """Rebuild a saved generator (in eval mode) on `map_location`."""
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"generator checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise GeneratorError(f"{str(path)!r} is not a readable generator checkpoint: {exc}") from exc
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found != CHECKPOINT_FORMAT:
        raise GeneratorError(f"{str(path)!r} has format {found!r}, expected {CHECKPOINT_FORMAT!r}")
    try:
        cls = GENERATORS.get(payload["family"])
        model = cls(cls.config_cls(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, UnknownModelError) as exc:
        raise GeneratorError(f"{str(path)!r} does not hold a valid generator: {exc}") from exc
    return model.to(map_location).eval()
