"""ImageNet backbones (issue 24 §1): the weights file torchvision's cache holds is the one loaded, a missing
file offline is one line with the fix, and a `pretrained: imagenet` search runs end to end (real Ray, Optuna,
MLflow) on digits. No network: the weights are a file the test writes under torchvision's own file name."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from mlflow import MlflowClient

from ganmix.models.classifiers import create_classifier
from ganmix.models.errors import MissingWeightsError
from ganmix.models.pretrained import install_weights, load_weights, weights_enum, weights_path
from ganmix.search.cli import main
from ganmix.search.recipe import Recipe, RecipeError

MARKER = 0.123


def write_marked_resnet18(torch_home: Path) -> Path:
    """torchvision's resnet18 state dict with a marker in conv1, saved where torchvision would cache it."""
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        net.conv1.weight.fill_(MARKER)
    path = torch_home / "hub" / "checkpoints" / os.path.basename(weights_enum("resnet18").url)
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_cached_weights_file_is_the_one_loaded(torch_home: Path) -> None:
    path = write_marked_resnet18(torch_home)
    assert weights_path("resnet18") == path
    model = create_classifier("resnet18", in_channels=1, num_classes=3, image_size=28, pretrained="imagenet",
                              classifier_size=32)
    assert torch.all(model.net.conv1.weight == MARKER)  # the file's weights, ImageNet stem (7x7)
    assert model.net.conv1.weight.shape == (64, 3, 7, 7) and model.net.fc.out_features == 3
    preset = weights_enum("resnet18").transforms()
    assert model.mean.flatten().tolist() == pytest.approx(list(preset.mean))
    # Grayscale 28 px in [-1, 1] goes in; 3 logits come out.
    assert model(torch.rand(4, 1, 28, 28) * 2 - 1).shape == (4, 3)
    # pretrained "none" keeps resnet18 the from-scratch 3x3-stem network of older recipes.
    scratch = create_classifier("resnet18", in_channels=1, num_classes=3, image_size=28)
    assert scratch.conv1.weight.shape == (64, 1, 3, 3)


def test_shipped_weights_are_installed_into_an_empty_cache(tmp_path: Path, torch_home: Path) -> None:
    source = write_marked_resnet18(tmp_path / "driver")
    install_weights({source.name: source.read_bytes()})
    assert weights_path("resnet18").read_bytes() == source.read_bytes()
    assert torch.all(load_weights("resnet18")["conv1.weight"] == MARKER)


def test_missing_weights_in_a_trial_never_download(torch_home: Path) -> None:
    with pytest.raises(MissingWeightsError, match="resnet18-.*pth"):
        create_classifier("resnet18", in_channels=1, num_classes=2, image_size=28, pretrained="imagenet")
    assert not torch_home.exists()


def test_recipe_fields_and_old_recipes() -> None:
    recipe = Recipe(classifier="efficientnet_b0", pretrained="imagenet", classifier_size=64)
    assert Recipe.from_yaml(recipe.to_yaml()) == recipe
    old = Recipe.from_dict({"format": "ganmix.recipe/2", "classifier": "resnet18", "seed": 1})
    assert (old.pretrained, old.classifier_size) == ("none", None)  # runs as it ran: from scratch, data's size
    with pytest.raises(RecipeError, match="pretrained must be 'none' with classifier 'small_cnn'"):
        Recipe(classifier="small_cnn", pretrained="imagenet")
    with pytest.raises(RecipeError, match="classifier_size"):
        Recipe(classifier="convnext_tiny", classifier_size=16)


def search_spec(tmp_path: Path, *, searched: bool) -> Path:
    """resnet18 with ImageNet weights at 32 px on digits; `searched`: `pretrained` is a space dimension (the
    baseline then keeps the default "none"), else fixed for every trial, the real-only baseline included."""
    where = {"space": {"pretrained": ["imagenet"]}} if searched else {"fixed": {"pretrained": "imagenet"}}
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump({
        "dataset": "digits", "trials": 2, "max_concurrent": 1, "train_per_class": 20,
        "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
        "space": {**where.get("space", {}), "synthetic_ratio": {"type": "float", "low": 0.2, "high": 1.0}},
        "generator_space": {"dcgan": {"width": [4], "latent_dim": [8]}},
        "fixed": {"classifier": "resnet18", "classifier_size": 32, "classifier_epochs": 1,
                  "classifier_min_steps": 0, "generator": "dcgan", "generator_epochs": 1, **where.get("fixed", {})},
    }))
    return spec


def test_offline_and_not_cached_is_one_line_and_leaves_nothing(tmp_path: Path, torch_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # what a machine without internet does
    results = tmp_path / "results"
    code = main(["search", "--config", str(search_spec(tmp_path, searched=True)), "--results-dir", str(results),
                 "--quiet", "--no-sample-metrics"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    path = weights_path("resnet18")
    assert path.name in err and str(path.parent) in err and "copy it to" in err
    assert not results.exists()
    assert not path.parent.exists() or not any(path.parent.iterdir())  # no partial download left


def test_train_fetches_the_weights_first_and_offline_is_one_line(tmp_path: Path, torch_home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`ganmix train` of an `imagenet` recipe fetches its weights as a search's driver does: offline and not
    cached, one line with the fix, before any store or results folder is made."""
    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    recipe = tmp_path / "recipe.yaml"
    Recipe(classifier="resnet18", pretrained="imagenet", classifier_epochs=1).save(recipe)
    results = tmp_path / "results"
    code = main(["train", "--recipe", str(recipe), "--results-dir", str(results), "--cpu", "--no-sample-metrics"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "copy it to" in err, err
    assert weights_path("resnet18").name in err and not results.exists()


@pytest.mark.integration
def test_pretrained_search_end_to_end_on_digits(tmp_path: Path) -> None:
    home = tmp_path / "torch"
    weights = write_marked_resnet18(home)
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "ganmix.search.cli", "search", "--config", str(search_spec(tmp_path, searched=False)),
         "--results-dir", str(results), "--name", "pretrained", "--quiet", "--no-sample-metrics"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, "TORCH_HOME": str(home)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ganmix/digits")
    trials = [r for r in client.search_runs([experiment.experiment_id])
              if r.data.tags.get("ganmix.kind") == "trial"]
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    for trial in trials:
        assert trial.data.params["classifier"] == "resnet18"
        assert trial.data.params["pretrained"] == "imagenet" and trial.data.params["classifier_size"] == "32"
        assert 0.0 <= trial.data.metrics["val/auc"] <= 1.0
    assert {t.data.params["generator"] for t in trials} == {"none", "dcgan"}  # the baseline has the same choices
    assert [p.name for p in weights.parent.iterdir()] == [weights.name]  # nothing downloaded beside it


def test_searched_pretrained_with_a_family_without_weights_is_refused(torch_home: Path) -> None:
    from ganmix.search.preflight import PreflightError
    from ganmix.search.preflight.weights import check_weights, pretrained_families
    from ganmix.search.spec import SearchSpec

    spec = SearchSpec.from_mapping({"dataset": "digits", "space": {"classifier": ["resnet18", "resnet50"],
                                                                   "pretrained": ["none", "imagenet"]}})
    assert pretrained_families(spec) == ["resnet18", "resnet50"]
    assert check_weights(spec) == ["resnet18", "resnet50"]  # not cached: the run will fetch them
    write_marked_resnet18(torch_home)
    assert check_weights(spec) == ["resnet50"]
    mixed = SearchSpec.from_mapping({"dataset": "digits", "space": {"classifier": ["small_cnn", "resnet18"],
                                                                    "pretrained": ["none", "imagenet"]}})
    with pytest.raises(PreflightError, match=r"space.pretrained: 'imagenet' may be drawn with classifier\(s\) \['small_cnn'\]"):
        pretrained_families(mixed)


def test_confirm_arms_weights_are_fetched_from_the_cache(torch_home: Path) -> None:
    from ganmix.search.preflight.weights import fetch_recipe_weights

    path = write_marked_resnet18(torch_home)
    arms = [Recipe(classifier="resnet18", pretrained="imagenet"), Recipe(classifier="resnet18"), Recipe()]
    assert fetch_recipe_weights(arms) == {path.name: path.read_bytes()}
    assert fetch_recipe_weights([Recipe()]) == {}


@pytest.mark.parametrize("space", [{"classifier": ["resnet18", "resnet50"], "pretrained": ["none", "imagenet"]},
                                   {"classifier": ["resnet18"], "pretrained": ["imagenet"]}])
def test_pretrained_searched_beside_its_classifier_passes_the_spec_check(space: dict) -> None:
    """`pretrained` is judged with a searched classifier that has ImageNet weights, not with the default
    small_cnn (which has none): both fields searched together is what the README shows."""
    from ganmix.search.preflight import check_spec
    from ganmix.search.spec import SearchSpec

    check_spec(SearchSpec.from_mapping({"dataset": "digits", "space": space}))


def test_imagenet_searched_with_only_classifiers_without_weights_is_refused() -> None:
    from ganmix.search.preflight import check_spec
    from ganmix.search.space import SpaceError
    from ganmix.search.spec import SearchSpec

    spec = SearchSpec.from_mapping({"dataset": "digits", "space": {"classifier": ["small_cnn"],
                                                                   "pretrained": ["none", "imagenet"]}})
    with pytest.raises(SpaceError, match=r"space\.pretrained: choice 'imagenet' is not a valid value"):
        check_spec(spec)


def test_the_fixed_baseline_is_a_recipe_of_the_space() -> None:
    """A searched choice the default is not among (`classifier: [resnet18]`): the baseline trial takes the
    first choice, so it trains the classifier the other trials train; with the default among the choices,
    the baseline keeps the default."""
    from ganmix.search.spec import SearchSpec

    only = SearchSpec.from_mapping({"dataset": "digits", "space": {"classifier": ["resnet18"],
                                                                   "pretrained": ["imagenet"]}}).baseline_recipe()
    assert (only.classifier, only.pretrained, only.generator, only.baseline) == ("resnet18", "imagenet", "none", True)
    both = SearchSpec.from_mapping({"dataset": "digits", "space": {"classifier": ["resnet18", "small_cnn"]}})
    assert both.baseline_recipe().classifier == "small_cnn"
