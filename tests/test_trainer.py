"""The one classifier trainer: step budget, best-val checkpoint, augmentation, class weights, seeds."""

from __future__ import annotations

import pytest
import torch

from ganmix.models import classify
from ganmix.models.classifiers import create_classifier
from ganmix.models.classify import EvalSet, TrainSettings, evaluate, fit_classifier, seeded_classifier


def _separable_set(n: int = 64, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 is dark noise, class 1 bright noise, as uint8 images."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = torch.where(labels[:, None, None, None] == 1, 170.0, 60.0)
    images = (base + 40 * torch.randn(n, 1, size, size, generator=gen)).clamp(0, 255).to(torch.uint8)
    return images, labels


def _model(seed: int = 0) -> torch.nn.Module:
    return seeded_classifier(lambda: create_classifier("small_cnn", in_channels=1, num_classes=2, image_size=8), seed)


def _val(n: int = 32) -> EvalSet:
    images, labels = _separable_set(n, seed=1)
    return EvalSet(images, labels, ("dark", "bright"))


def _count_steps(monkeypatch) -> list[int]:
    """Counts AdamW steps into the last entry of the returned list (append 0 before each fit)."""
    steps: list[int] = []
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):  # counts calls, then does the real update
        steps[-1] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    return steps


def test_training_lowers_the_loss_and_reports_every_epoch() -> None:
    images, labels = _separable_set()
    settings = TrainSettings(epochs=5, lr=3e-3, batch_size=16)
    result = fit_classifier(_model(), images, labels, settings=settings, device="cpu", num_classes=2, val=_val())
    assert len(result.history) == 5
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.best_val["val_auc"] > 0.95


def test_step_budget_does_not_grow_with_the_synthetic_ratio(monkeypatch) -> None:
    """Synthetic images replace real ones in the batches: the same number of optimizer steps at any ratio."""
    steps = _count_steps(monkeypatch)
    real, real_labels = _separable_set(n=40)
    for ratio in (0, 1, 3):
        fake, fake_labels = _separable_set(n=40 * ratio, seed=2) if ratio else (real[:0], real_labels[:0])
        steps.append(0)
        fit_classifier(_model(), torch.cat([real, fake]), torch.cat([real_labels, fake_labels]),
                       settings=TrainSettings(epochs=3, lr=1e-3, batch_size=8), device="cpu", num_classes=2,
                       real_count=len(real))
    assert steps == [15, 15, 15]  # 3 epochs x ceil(40 / 8) batches


def test_a_small_set_gets_at_least_the_step_floor_at_any_ratio(monkeypatch) -> None:
    """40 images at batch 64 are one step per epoch; a floor of 20 steps over 4 epochs makes every epoch
    five passes over the real split, whatever the synthetic ratio, and the per-epoch reports stay 4."""
    steps = _count_steps(monkeypatch)
    real, real_labels = _separable_set(n=40)
    settings = TrainSettings(epochs=4, lr=1e-3, batch_size=64, min_steps=20)
    for ratio in (0, 1, 3):
        fake, fake_labels = _separable_set(n=40 * ratio, seed=2) if ratio else (real[:0], real_labels[:0])
        steps.append(0)
        result = fit_classifier(_model(), torch.cat([real, fake]), torch.cat([real_labels, fake_labels]),
                                settings=settings, device="cpu", num_classes=2, real_count=len(real))
        assert len(result.history) == 4
        assert [h["train_steps"] for h in result.history] == [5, 10, 15, 20]
    assert steps == [20, 20, 20]
    assert classify.total_steps(40, settings) == 20


def test_a_large_set_keeps_its_epochs_under_the_floor(monkeypatch) -> None:
    """When epochs x batches already reach the floor, nothing is added: 3 epochs x 5 batches = 15 >= 10."""
    steps = _count_steps(monkeypatch)
    images, labels = _separable_set(n=40)
    steps.append(0)
    fit_classifier(_model(), images, labels, settings=TrainSettings(epochs=3, lr=1e-3, batch_size=8, min_steps=10),
                   device="cpu", num_classes=2)
    assert steps == [15]
    assert classify.passes_per_epoch(40, epochs=3, batch_size=8, min_steps=10) == 1
    # A floor just past the natural budget adds one whole pass per epoch.
    assert classify.passes_per_epoch(40, epochs=3, batch_size=8, min_steps=16) == 2


def test_a_floor_of_zero_trains_exactly_as_before() -> None:
    """The floor draws its passes from the same shuffling stream: with no extra pass, weights are unchanged."""
    images, labels = _separable_set()
    a, b = _model(), _model()
    fit_classifier(a, images, labels, settings=TrainSettings(epochs=2, lr=1e-3, batch_size=16), device="cpu",
                   num_classes=2)
    fit_classifier(b, images, labels, settings=TrainSettings(epochs=2, lr=1e-3, batch_size=16, min_steps=8),
                   device="cpu", num_classes=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_one_cycle_schedule_spans_the_floored_steps() -> None:
    """One-cycle's total is the floored step count: the learning rate ends near zero, not mid-cycle."""
    images, labels = _separable_set(n=40)
    result = fit_classifier(_model(), images, labels, device="cpu", num_classes=2,
                            settings=TrainSettings(epochs=2, lr=1e-2, batch_size=64, min_steps=12))
    assert result.history[-1]["train_steps"] == 12
    # Mid-cycle after epoch 1 (step 6 of 12), annealed to under 5 % of the peak after epoch 2.
    assert result.history[0]["lr"] > 0.5e-2 > 0.05e-2 > result.history[-1]["lr"]


def test_the_best_val_epoch_is_the_one_restored() -> None:
    images, labels = _separable_set()
    val = _val()
    model = _model()
    seen: list[tuple[int, dict, dict]] = []
    settings = TrainSettings(epochs=6, lr=3e-2, batch_size=8, select_metric="val_loss")
    result = fit_classifier(model, images, labels, settings=settings, device="cpu", num_classes=2, val=val,
                            on_epoch=lambda e, m, b: seen.append((e, dict(m), dict(b))))
    losses = [m["val_loss"] for _, m, _ in seen]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert seen[-1][2]["val_loss"] == min(losses)  # the last callback sees the best so far
    # The model holds the best epoch's weights: evaluating it again gives that epoch's val metrics.
    again, _ = evaluate(model, val, torch.device("cpu"))
    assert again["val_loss"] == pytest.approx(min(losses), rel=1e-5)
    assert again["val_auc"] == pytest.approx(result.best_val["val_auc"])


def test_augmentation_touches_training_batches_only(monkeypatch) -> None:
    calls: list[int] = []
    real_make = classify.make_augmenter

    def spying_make(name):
        augment = real_make(name)
        return lambda batch: (calls.append(len(batch)), augment(batch))[1]

    monkeypatch.setattr(classify, "make_augmenter", spying_make)
    images, labels = _separable_set(n=48)
    val = _val(20)
    fit_classifier(_model(), images, labels, settings=TrainSettings(epochs=2, lr=1e-3, batch_size=16,
                                                                    augment="flip_rotate"),
                   device="cpu", num_classes=2, val=val)
    # Two epochs of three training batches of 16; the 20 validation images never pass through.
    assert calls == [16] * 6


@pytest.mark.parametrize("name", ["flip", "flip_rotate", "trivial"])
def test_augmenters_keep_shape_and_give_model_input(name: str) -> None:
    images, _ = _separable_set(n=6, size=28)
    out = classify.make_augmenter(name)(images)
    # uint8 in, the models' float [-1, 1] out (as to_unit makes it), same shape.
    assert out.shape == images.shape and out.dtype == torch.float32
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    assert classify.make_augmenter("none") is None


def test_augmentation_draws_per_image_parameters_reproducibly() -> None:
    # 64 copies of one asymmetric image: batched per-image parameters turn them into many different images,
    # and the same seed gives the same batch again.
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[..., 4:24, 6:12] = 255
    batch = image.expand(64, -1, -1, -1).contiguous()
    augment = classify.make_augmenter("flip_rotate")
    torch.manual_seed(3)
    first = augment(batch)
    torch.manual_seed(3)
    again = augment(batch)
    torch.testing.assert_close(first, again)
    distinct = {tuple(row.flatten().round(decimals=3).tolist()) for row in first}
    assert len(distinct) > 32  # one draw for the whole batch would give 1 (or 2 with a flip)
    flipped = classify.make_augmenter("flip")(batch)
    unit = batch.float() / 127.5 - 1
    as_is = (flipped == unit).flatten(1).all(1)
    mirrored = (flipped == unit.flip(-1)).flatten(1).all(1)
    assert bool((as_is | mirrored).all()) and 8 < int(mirrored.sum()) < 56  # a coin per image


def test_balanced_class_weights_follow_sklearn() -> None:
    labels = torch.tensor([0] * 30 + [1] * 10)
    weights = classify._loss_weights(labels, 3, "balanced", torch.device("cpu"))
    # n / (k * count) over the present classes; the absent class 2 keeps weight 1.
    torch.testing.assert_close(weights, torch.tensor([40 / 60, 40 / 20, 1.0]))
    assert classify._loss_weights(labels, 3, "none", torch.device("cpu")) is None


def test_same_classifier_seed_same_initial_weights_whatever_came_before() -> None:
    first = _model(seed=3)
    torch.randn(1000)  # e.g. a GAN that consumed randomness before the classifier was built
    second = _model(seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not torch.equal(next(_model(seed=4).parameters()), next(first.parameters()))


def test_training_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    images, labels = _separable_set(n=32)
    settings = TrainSettings(epochs=2, lr=1e-3, batch_size=8, seed=5, augment="trivial")
    histories = []
    for _ in range(2):
        torch.manual_seed(123)
        fit = fit_classifier(_model(), images, labels, settings=settings, device="cpu", num_classes=2)
        histories.append(fit.history)
        after = torch.rand(1)
    torch.manual_seed(123)
    assert histories[0] == histories[1]
    assert torch.equal(after, torch.rand(1))


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_schedules_run_their_exact_step_count(schedule: str) -> None:
    images, labels = _separable_set(n=33)  # a last batch of one is dropped, and the schedule knows it
    fit = fit_classifier(_model(), images, labels, settings=TrainSettings(epochs=2, lr=1e-3, batch_size=8,
                                                                         lr_schedule=schedule),
                         device="cpu", num_classes=2)
    assert len(fit.history) == 2 and all(h["lr"] >= 0 for h in fit.history)
