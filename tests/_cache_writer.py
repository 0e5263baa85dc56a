"""A generator-cache writer for test_generator_cache's concurrency test, in its own module so that each
spawned process imports torch and ganmix.models only (not MLflow, Ray or the test module)."""

from __future__ import annotations

from typing import Any

import torch

from ganmix.models.generator import GeneratorConfig, generator_class, make_generator_config
from ganmix.models.generator_cache import CachedTraining, GeneratorCache, train_with_cache

NUM_CLASSES = 3


def tiny_config(family: str = "dcgan", **options: object) -> GeneratorConfig:
    return make_generator_config(family, image_size=8, channels=1, num_classes=NUM_CLASSES, batch_size=4,
                                 options={**generator_class(family).tiny_options, **options})


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (12, 1, 8, 8), generator=rng, dtype=torch.uint8), torch.arange(12) % NUM_CLASSES


def train(cache: GeneratorCache | None, epochs: int, *, family: str = "dcgan", cfg: GeneratorConfig | None = None,
          seed: int = 0, fingerprint: str = "fp-a") -> CachedTraining:
    torch.manual_seed(seed)  # what execute_recipe does before the generator is built
    images, labels = tiny_data()
    return train_with_cache(family, cfg or tiny_config(family), images, labels, epochs=epochs,
                            fingerprint=fingerprint, cache=cache, seed=seed)


def writer(root: str, epochs: int, threads: int, barrier: Any, results: Any) -> None:
    """One trial process: wait for the others, train through the shared cache at `root`, put what it did."""
    torch.set_num_threads(threads)  # CPU results are bit-exact for one thread count, not across counts
    barrier.wait(timeout=240)
    result = train(GeneratorCache(root), epochs)
    results.put((epochs, result.resumed_from, result.trained))
