"""Known answers for FID/KID/precision/recall/memorization, and the cached reference classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.datasets import load_digits

import ganmix.models.reference as reference_module
from ganmix.datasets import ImageDataset, Split
from ganmix.models.quality import (
    QualityInputError,
    confidence_filter,
    fid,
    kid,
    label_fidelity,
    memorization,
    precision_recall,
    sample_quality,
)
from ganmix.models.reference import ReferenceClassifier, reference_classifier, reference_path

REF_EPOCHS = 3  # enough for ~90% on 8 px digits; the metrics only need a fixed, sensible embedding


def _digits(n_train: int = 1000) -> ImageDataset:
    """sklearn's 8x8 digits (values 0..16) as a 10-class uint8 ImageDataset with a seeded split."""
    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8))[:, None]
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:n_train], order[1000:1400], order[1400:]
    return ImageDataset(
        name="digits",
        train=Split(images[train], labels[train]),
        val=Split(images[val], labels[val]),
        test=Split(images[test], labels[test]),
        class_names=tuple(str(d) for d in range(10)),
    )


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return _digits()


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def ref(digits: ImageDataset, ref_dir: Path) -> ReferenceClassifier:
    return reference_classifier(digits, cache_dir=ref_dir, epochs=REF_EPOCHS)


def _features(n: int = 400, d: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=gen)  # correlated features, like a real embedding
    return torch.randn(n, d, generator=gen) @ mixing + 2.0


def test_fid_of_a_set_with_itself_is_zero_and_of_noise_is_large() -> None:
    x = _features()
    noise = torch.randn(400, 16, generator=torch.Generator().manual_seed(1)) * 3
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    assert fid(x, noise) > 100.0


def test_fid_matches_the_closed_form() -> None:
    # 1-D Gaussians: FID = (m1 - m2)^2 + (s1 - s2)^2; build samples with exact sample mean and std.
    z = torch.randn(500, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = (z - z.mean()) / z.std()
    assert fid(1.0 + 2.0 * z, -1.0 + 0.5 * z) == pytest.approx(4.0 + 2.25, rel=1e-9)
    # d-D: against the textbook formula with scipy's general matrix square root.
    x, y = _features(seed=0).double(), (_features(seed=1) * 0.7 + 1).double()
    s1, s2 = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
    textbook = ((x.mean(0) - y.mean(0)) ** 2).sum().item() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid(x, y) == pytest.approx(textbook, rel=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_large_for_another() -> None:
    # Unit-scale features: the cubic kernel makes KID's variance grow with the feature scale.
    gen = torch.Generator().manual_seed(0)
    x, same = torch.randn(400, 16, generator=gen), torch.randn(400, 16, generator=gen)
    other = torch.randn(400, 16, generator=gen) * 2 + 0.5
    baseline = kid(x, other, subset_size=200)
    assert baseline > 1.0
    assert abs(kid(x, same, subset_size=200)) < 0.01 * baseline
    assert abs(kid(x, x, subset_size=200)) < 0.01 * baseline
    assert kid(x, other, subset_size=200, seed=3) == pytest.approx(baseline, rel=0.2)  # subsets barely matter


def test_precision_and_recall_of_identical_and_disjoint_sets() -> None:
    x = _features()
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x, x + 1000.0, k=3) == (0.0, 0.0)
    # A fake set covering only half of the real points: all of it is realistic, but recall drops.
    half = x[x[:, 0] < x[:, 0].median()]
    precision, recall = precision_recall(x, half, k=3)
    assert precision == 1.0 and 0.3 < recall < 0.8


def test_feature_inputs_are_checked() -> None:
    with pytest.raises(QualityInputError, match=r"equal D, got \(4, 3\) and \(4, 2\)"):
        fid(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(QualityInputError, match="at least 4 rows per set, got 3 and 10"):
        precision_recall(torch.zeros(3, 2), torch.zeros(10, 2), k=3)


def test_memorization_flags_exactly_the_planted_copies(digits: ImageDataset) -> None:
    gen = torch.Generator().manual_seed(0)
    train = digits.train.images
    fake = torch.randint(0, 256, (60, 1, 8, 8), dtype=torch.uint8, generator=gen)
    planted = torch.tensor([3, 17, 42, 58])
    sources = torch.tensor([0, 5, 500, 999])
    fake[planted] = train[sources]
    jitter = torch.randint(-6, 7, (1, 8, 8), generator=gen)
    fake[30] = (train[123].int() + jitter).clamp(0, 255).to(torch.uint8)  # a near copy with a little noise
    result = memorization(train, fake, threshold=0.1)
    flagged = torch.nonzero(result.ratios < 0.1).flatten()
    assert flagged.tolist() == sorted(planted.tolist() + [30])
    assert result.near_copy_fraction == pytest.approx(5 / 60)
    assert result.median_ratio > 1.0  # uniform noise is nothing like a digit
    fakes, reals = result.closest_pairs(4)
    assert torch.equal(fakes, reals)  # the 4 exact copies come first, paired with their sources
    assert sorted(result.nearest[planted].tolist()) == sources.tolist()


def test_reference_label_fidelity_on_val_equals_val_acc(ref: ReferenceClassifier, digits: ImageDataset) -> None:
    assert ref.val_acc > 0.7
    assert label_fidelity(ref, digits.val.images, digits.val.labels) == ref.val_acc
    assert ref.features(digits.val.images[:5]).shape == (5, 128)


def test_reference_is_cached_by_fingerprint(
    ref: ReferenceClassifier, digits: ImageDataset, ref_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = reference_path(digits, ref_dir)
    assert path.name == f"{digits.fingerprint}-v{reference_module.REFERENCE_VERSION}.pt" and path.is_file()
    mtime = path.stat().st_mtime_ns
    calls: list[int] = []
    real_fit = reference_module.fit_classifier
    monkeypatch.setattr(reference_module, "fit_classifier", lambda *a, **kw: calls.append(1) or real_fit(*a, **kw))
    again = reference_classifier(digits, cache_dir=ref_dir, epochs=REF_EPOCHS)
    assert calls == [] and path.stat().st_mtime_ns == mtime
    assert again.val_acc == ref.val_acc
    for a, b in zip(again.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)
    # Other content, other fingerprint, other file: trained anew.
    smaller = _digits(n_train=300)
    assert smaller.fingerprint != digits.fingerprint
    reference_classifier(smaller, cache_dir=ref_dir, epochs=1)
    assert calls == [1] and reference_path(smaller, ref_dir).is_file()
    # Same data under another recipe (epochs) is retrained rather than silently reused.
    reference_classifier(smaller, cache_dir=ref_dir, epochs=2)
    assert calls == [1, 1]
    assert not list(ref_dir.glob(".*.tmp"))  # no temporary files left behind


def test_confidence_filter(ref: ReferenceClassifier, digits: ImageDataset) -> None:
    images, labels = digits.val.images, digits.val.labels
    assert confidence_filter(ref, images, labels, threshold=0.0).all()
    probs = ref.predict_proba(images)[torch.arange(len(labels)), labels]
    threshold = float(probs.median())  # a 3-epoch reference is under-confident; the median splits it in half
    mask = confidence_filter(ref, images, labels, threshold=threshold)
    assert torch.equal(mask, probs >= threshold) and 0 < int(mask.sum()) < len(labels)
    with pytest.raises(ValueError, match="threshold must lie in \\[0, 1\\], got 1.5"):
        confidence_filter(ref, images, labels, threshold=1.5)


def test_sample_quality_of_real_copies(ref: ReferenceClassifier, digits: ImageDataset) -> None:
    train = digits.train
    metrics, pairs = sample_quality(ref, train.images, train.labels, fake_images_u8=train.images[:300], fake_labels=train.labels[:300])
    expected = {"fid", "kid", "precision", "recall", "label_fidelity", "near_copy_fraction", "nn_ratio_median"}
    assert set(metrics) == expected
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["precision"] == 1.0 and metrics["near_copy_fraction"] == 1.0 and metrics["nn_ratio_median"] < 0.01
    assert metrics["label_fidelity"] == ref.accuracy(train.images[:300], train.labels[:300])
    assert pairs.generated.shape == pairs.real.shape == (8, 1, 8, 8) and torch.equal(pairs.generated, pairs.real)
    assert pairs.ratios.tolist() == sorted(pairs.ratios.tolist()) and float(pairs.ratios.max()) < 0.01
    noise = torch.randint(0, 256, (300, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    worse, _ = sample_quality(ref, train.images, train.labels, fake_images_u8=noise, fake_labels=train.labels[:300])
    assert worse["fid"] > 10 * max(metrics["fid"], 1e-3) and worse["near_copy_fraction"] == 0.0


def test_a_shipped_reference_file_is_installed_and_used_untrained(
    ref: ReferenceClassifier, digits: ImageDataset, ref_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial on another node gets the driver's reference file (bytes through Ray's object store): it loads
    that very model, so every trial's sample metrics share one feature space; it never trains its own."""
    from ganmix.models.reference import install_reference

    payload = reference_path(digits, ref_dir).read_bytes()
    node_cache = tmp_path / "node-cache"
    assert install_reference(digits, node_cache, payload) == node_cache
    assert install_reference(digits, node_cache, payload) == node_cache  # a second trial on the node: no error
    assert reference_path(digits, node_cache).read_bytes() == payload
    monkeypatch.setattr(reference_module, "fit_classifier", lambda *a, **kw: pytest.fail("trained again"))
    loaded = reference_classifier(digits, cache_dir=node_cache, epochs=REF_EPOCHS)
    for a, b in zip(loaded.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_reference_recipe_is_pinned_and_versioned(ref: ReferenceClassifier, digits: ImageDataset,
                                                       ref_dir: Path) -> None:
    """Its own settings, none read from the trainer's defaults (no augmentation whatever the recipes default
    to), saved with its version in the file and in the file's name."""
    saved = torch.load(reference_path(digits, ref_dir), map_location="cpu", weights_only=True)["recipe"]
    assert saved["version"] == reference_module.REFERENCE_VERSION
    assert saved["augment"] == "none" and saved["seed"] == 0 and saved["lr"] == 1e-3
    assert reference_module._SETTINGS.epochs == 15  # the pinned default; tests shorten it with `epochs`


def test_a_registered_source_is_fetched_instead_of_training(
    ref: ReferenceClassifier, digits: ImageDataset, ref_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial whose node lacks the file waits for the search's background task (its source) rather than
    training its own copy; the fetch happens only when the classifier is asked for, and only once."""
    payload = reference_path(digits, ref_dir).read_bytes()
    fetched: list[int] = []
    monkeypatch.setattr(reference_module, "_SOURCES", {})
    reference_module.register_source(digits.fingerprint, lambda: fetched.append(1) or payload)
    monkeypatch.setattr(reference_module, "fit_classifier", lambda *a, **kw: pytest.fail("trained again"))
    node_cache = tmp_path / "node-cache"
    assert fetched == []
    loaded = reference_classifier(digits, cache_dir=node_cache, epochs=REF_EPOCHS)
    reference_classifier(digits, cache_dir=node_cache, epochs=REF_EPOCHS)
    assert fetched == [1] and reference_path(digits, node_cache).read_bytes() == payload
    for a, b in zip(loaded.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_default_folder_is_the_user_cache(digits: ImageDataset, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANMIX_CACHE", str(tmp_path / "cache"))
    assert reference_path(digits) == tmp_path / "cache" / "reference" / (
        f"{digits.fingerprint}-v{reference_module.REFERENCE_VERSION}.pt")
