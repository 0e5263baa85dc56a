"""A tiny decorator registry (after timm's `_registry.py`), shared by generators and classifiers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
# The entry-point group packages declare generator families in (the entry point's name is the family's).
# Here, not in generator.py, so a torch-free check can list plugin families (entry_point_names).
PLUGIN_GROUP = "ganmix.generators"


class UnknownModelError(ValueError):
    """A name that is not in a registry; the message lists what is."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownModelError(
                f"unknown {self.kind} {name!r}; expected one of {sorted(self._entries)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def entry_point_names(group: str) -> list[str]:
    """The names installed packages declare in an entry-point group, read from their metadata only (no
    import: a pre-flight check can accept a plugin family without importing torch)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=group)})


def entry_point_version(group: str, name: str) -> str | None:
    """`distribution==version` of the installed package that declares `name` in `group` (None: no such entry
    point), so what is cached from a plugin's code is not reused after that code changed version."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=group, name=name):
        dist = getattr(ep, "dist", None)
        return f"{dist.name}=={dist.version}" if dist is not None else ep.value
    return None


def load_entry_points(group: str) -> list[tuple[str, object]]:
    """Import every entry point of `group` (a module or a module:attribute) and return (name, object) pairs.

    A plugin that fails to import is reported as one line naming its entry point and the error, not a
    traceback from deep inside the registry.
    """
    from importlib.metadata import entry_points

    loaded: list[tuple[str, object]] = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            loaded.append((ep.name, ep.load()))
        except Exception as exc:  # any import error of third-party code: name the plugin
            raise UnknownModelError(f"entry point {ep.name!r} = {ep.value!r} of group {group!r} failed to "
                                    f"import: {type(exc).__name__}: {exc}") from exc
    return loaded
