"""Generator reuse: snapshots on disk, resume from the largest one <= E, keys that keep runs apart,
concurrent writers, and the epochs trained vs requested that a trial logs."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch
from _cache_writer import NUM_CLASSES, tiny_config, tiny_data, train, writer

from ganmix.datasets import load_dataset
from ganmix.models.generator import generator_class, list_generators, make_generator_config
from ganmix.models.generator_training import train_generator
from ganmix.models.generator_cache import GeneratorCache, generator_key, key_digest, train_with_cache
from ganmix.search.pipeline import make_synthetic
from ganmix.search.recipe import Recipe
from ganmix.tracking import runs, store


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("family", list_generators())
def test_resumes_from_the_largest_snapshot_at_most_e_and_matches_training_from_scratch(family, tmp_path):
    cache = GeneratorCache(tmp_path)
    first = train(cache, 2, family=family)
    assert (first.resumed_from, first.trained) == (0, 2)
    longer = train(cache, 5, family=family)
    assert (longer.resumed_from, longer.trained) == (2, 3)
    middle = train(cache, 4, family=family)  # 5 is too many; 2 is the largest snapshot <= 4
    assert (middle.resumed_from, middle.trained) == (2, 2)
    again = train(cache, 5, family=family)
    assert (again.resumed_from, again.trained) == (5, 0)
    key = generator_key(fingerprint="fp-a", family=family, config=tiny_config(family), seed=0, device="cpu")
    assert cache.epochs(key) == [2, 4, 5]

    torch.manual_seed(0)
    images, labels = tiny_data()
    scratch_model = train(None, 5, family=family)
    assert (scratch_model.resumed_from, scratch_model.trained) == (0, 5)
    after_scratch = torch.rand(4)  # the global RNG a trial goes on with (classifier init) after the GAN
    for resumed in (longer, again):
        assert same_weights(resumed.model, scratch_model.model)
        assert resumed.history == scratch_model.history  # reused epochs' metrics come from the snapshot
    train(cache, 5, family=family)
    assert torch.equal(torch.rand(4), after_scratch)
    # And the public trainer gives the same generator: the cache changes nothing but the time taken.
    torch.manual_seed(0)
    plain = scratch_model.model.__class__(tiny_config(family))
    train_generator(plain, images, labels, epochs=5, seed=0)
    assert same_weights(plain, scratch_model.model)


@pytest.mark.parametrize("family", list_generators())
def test_resume_at_28_px_equals_training_from_scratch(family, tmp_path):
    """Every family at 28 px, 3 channels, tiny options: 1 cached epoch + 1 resumed = 2 from scratch, bit for bit
    (weights, EMA or optimizer state via the weights they produce, and the per-epoch metrics)."""
    cfg = make_generator_config(family, image_size=28, channels=3, num_classes=NUM_CLASSES, batch_size=4,
                                options=generator_class(family).tiny_options)
    rng = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (8, 3, 28, 28), generator=rng, dtype=torch.uint8)
    labels = torch.arange(8) % NUM_CLASSES
    cache = GeneratorCache(tmp_path)

    def run(epochs: int, cache: GeneratorCache | None):
        torch.manual_seed(0)
        return train_with_cache(family, cfg, images, labels, epochs=epochs, fingerprint="fp-28", cache=cache)

    run(1, cache)
    resumed, scratch = run(2, cache), run(2, None)
    assert (resumed.resumed_from, resumed.trained) == (1, 1)
    assert same_weights(resumed.model, scratch.model) and resumed.history == scratch.history


@pytest.mark.parametrize(
    "other",
    [
        {"cfg": tiny_config(width=8)},  # another option
        {"cfg": tiny_config(latent_dim=16)},  # another latent size
        {"seed": 1},
        {"fingerprint": "fp-b"},  # other data
    ],
    ids=["option", "latent", "seed", "fingerprint"],
)
def test_keys_keep_different_options_seeds_and_data_apart(other, tmp_path):
    cache = GeneratorCache(tmp_path)
    train(cache, 2)
    assert train(cache, 3, **other).resumed_from == 0
    assert len(list(tmp_path.iterdir())) == 2  # one folder per key
    assert train(cache, 3).resumed_from == 2


def test_key_covers_family_image_size_and_device():
    base = generator_key(fingerprint="f", family="dcgan", config=tiny_config(), seed=0, device="cpu")
    variants = [
        generator_key(fingerprint="f", family="acgan", config=tiny_config("acgan"), seed=0, device="cpu"),
        generator_key(fingerprint="f", family="dcgan", seed=0, device="cpu", config=make_generator_config(
            "dcgan", image_size=16, channels=1, num_classes=NUM_CLASSES, batch_size=4,
            options={"width": 4})),
        generator_key(fingerprint="f", family="dcgan", config=tiny_config(), seed=0, device="cuda"),
    ]
    assert len({key_digest(k) for k in [base, *variants]}) == 4


def test_key_covers_a_plugin_family_s_package_version(tmp_path, monkeypatch):
    """A plugin generator's snapshots are not reused after its package changed version (built-ins: no such
    field, so their keys stay as they were)."""
    import importlib

    def install(version: str) -> dict:
        dist = tmp_path / version / f"myplug-{version}.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: myplug\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text("[ganmix.generators]\nfakefam = myplug:Fake\n")
        monkeypatch.syspath_prepend(str(dist.parent))
        importlib.invalidate_caches()
        key = generator_key(fingerprint="f", family="fakefam", config=tiny_config(), seed=0, device="cpu")
        monkeypatch.undo()
        return key

    first, second = install("1.0"), install("1.1")
    assert first["plugin"] == "myplug==1.0" and second["plugin"] == "myplug==1.1"
    assert key_digest(first) != key_digest(second)
    assert "plugin" not in generator_key(fingerprint="f", family="dcgan", config=tiny_config(), seed=0, device="cpu")


def test_an_unreadable_snapshot_is_skipped(tmp_path):
    cache = GeneratorCache(tmp_path)
    train(cache, 2)
    train(cache, 3)
    key = generator_key(fingerprint="fp-a", family="dcgan", config=tiny_config(), seed=0, device="cpu")
    (cache.folder(key) / "epoch-3.pt").write_bytes(b"not a checkpoint")
    assert train(cache, 4).resumed_from == 2


def test_concurrent_trials_on_one_machine_do_not_clash(tmp_path):
    plan = [3, 3, 2]  # two writers of one snapshot at once, and one of another
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(plan)), ctx.Queue()
    workers = [ctx.Process(target=writer, args=(str(tmp_path), epochs, torch.get_num_threads(), barrier, results))
               for epochs in plan]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0] * len(plan)
    done = sorted(results.get(timeout=5) for _ in plan)  # (epochs, resumed_from, trained) per writer
    assert [epochs for epochs, _, _ in done] == sorted(plan)
    assert all(resumed + trained == epochs for epochs, resumed, trained in done)
    cache = GeneratorCache(tmp_path)
    key = generator_key(fingerprint="fp-a", family="dcgan", config=tiny_config(), seed=0, device="cpu")
    assert cache.epochs(key) == [2, 3]
    assert not [p for p in cache.folder(key).iterdir() if p.name.endswith(".tmp")]
    # Every snapshot written in the race is whole and is the generator training from scratch gives.
    assert same_weights(train(cache, 3).model, train(None, 3).model)


def test_a_trial_logs_generator_epochs_trained_and_reused(tmp_path, migrated_store):
    uri = migrated_store
    experiment_id = store.ensure_experiment(uri, "digits")
    dataset = load_dataset("digits")
    logged = []
    for epochs in (2, 3):
        logger = runs.start_run(uri, experiment_id, name=f"gan-{epochs}", tags={})
        recipe = Recipe(generator="dcgan", generator_epochs=epochs, generator_options={"latent_dim": 16}, synthetic_ratio=0.2)
        torch.manual_seed(recipe.generator_seed)
        make_synthetic(recipe, dataset, device=torch.device("cpu"), logger=logger, cache_dir=tmp_path / "cache",
                       sample_metrics=False)
        logger.finish()
        logged.append(logger.run_id)
    client = store.client(uri)
    first, second = (client.get_run(run_id).data.metrics for run_id in logged)
    assert (first["generator/epochs_trained"], first["generator/epochs_reused"]) == (2, 0)
    assert (second["generator/epochs_trained"], second["generator/epochs_reused"]) == (1, 2)
    # The resumed trial still logs the generator's losses for every epoch, reused ones included.
    assert [m.step for m in client.get_metric_history(logged[1], "generator/g_loss")] == [1, 2, 3]
    assert Path(tmp_path / "cache" / "generators").is_dir()
