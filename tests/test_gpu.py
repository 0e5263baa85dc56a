"""On CUDA: one training step of every generator family and classifier, the generator cache, a 4-trial
search sharing one GPU (0.25 each), and a search that names no GPU share using the local GPU. Skipped, with
the reason, where CUDA is absent (the CPU CI machine)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
import yaml
from mlflow import MlflowClient

from ganmix.models._images import to_unit
from ganmix.models.classifiers import create_classifier, list_classifiers
from ganmix.models.classify import EvalSet, TrainSettings, fit_classifier, seeded_classifier
from ganmix.models.generator import create_generator, list_generators, make_generator_config, sample_images
from ganmix.models.generator_cache import GeneratorCache, train_with_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")

CUDA = torch.device("cuda")


def data(n: int = 32, *, size: int = 28, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 1, size, size), generator=rng, dtype=torch.uint8), torch.arange(n) % classes


@pytest.mark.parametrize("name", list_generators())
def test_generator_step_on_cuda_returns_device_tensors(name):
    torch.manual_seed(0)
    model = create_generator(name, make_generator_config(name, image_size=28, channels=1, num_classes=2,
                                                         batch_size=16)).to(CUDA)
    images, labels = data(16)
    metrics = model.train_step(to_unit(images, CUDA), labels.to(CUDA))
    # Device tensors, not floats: the step never waits for the GPU to read a loss back.
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cuda" and v.ndim == 0 for v in metrics.values())
    assert all(math.isfinite(float(v)) for v in metrics.values()), metrics
    assert all(p.device.type == "cuda" for p in model.parameters())
    samples = sample_images(model, labels, seed=1)
    assert samples.dtype == torch.uint8 and samples.device.type == "cpu" and samples.shape == (16, 1, 28, 28)


@pytest.mark.parametrize("name", list_classifiers())
def test_classifier_trainer_on_cuda(name):
    """The trainer trials use (AdamW, one-cycle, per-image augmentation, best-val restore) on the GPU."""
    model = seeded_classifier(lambda: create_classifier(name, in_channels=1, num_classes=2, image_size=28), 0)
    images, labels = data(16)
    settings = TrainSettings(epochs=2, lr=1e-3, batch_size=8, augment="flip_rotate", class_weight="balanced")
    result = fit_classifier(model, images, labels, settings=settings, device=CUDA, num_classes=2,
                            val=EvalSet(images, labels, ("a", "b")))
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert math.isfinite(result.history[-1]["train_loss"]) and result.best_epoch in (1, 2)


def test_generator_cache_resumes_on_cuda(tmp_path):
    cfg = make_generator_config("dcgan", image_size=28, channels=1, num_classes=2, batch_size=16)
    images, labels = data(32)
    cache = GeneratorCache(tmp_path)
    for epochs, resumed in ((1, 0), (2, 1)):
        torch.manual_seed(0)
        result = train_with_cache("dcgan", cfg, images, labels, epochs=epochs, fingerprint="f", cache=cache,
                                  device=CUDA)
        assert (result.resumed_from, result.trained) == (resumed, epochs - resumed)
        assert len(result.history) == epochs
    # The optimizer state came back onto the GPU with the weights.
    state = result.model.opt_g.state_dict()["state"]
    assert state and all(v.device.type == "cuda" for s in state.values() for v in s.values()
                         if isinstance(v, torch.Tensor))


@pytest.mark.integration
def test_four_trial_search_shares_one_gpu(tmp_path):
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump({
        "dataset": "digits", "trials": 4, "max_concurrent": 4, "cpus_per_trial": 1, "gpus_per_trial": 0.25,
        "space": {"generator_epochs": {"type": "int", "low": 1, "high": 3},
                  "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.0},
                  "generator": {"type": "categorical", "choices": ["dcgan", "wgan_gp", "acgan", "cvae"]}},
        "fixed": {"classifier_epochs": 2, "classifier_min_steps": 0, "latent_dim": 16, "augment": "none"},
    }))
    done = subprocess.run(
        [sys.executable, "-m", "ganmix.search.cli", "search", "--config", str(spec), "--results-dir",
         str(tmp_path / "results"), "--name", "gpu", "--gpus-per-trial", "0.25", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("ganmix.kind") == "trial"]
    assert len(children) == 4
    assert all(r.info.status == "FINISHED" for r in children), [r.info.status for r in children]
    # Every trial trained on the GPU (a quarter of it each), none fell back to the CPU.
    assert {r.data.tags.get("ganmix.device") for r in children} == {"cuda"}
    generated = [r for r in children if r.data.tags.get("ganmix.baseline") == "false"]
    assert all(r.data.metrics["generator/epochs_trained"] + r.data.metrics["generator/epochs_reused"]
               == int(r.data.params["generator_epochs"]) for r in generated if "generator/epochs_trained" in r.data.metrics)


@pytest.mark.integration
def test_a_search_naming_no_gpu_share_uses_the_local_gpu(tmp_path):
    """The packaged demo spec names no gpus_per_trial: on a GPU machine its trials train on the GPU."""
    done = subprocess.run(
        [sys.executable, "-m", "ganmix.search.cli", "search", "--results-dir", str(tmp_path / "results"),
         "--trials", "2", "--no-sample-metrics"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "GPU(s) here: 2 trials at once" in done.stdout  # the demo spec asks for 2 at once
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ganmix/digits").experiment_id], max_results=100)
    assert {r.data.tags.get("ganmix.device") for r in runs if r.data.tags.get("ganmix.kind") == "trial"} == {"cuda"}
