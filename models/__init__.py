"""Generator and classifier families behind small registries, and the metrics they are judged by.

No Ray, no MLflow: models and losses return metric dicts; the caller decides where they go.
"""

from importlib import import_module
from typing import Any

# Lazy re-exports (PEP 562): `from ganmix.models.generator import X` then imports what X needs (torch), not
# also scikit-learn and the rest, so a spec check that only asks the registries stays quick.
_WHERE = {
    "UnknownModelError": "_registry",
    "create_classifier": "classifiers", "list_classifiers": "classifiers",
    "classification_metrics": "evaluation", "confusion_matrix": "evaluation",
    **{name: "generator" for name in (
        "DivergenceError", "GenerativeModel", "GeneratorConfig", "GeneratorError", "create_generator",
        "generator_class", "generator_options", "list_generators", "load_generator", "make_generator_config",
        "sample_images", "save_generator",
    )},
    "train_generator": "generator_training",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ganmix.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DivergenceError",
    "GenerativeModel",
    "GeneratorConfig",
    "GeneratorError",
    "UnknownModelError",
    "classification_metrics",
    "confusion_matrix",
    "create_classifier",
    "create_generator",
    "generator_class",
    "generator_options",
    "list_classifiers",
    "list_generators",
    "load_generator",
    "make_generator_config",
    "sample_images",
    "save_generator",
    "train_generator",
]
