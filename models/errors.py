"""The models' bad-input errors, importable without torch (the CLI maps them to one-line errors)."""

from __future__ import annotations

from ganmix.models._registry import UnknownModelError

__all__ = ["GeneratorError", "MissingWeightsError", "UnknownModelError"]


class GeneratorError(ValueError):
    """A bad generator config value, option, input or checkpoint; the message quotes it."""


class MissingWeightsError(RuntimeError):
    """ImageNet weights that are not in torchvision's cache and cannot be downloaded; one line, with the fix."""
