"""Pre-flight of ImageNet weights: which backbone files a search's trials will load, and fetching them once.

Trials never download (models/pretrained.load_weights only reads torchvision's cache): the search driver
fetches every file a trial may need before Ray starts (`fetch_search_weights`), and its bytes travel to every
trial through Ray's object store, as the reference classifier's file does, so a cluster node without the file
or without internet installs it into its own cache. `check_weights` only looks (no download, nothing created).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ganmix.search.preflight.errors import PreflightError

if TYPE_CHECKING:
    from ganmix.search.recipe import Recipe
    from ganmix.search.spec import SearchSpec


def pretrained_families(spec: SearchSpec) -> list[str]:
    """Classifier families whose ImageNet weights some trial of `spec` (its baseline included) may load."""
    from ganmix.models.choices import BACKBONES
    from ganmix.search.space import CategoricalDim

    base = spec.base_recipe()

    def choices(field: str, fixed: object) -> tuple[object, ...]:
        dim = spec.space.get(field)
        return dim.choices if isinstance(dim, CategoricalDim) else (fixed,)

    classifiers, pretrained = choices("classifier", base.classifier), choices("pretrained", base.pretrained)
    if "imagenet" not in pretrained:
        return []
    if "pretrained" in spec.space:  # searched together: every classifier drawn may meet "imagenet"
        lacking = [c for c in classifiers if c not in BACKBONES]
        if lacking:
            raise PreflightError(f"space.pretrained: 'imagenet' may be drawn with classifier(s) {lacking}, which "
                                 f"have no ImageNet weights; search classifiers among {sorted(BACKBONES)} only")
    return sorted({c for c in classifiers if c in BACKBONES})  # type: ignore[misc]


def check_weights(spec: SearchSpec) -> list[str]:
    """Families of `spec` whose weights are not yet in torchvision's cache (the run will download them)."""
    from ganmix.models.pretrained import weights_path

    return [family for family in pretrained_families(spec) if not weights_path(family).is_file()]


def fetch_search_weights(spec: SearchSpec) -> dict[str, bytes]:
    """Every weights file `spec`'s trials may load, downloaded into torchvision's cache when absent, as
    {file name: bytes}. Offline and not cached: one PreflightError line naming the file, the cache and the fix."""
    return fetch_families(pretrained_families(spec))


def fetch_recipe_weights(recipes: Iterable[Recipe]) -> dict[str, bytes]:
    """The same for fixed recipes (`ganmix confirm`'s arms)."""
    return fetch_families(_recipe_families(recipes))


def cache_recipe_weights(recipes: Iterable[Recipe]) -> None:
    """The weights files of fixed recipes in torchvision's cache, fetched when absent, not read: a process
    that trains them itself (`ganmix train`) loads them from there."""
    for family in _recipe_families(recipes):
        _fetch(family)


def fetch_families(families: Iterable[str]) -> dict[str, bytes]:
    return {(path := _fetch(family)).name: path.read_bytes() for family in families}


def _recipe_families(recipes: Iterable[Recipe]) -> list[str]:
    return sorted({r.classifier for r in recipes if r.pretrained == "imagenet"})


def _fetch(family: str) -> Path:
    """One family's weights file in torchvision's cache, downloaded when absent; offline: a PreflightError."""
    from ganmix.models.errors import MissingWeightsError
    from ganmix.models.pretrained import fetch_weights

    try:
        return fetch_weights(family)
    except MissingWeightsError as exc:
        raise PreflightError(str(exc)) from None

