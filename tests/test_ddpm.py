"""What only the diffusion family has: the "no class" label, EMA weights for sampling, guidance, its place in
the default space, and a real Ray + Optuna + MLflow search with `ddpm` at tiny options on digits, read back
and re-run with `ganmix train`. The shared contract (training, seeded sampling, checkpoints, cache resume,
divergence) is tested for every family in test_generators.py and test_generator_cache.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from ganmix.models.generator import (
    create_generator,
    generator_class,
    load_generator,
    make_generator_config,
    sample_images,
)
from ganmix.models.generator_training import train_generator
from ganmix.search.recipe import Recipe
from ganmix.search.spec import SearchSpec

TINY = generator_class("ddpm").tiny_options


def tiny_ddpm(**options: object):
    torch.manual_seed(0)
    cfg = make_generator_config("ddpm", image_size=12, channels=1, num_classes=3, batch_size=6,
                                options={**TINY, **options})
    return create_generator("ddpm", cfg)


def tiny_data() -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (12, 1, 12, 12), generator=rng, dtype=torch.uint8), torch.arange(12) % 3


def test_class_embedding_has_a_no_class_row_and_padding_is_cropped() -> None:
    model = tiny_ddpm()
    assert model.unet.class_embedding.num_embeddings == 3 + 1
    assert model.unet.config.sample_size == 12 and tiny_ddpm().padded == 12
    odd = create_generator("ddpm", make_generator_config("ddpm", image_size=9, channels=3, num_classes=2,
                                                         options=TINY))
    assert odd.padded == 10 and sample_images(odd, torch.tensor([0, 1]), seed=0).shape == (2, 3, 9, 9)


def test_sampling_reads_the_ema_weights_and_guidance_changes_the_images() -> None:
    model = tiny_ddpm()
    images, labels = tiny_data()
    train_generator(model, images, labels, epochs=3)
    assert model.ema.optimization_step == 6  # one EMA update per optimizer step (2 batches x 3 epochs)
    trained = dict(model.unet.named_parameters())
    assert any(not torch.equal(p, trained[name]) for name, p in model.ema_unet.named_parameters())
    wanted = torch.tensor([0, 1, 2, 0])
    before = sample_images(model, wanted, seed=4)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(1.0)  # the trained weights are not what sampling reads
    assert torch.equal(sample_images(model, wanted, seed=4), before)
    unguided = tiny_ddpm(guidance_scale=1.0)
    unguided.load_state_dict(model.state_dict())
    assert not torch.equal(sample_images(unguided, wanted, seed=4), before)


def test_label_dropout_one_trains_only_the_no_class_row() -> None:
    model = tiny_ddpm(label_dropout=1.0)
    rows = model.unet.class_embedding.weight.detach().clone()
    train_generator(model, *tiny_data(), epochs=1)
    changed = (model.unet.class_embedding.weight.detach() != rows).any(dim=1)
    assert changed.tolist() == [False, False, False, True]


def test_options_are_checked() -> None:
    from ganmix.models.generator import GeneratorError

    for options, quoted in [({"sample_steps": 0}, "sample_steps must be an int in 1..50, got 0"),
                            ({"width": 7}, "width must be even"), ({"label_dropout": 1.5}, "label_dropout must be in"),
                            ({"guidance_scale": -1.0}, "guidance_scale must be a finite number >= 0")]:
        with pytest.raises(GeneratorError, match=quoted.replace("(", r"\(")):
            make_generator_config("ddpm", image_size=8, channels=1, num_classes=2, options={**TINY, **options})


def test_judging_a_recipe_imports_neither_diffusers_nor_the_training_stack() -> None:
    """Bad input is answered before the slow imports (issue 18): the registry and a recipe's validation need
    no diffusers (seconds to import), the pre-flight data check not the trainer (nor, through it, sklearn:
    only the `digits` set itself reads through sklearn)."""
    code = ("import sys\n"
            "from ganmix.search.recipe import Recipe\n"
            "from ganmix.search.recipe_data import load_recipe_data\n"
            "Recipe(dataset='digits', generator='ddpm', generator_options={'width': 8})\n"
            "load_recipe_data(Recipe(dataset='digits'), None)\n"
            "print(sorted(m for m in ('diffusers', 'ganmix.models.classify', 'ganmix.search.pipeline') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_default_space_offers_ddpm_on_a_gpu_only() -> None:
    cpu, note = SearchSpec(dataset="digits").for_device()
    assert "ddpm" not in cpu.space["generator"].choices and "ddpm" in (note or "")
    gpu, _ = SearchSpec(dataset="digits", gpus_per_trial=0.25).for_device()
    assert "ddpm" in gpu.space["generator"].choices
    assert set(SearchSpec().generator_space["ddpm"]) == {"width", "sample_steps", "guidance_scale"}


SPEC = {
    "dataset": "digits",
    "trials": 2,  # the real-only baseline, then one ddpm trial
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "max_concurrent": 1,
    "metric": "val_auc",
    "space": {"generator": ["ddpm"], "generator_epochs": [2], "synthetic_ratio": [0.5]},
    "generator_space": {"ddpm": {option: [value] for option, value in TINY.items()}},
    "fixed": {"classifier_epochs": 2, "classifier_min_steps": 0, "augment": "none"},
}


def ganmix(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganmix.search.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.integration
def test_a_real_search_trains_logs_and_reruns_ddpm(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    results = tmp_path / "results"
    done = ganmix("search", "--config", str(tmp_path / "spec.yaml"), "--results-dir", str(results), "--name", "dd",
                  "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    runs = client.search_runs([experiment.experiment_id], "tags.`ganmix.kind` = 'trial'")
    (run,) = [r for r in runs if r.data.params.get("generator") == "ddpm"]
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("ddpm r=0.5 e=2")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "generator/loss")] == [1, 2]
    assert {"sample/fid", "sample/near_copy_fraction", "generator/epochs_trained"} <= set(run.data.metrics)
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/grid.png", "samples/closest_pairs.png", "samples/synthetic.npz"} <= samples
    checkpoint = Path(client.download_artifacts(run.info.run_id, "generator/generator.pt", str(tmp_path)))
    model = load_generator(checkpoint)
    assert model.family == "ddpm" and model.config.sample_steps == TINY["sample_steps"]
    assert sample_images(model, torch.tensor([0, 9]), seed=1).shape == (2, 1, 8, 8)

    recipe = Recipe.from_yaml(Path(client.download_artifacts(run.info.run_id, "recipe.yaml", str(tmp_path)))
                              .read_text())
    recipe.save(tmp_path / "ddpm.yaml")
    rerun = ganmix("train", "--recipe", str(tmp_path / "ddpm.yaml"), "--results-dir", str(results),
                   "--no-sample-metrics", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trains = client.search_runs([experiment.experiment_id], "tags.`ganmix.kind` = 'train'")
    assert len(trains) == 1 and trains[0].info.status == "FINISHED" and "test/auc" in trains[0].data.metrics
