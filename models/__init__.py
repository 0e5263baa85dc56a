"""Generator and classifier families behind small registries, and the metrics they are judged by.

No Ray, no MLflow: models and losses return metric dicts; the caller decides where they go.
"""

from ganmix.models._registry import UnknownModelError
from ganmix.models.classifiers import create_classifier, list_classifiers
from ganmix.models.evaluation import classification_metrics, confusion_matrix, image_grid
from ganmix.models.generator import (
    DivergenceError,
    GenerativeModel,
    GeneratorConfig,
    GeneratorError,
    create_generator,
    generator_options,
    list_generators,
    load_generator,
    make_generator_config,
    sample_images,
    save_generator,
    train_generator,
)

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
    "generator_options",
    "image_grid",
    "list_classifiers",
    "list_generators",
    "load_generator",
    "make_generator_config",
    "sample_images",
    "save_generator",
    "train_generator",
]
