"""Class-conditional generators: shared config, registry, and the create/sample/save/load API (training:
models/generator_training.py).

A family is one module in ganmix.models that registers a GenerativeModel subclass with `@register_generator`
and declares, on that class, everything else ganmix needs to know about it: its typed config (options,
defaults, ranges), the search dimensions it adds by default and the tiny options tests train it with.
The registry finds those modules itself on first use (they import this one, so a top-level import
would be circular). Those declarations come from the family's light description beside it,
`<module>_info.py` (models/families.py: no torch), which the Recipe, the spec and the pre-flight read.
Families outside ganmix are found through the `ganmix.generators` entry-point group (models/_registry.py):
an installed package that declares one is imported on first use and registers its class like a built-in
family (without a light description, its facts are read off its class).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pickle
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from ganmix.models._images import to_uint8
from ganmix.models._registry import PLUGIN_GROUP, Registry, UnknownModelError, load_entry_points
from ganmix.models.errors import GeneratorError
from ganmix.models.families import FAMILY_MARK, family_options, make_family_config
# The config and its checks need no torch (models/generator_config.py); re-exported here for the families.
from ganmix.models.generator_config import GeneratorConfig, check_float, check_int  # noqa: F401

CHECKPOINT_FORMAT = "ganmix.generator/1"


class DivergenceError(RuntimeError):
    """A training loss became NaN or infinite; the message names the epoch and the loss."""


class GenerativeModel(nn.Module, ABC):
    """A trainable class-conditional generator that owns its networks and optimizers.

    A family declares, besides `family` and `config_cls`: `search_space`, the dimensions a search draws for
    it when the spec names none (option -> a spec dimension as YAML would write it: a list of choices or
    {type, low, high, log}); `tiny_options`, options that make it train in milliseconds (tests); and
    `cpu_default`, whether the default search space offers it on the CPU; `control`, whether it is a control
    rather than a generator (models/holdout.py: never trained, never in the default space, labelled so).
    """

    family: ClassVar[str]
    config_cls: ClassVar[type[GeneratorConfig]]
    search_space: ClassVar[Mapping[str, Any]] = {}
    tiny_options: ClassVar[Mapping[str, Any]] = {}
    cpu_default: ClassVar[bool] = True
    control: ClassVar[bool] = False
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
            if spec is not None and spec.origin and FAMILY_MARK.search(Path(spec.origin).read_text()):
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
    """The generator families (trained, searched by default); controls are listed by list_controls."""
    return [name for name in GENERATORS.names() if not GENERATORS.get(name).control]


def list_controls() -> list[str]:
    """Registered controls (`holdout`): recipes may name them, the default space never offers them."""
    return [name for name in GENERATORS.names() if GENERATORS.get(name).control]


def is_control(name: str) -> bool:
    return name in GENERATORS and GENERATORS.get(name).control


def generator_class(name: str) -> type[GenerativeModel]:
    """The family's class, with its declarations (config_cls, search_space, tiny_options, cpu_default)."""
    return GENERATORS.get(name)


def generator_options(name: str) -> dict[str, object]:
    """The family's extra config fields (beyond GeneratorConfig) mapped to their defaults."""
    return family_options(name)


# The typed config of a family, from its light description (models/families.py): one builder for both paths.
make_generator_config = make_family_config


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
