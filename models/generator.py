"""Class-conditional generators: shared config, registry, and the create/train/sample/save/load API.

Each family lives in its own module and registers itself with `@register_generator`; the registry
imports those modules on first use, because they import this one (a top-level import would be circular).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import Tensor, nn

from ganmix.models._images import to_uint8, to_unit
from ganmix.models._registry import Registry, UnknownModelError

CHECKPOINT_FORMAT = "ganmix.generator/1"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 64
_FAMILY_MODULES = ("acgan", "cvae", "dcgan", "wgan_gp")


class GeneratorError(ValueError):
    """A bad generator config value, option, input or checkpoint; the message quotes it."""


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
    latent_dim: int = 64
    batch_size: int = 64
    lr: float = 2e-4

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, low=MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE)
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise GeneratorError(f"channels must be 1 or 3, got {self.channels!r}")
        check_int("num_classes", self.num_classes, low=2)
        check_int("latent_dim", self.latent_dim, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_float("lr", self.lr, positive=True)


class GenerativeModel(nn.Module, ABC):
    """A trainable class-conditional generator that owns its networks and optimizers."""

    family: ClassVar[str]
    config_cls: ClassVar[type[GeneratorConfig]]
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
    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, float]:
        """One optimisation step on a batch (`real` float in [-1, 1] on the model's device)."""

    @abstractmethod
    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        """Latent codes (N, latent_dim) and labels (N,) -> images float (N, C, H, W) in [-1, 1]."""

    def sample_latent(self, n: int, *, noise_seed: int | None = None) -> Tensor:
        # Seeded noise is drawn on the CPU so a seed gives the same codes on every device.
        if noise_seed is None:
            return torch.randn(n, self.config.latent_dim, device=self.device)
        rng = torch.Generator().manual_seed(noise_seed)
        return torch.randn(n, self.config.latent_dim, generator=rng).to(self.device)

    def generate(self, labels: Tensor, *, noise_seed: int | None = None) -> Tensor:
        z = self.sample_latent(len(labels), noise_seed=noise_seed)
        return self.decode(z, labels.to(self.device, torch.long))


M = TypeVar("M", bound=type[GenerativeModel])


class _FamilyRegistry(Registry[type[GenerativeModel]]):
    """A Registry that imports the family modules before any lookup, so it is never seen half-filled."""

    def _load(self) -> None:
        for module in _FAMILY_MODULES:
            importlib.import_module(f"ganmix.models.{module}")  # cached after the first call

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
    latent_dim: int = 64,
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
        latent_dim=latent_dim, batch_size=batch_size, **values,  # type: ignore[arg-type]
    )


def create_generator(name: str, cfg: GeneratorConfig) -> GenerativeModel:
    """A fresh model; its initial weights come from torch's global RNG, so seed before calling."""
    return GENERATORS.get(name)(cfg)


def _check_labels(labels: Tensor, num_classes: int, *, count: int | None = None) -> Tensor:
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise GeneratorError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if count is not None and len(labels) != count:
        raise GeneratorError(f"{count} images but {len(labels)} labels")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise GeneratorError(
            f"labels must lie in 0..{num_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    return labels.long()


def _non_finite(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{key}={value}" for key, value in metrics.items() if not math.isfinite(value))


def train_generator(
    model: GenerativeModel,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train on uint8 (N, C, H, W) images; returns one dict of batch-averaged metrics per epoch.

    Seeds torch's global RNG with `seed` (noise, augmentation) and shuffles with its own generator.
    """
    cfg = model.config
    expected = (cfg.channels, cfg.image_size, cfg.image_size)
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != expected or len(images) == 0:
        raise GeneratorError(f"images must be uint8 (N>0, {', '.join(map(str, expected))}), "
                             f"got {images.dtype} {tuple(images.shape)}")
    check_int("epochs", epochs, low=1)
    device = torch.device(device)
    # The whole data set fits in memory: move it once instead of paying a DataLoader per batch.
    y = _check_labels(labels, cfg.num_classes, count=len(images)).to(device)
    x = to_unit(images, device)
    torch.manual_seed(seed)
    order_rng = torch.Generator().manual_seed(seed)
    model.to(device).train()
    history: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for batch in torch.randperm(len(x), generator=order_rng).to(device).split(cfg.batch_size):
            metrics = model.train_step(x[batch], y[batch])
            if bad := _non_finite(metrics):
                raise DivergenceError(f"generator diverged at epoch {epoch}: {bad}")
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        epoch_metrics = {key: sums[key] / counts[key] for key in sums}
        history.append(epoch_metrics)
        if on_epoch is not None:
            on_epoch(epoch, epoch_metrics)
    return history


def sample_images(model: GenerativeModel, labels: Tensor, *, seed: int = 0, batch_size: int = 512) -> Tensor:
    """One uint8 (C, H, W) image per label, on the CPU; the same seed gives the same images."""
    cfg = model.config
    labels = _check_labels(labels, cfg.num_classes)
    check_int("batch_size", batch_size, low=1)
    if len(labels) == 0:
        return torch.empty((0, cfg.channels, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    # All codes drawn up front, so the images do not depend on `batch_size` or the device.
    z = model.sample_latent(len(labels), noise_seed=seed)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            chunks = [
                to_uint8(model.decode(z_chunk, y_chunk.to(z.device)))
                for z_chunk, y_chunk in zip(z.split(batch_size), labels.split(batch_size))
            ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


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
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


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
