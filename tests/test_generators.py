"""Generator registry, every registered family, DiffAugment and the train/sample/save/load API (tiny sizes).

Family tests are parametrized over the registry with each family's declared tiny options: a new family
module is tested by them without a line here."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ganmix.models._gan_blocks import CONV_SIZE_RULE, ConvGenerator, conv_trunk, stage_width
from ganmix.models._images import to_unit
from ganmix.models._registry import UnknownModelError
from ganmix.models.diffaugment import diff_augment
from ganmix.models.generator import (
    DivergenceError,
    GenerativeModel,
    GeneratorConfig,
    GeneratorError,
    create_generator,
    generator_class,
    generator_options,
    list_controls,
    list_generators,
    load_generator,
    make_generator_config,
    sample_images,
    save_generator,
)
from ganmix.models.generator_training import train_generator

FAMILIES = list_generators()
NUM_CLASSES = 3


def tiny_model(name: str, *, image_size: int = 8, channels: int = 1, **options: object) -> GenerativeModel:
    torch.manual_seed(0)
    cfg = make_generator_config(
        name, image_size=image_size, channels=channels, num_classes=NUM_CLASSES,
        batch_size=4, options={**generator_class(name).tiny_options, **options},
    )
    return create_generator(name, cfg)


def tiny_data(n: int = 10, *, image_size: int = 8, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, channels, image_size, image_size), generator=rng, dtype=torch.uint8)
    return images, torch.arange(n) % NUM_CLASSES


def requested_labels(counts: dict[int, int]) -> torch.Tensor:
    return torch.cat([torch.full((count,), label) for label, count in counts.items()])


def test_registry_finds_the_family_modules_itself() -> None:
    import ganmix.models as package

    marked = [path.stem for path in Path(package.__path__[0]).glob("[!_]*.py")
              if re.search(r"^@register_generator$", path.read_text(), re.MULTILINE)]
    registered = sorted([*FAMILIES, *list_controls()])  # a control (holdout) is registered the same way
    assert len(registered) == len(marked) >= 4  # one family per module that registers one
    assert {"acgan", "cvae", "dcgan", "wgan_gp"} <= set(FAMILIES) and "holdout" not in FAMILIES
    with pytest.raises(UnknownModelError, match=re.escape(f"'stylegan'; expected one of {registered}")):
        create_generator("stylegan", make_generator_config("dcgan", image_size=8, channels=1, num_classes=2))


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_declares_config_space_and_tiny_options(name: str) -> None:
    cls = generator_class(name)
    assert cls.family == name and issubclass(cls.config_cls, GeneratorConfig)
    options = generator_options(name)
    assert set(cls.search_space) <= set(options) and set(cls.tiny_options) <= set(options)
    assert isinstance(cls.cpu_default, bool)
    assert generator_options("wgan_gp") == {"latent_dim": 64, "diffaugment": "", "width": 32, "n_critic": 5,
                                            "gp_weight": 10.0}
    assert "latent_dim" not in {f.name for f in dataclasses.fields(GeneratorConfig)}


@pytest.mark.parametrize("image_size", [8, 28, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", FAMILIES)
def test_train_step_and_sampling(name: str, channels: int, image_size: int) -> None:
    model = tiny_model(name, image_size=image_size, channels=channels)
    images, labels = tiny_data(4, image_size=image_size, channels=channels)

    metrics = model.train_step(to_unit(images), labels)
    assert metrics and all(value.ndim == 0 for value in metrics.values())
    assert all(math.isfinite(value) for value in metrics.values()), metrics

    counts = {0: 2, 1: 3, 2: 1}
    samples = sample_images(model, requested_labels(counts), seed=5)
    assert samples.dtype == torch.uint8 and samples.device.type == "cpu"
    assert samples.shape == (sum(counts.values()), channels, image_size, image_size)
    assert torch.equal(samples, sample_images(model, requested_labels(counts), seed=5))
    assert not torch.equal(samples, sample_images(model, requested_labels(counts), seed=6))


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_and_samples_at_128_px(name: str) -> None:
    """The largest generator size, tiny options: a training step, then seeded samples of the right shape."""
    model = tiny_model(name, image_size=128, channels=3)
    images, labels = tiny_data(4, image_size=128, channels=3)
    history = train_generator(model, images, labels, epochs=1)  # batch 4: one step
    assert all(math.isfinite(value) for value in history[0].values()), history
    labels_out = requested_labels({0: 1, 2: 2})
    samples = sample_images(model, labels_out, seed=2)
    assert samples.shape == (3, 3, 128, 128) and samples.dtype == torch.uint8
    assert torch.equal(samples, sample_images(model, labels_out, seed=2))


def test_depth_follows_the_size_and_width_stops_at_8x() -> None:
    """Five stride-2 layers at 128 px, four at 64; channels double per layer up to 8x width (as at 64 px)."""
    def transposed(size: int) -> list[int]:
        generator = ConvGenerator(latent_dim=4, num_classes=2, channels=1, image_size=size, width=2)
        return [m.in_channels for m in generator.body if isinstance(m, torch.nn.ConvTranspose2d)]

    assert transposed(64) == [16, 8, 4, 2] and transposed(128) == [16, 16, 8, 4, 2] and transposed(8) == [2]
    assert [stage_width(2, stage) for stage in range(6)] == [2, 4, 8, 16, 16, 16]


@pytest.mark.parametrize("name", FAMILIES)
def test_train_generator_reports_named_losses_each_epoch(name: str) -> None:
    model = tiny_model(name)
    images, labels = tiny_data()
    calls: list[tuple[int, dict[str, float]]] = []

    history = train_generator(model, images, labels, epochs=2, seed=3, on_epoch=lambda e, m: calls.append((e, m)))

    assert [epoch for epoch, _ in calls] == [1, 2]
    assert [metrics for _, metrics in calls] == history
    assert all(set(metrics) == set(history[0]) for metrics in history)
    again = train_generator(tiny_model(name), images, labels, epochs=2, seed=3)
    assert again == history  # seeded: same data order, noise and augmentation


@pytest.mark.parametrize("name", [name for name in FAMILIES if "diffaugment" in generator_options(name)])
def test_gans_train_with_diffaugment(name: str) -> None:
    model = tiny_model(name, image_size=12, channels=3, diffaugment="color,translation,cutout")
    images, labels = tiny_data(image_size=12, channels=3)
    history = train_generator(model, images, labels, epochs=1, seed=0)
    assert all(math.isfinite(value) for value in history[0].values())
    # The augmentation reaches the discriminator: the same seed without it gives other losses (a no-op would not).
    plain = train_generator(tiny_model(name, image_size=12, channels=3), images, labels, epochs=1, seed=0)
    assert history != plain


@pytest.mark.parametrize("name", FAMILIES)
def test_sampling_does_not_depend_on_batch_size(name: str) -> None:
    model = tiny_model(name)
    labels = requested_labels({0: 5, 1: 4, 2: 3})
    whole, chunked = sample_images(model, labels, seed=1), sample_images(model, labels, seed=1, batch_size=5)
    assert (whole.int() - chunked.int()).abs().max() <= 1  # conv kernels may round differently per batch shape
    assert sample_images(model, torch.empty(0, dtype=torch.long)).shape == (0, 1, 8, 8)


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_round_trip(name: str, tmp_path) -> None:
    extra = {"diffaugment": "translation"} if "diffaugment" in generator_options(name) else {}
    model = tiny_model(name, image_size=9, **extra)
    images, labels = tiny_data(image_size=9)
    train_generator(model, images, labels, epochs=1)
    path = tmp_path / f"{name}.pt"

    save_generator(model, path)
    loaded = load_generator(path)

    assert type(loaded) is type(model) and loaded.config == model.config
    wanted = requested_labels({0: 3, 1: 3, 2: 3})
    assert torch.equal(sample_images(loaded, wanted, seed=2), sample_images(model, wanted, seed=2))
    assert torch.load(path, weights_only=True)["format"] == "ganmix.generator/1"


def test_load_rejects_bad_files(tmp_path) -> None:
    with pytest.raises(GeneratorError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(GeneratorError, match="not a readable generator checkpoint"):
        load_generator(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "someone.else/3"}, foreign)
    with pytest.raises(GeneratorError, match=re.escape("format 'someone.else/3', expected 'ganmix.generator/1'")):
        load_generator(foreign)
    unknown = tmp_path / "unknown.pt"
    torch.save({"format": "ganmix.generator/1", "family": "stylegan", "config": {}, "state_dict": {}}, unknown)
    with pytest.raises(GeneratorError, match="stylegan"):
        load_generator(unknown)


@pytest.mark.parametrize("name", FAMILIES)
def test_divergence_names_epoch_and_loss(name: str) -> None:
    model = tiny_model(name)
    images, labels = tiny_data()

    def poison_after_first_epoch(epoch: int, _metrics: dict[str, float]) -> None:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))

    with pytest.raises(DivergenceError, match=r"generator diverged at epoch 2: \w+=nan"):
        train_generator(model, images, labels, epochs=3, on_epoch=poison_after_first_epoch)


@pytest.mark.parametrize(
    ("name", "fields", "quoted"),
    [
        ("dcgan", {"image_size": 4}, f"image_size must be an int in 8..128 ({CONV_SIZE_RULE}), got 4"),
        ("cvae", {"image_size": 129}, f"image_size must be an int in 8..128 ({CONV_SIZE_RULE}), got 129"),
        ("acgan", {"image_size": 64.0}, "image_size must be an int in 8..128 (depth follows the size"),
        ("acgan", {"channels": 2}, "channels must be 1 or 3, got 2"),
        ("cvae", {"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
        ("cvae", {"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ("wgan_gp", {"options": {"n_critic": 0}}, "n_critic must be an int >= 1, got 0"),
        ("wgan_gp", {"options": {"n_critic": "5"}}, "option 'n_critic' of generator 'wgan_gp' must be int, got '5'"),
        ("wgan_gp", {"options": {"gp_weight": float("nan")}}, "gp_weight must be a finite number >= 0, got nan"),
        ("dcgan", {"options": {"kl_weight": 1.0}}, "unknown option(s) ['kl_weight'] for generator 'dcgan'; "
                                                   "valid options: ['diffaugment', 'latent_dim', 'width']"),
        ("dcgan", {"options": {"diffaugment": "color,flip"}}, "unknown DiffAugment item 'flip' in policy 'color,flip'"),
    ],
)
def test_config_validation_quotes_the_bad_value(name: str, fields: dict[str, object], quoted: str) -> None:
    kwargs: dict = {"image_size": 8, "channels": 1, "num_classes": 2, **fields}
    with pytest.raises(GeneratorError, match=re.escape(quoted)):
        make_generator_config(name, **kwargs)


def test_options_are_normalised_to_plain_python_values() -> None:
    # What a search space hands over: numpy scalars, an int for a float field, an integral float.
    cfg = make_generator_config("wgan_gp", image_size=8, channels=1, num_classes=2, lr=np.float64(3e-4),
                                options={"gp_weight": 5, "n_critic": np.int64(2)})
    assert (cfg.gp_weight, type(cfg.gp_weight), cfg.n_critic, type(cfg.n_critic)) == (5.0, float, 2, int)
    assert type(cfg.lr) is float and cfg.lr == 3e-4
    assert make_generator_config("acgan", image_size=8, channels=1, num_classes=2, options={"width": 2.0}).width == 2
    assert make_generator_config("cvae", image_size=8, channels=1, num_classes=2).lr == 1e-3  # family default


def test_training_inputs_are_checked() -> None:
    model = tiny_model("dcgan")
    images, labels = tiny_data()
    with pytest.raises(GeneratorError, match=re.escape("got torch.uint8 (10, 1, 9, 9)")):
        train_generator(model, tiny_data(image_size=9)[0], labels, epochs=1)
    with pytest.raises(GeneratorError, match=re.escape("labels must lie in 0..2, got 0..7")):
        train_generator(model, images, torch.arange(10) % 8, epochs=1)
    with pytest.raises(GeneratorError, match="needs a DCGANConfig, got CVAEConfig"):
        create_generator("dcgan", make_generator_config("cvae", image_size=8, channels=1, num_classes=2))


@torch.no_grad()
def test_every_image_size_gets_exact_output_and_features() -> None:
    torch.manual_seed(0)
    z, labels = torch.randn(2, 4), torch.tensor([0, 1])
    for size in [*range(8, 65), 65, 100, 127, 128]:
        generator = ConvGenerator(latent_dim=4, num_classes=2, channels=1, image_size=size, width=2)
        out = generator.eval()(z, labels)
        assert out.shape == (2, 1, size, size), size
        trunk, features = conv_trunk(channels=1, image_size=size, width=2, norm="layer")
        assert trunk(out).shape == (2, features), size


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", ["", "color", "translation", "cutout", "color, translation,cutout"])
def test_diff_augment_keeps_shape_and_gradients(policy: str, channels: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, channels, 9, 9, requires_grad=True)
    out = diff_augment(x, policy)
    assert out.shape == x.shape
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    if not policy:
        assert out is x


def test_diff_augment_transforms_do_something() -> None:
    torch.manual_seed(0)
    ones = torch.ones(16, 1, 16, 16)
    assert (diff_augment(ones, "cutout") == 0).flatten(1).sum(1).min() > 0  # every sample loses a patch
    shifted = diff_augment(ones, "translation")
    assert set(shifted.unique().tolist()) <= {0.0, 1.0} and (shifted == 0).any()  # zero padding shows
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 8, 8).repeat(8, 1, 1, 1)
    assert not torch.allclose(diff_augment(ramp, "color"), ramp)
    with pytest.raises(GeneratorError, match=re.escape("unknown DiffAugment item 'zoom' in policy 'zoom'")):
        diff_augment(ones, "zoom")
