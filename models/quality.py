"""Per-trial quality and privacy metrics of a generated set against the real train split.

Distribution metrics (FID, KID, precision/recall) work on reference-classifier features (see reference.py);
memorization works in pixel space, where "a copy of a training image" has its plain meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganmix.models.reference import ReferenceClassifier, argmax_accuracy

# Rows of the query set per torch.cdist call: 1024 x 5000 float32 distances is 20 MB.
_CHUNK = 1024


class QualityInputError(ValueError):
    """Feature or image sets with mismatched shapes or too few rows for the metric."""


def _feature_pair(
    real: torch.Tensor, fake: torch.Tensor, *, min_rows: int, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise QualityInputError(
            f"{metric}: expected two (N, D) feature sets with equal D, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    if min(len(real), len(fake)) < min_rows:
        raise QualityInputError(f"{metric}: needs at least {min_rows} rows per set, got {len(real)} and {len(fake)}")
    return real.detach().cpu().double(), fake.detach().cpu().double()


def _psd_sqrt(sym: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def fid(real_feats: torch.Tensor, fake_feats: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    tr sqrt(S1 S2) is taken as the sum of sqrt-eigenvalues of the symmetric PSD matrix S1^1/2 S2 S1^1/2
    (same spectrum as S1 S2), which, unlike a general sqrtm, stays real and stable for singular covariances.
    """
    x, y = (t.numpy() for t in _feature_pair(real_feats, fake_feats, min_rows=2, metric="fid"))
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    a = _psd_sqrt(s1)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(a @ s2 @ a), 0.0, None)).sum()
    value = np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return float(max(value, 0.0))  # rounding can push a true 0 slightly below


def kid(
    real_feats: torch.Tensor, fake_feats: torch.Tensor, *, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3,
    averaged over `subsets` random subsets of min(subset_size, N_real, N_fake) rows each (seeded)."""
    x, y = _feature_pair(real_feats, fake_feats, min_rows=2, metric="kid")
    m, d = min(subset_size, len(x), len(y)), x.shape[1]
    rng = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(subsets):
        xs, ys = x[torch.randperm(len(x), generator=rng)[:m]], y[torch.randperm(len(y), generator=rng)[:m]]
        kxx, kyy, kxy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((xs, xs), (ys, ys), (xs, ys)))
        within = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()) / (m * (m - 1))
        estimates.append(float(within - 2.0 * kxy.mean()))
    return float(np.mean(estimates))


def _kth_nearest(
    queries: torch.Tensor, points: torch.Tensor, *, k: int, exclude_self: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and index of, each query's k-th nearest point (chunked cdist; `exclude_self` when
    queries is points, so a point is not its own neighbour)."""
    dists, index = [], []
    for start in range(0, len(queries), _CHUNK):
        d = torch.cdist(queries[start : start + _CHUNK], points)
        if exclude_self:
            rows = torch.arange(len(d))
            d[rows, rows + start] = float("inf")
        values, idx = d.kthvalue(k, dim=1)
        dists.append(values)
        index.append(idx)
    return torch.cat(dists), torch.cat(index)


def _inside_any_ball(queries: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    return torch.cat([(torch.cdist(chunk, centers) <= radii).any(dim=1) for chunk in queries.split(_CHUNK)])


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius = distance to the k-th nearest
    other point of the same set. Precision: fraction of fake points inside the real manifold; recall:
    fraction of real points inside the fake manifold.
    """
    if k < 1:
        raise QualityInputError(f"precision_recall: k must be >= 1, got {k}")
    x, y = (t.float() for t in _feature_pair(real_feats, fake_feats, min_rows=k + 1, metric="precision_recall"))
    real_radii, _ = _kth_nearest(x, x, k=k, exclude_self=True)
    fake_radii, _ = _kth_nearest(y, y, k=k, exclude_self=True)
    precision = _inside_any_ball(y, x, real_radii).float().mean()
    recall = _inside_any_ball(x, y, fake_radii).float().mean()
    return float(precision), float(recall)


def label_fidelity(ref: ReferenceClassifier, images_u8: torch.Tensor, labels: torch.Tensor) -> float:
    """Reference-classifier accuracy on generated images against the labels they were generated for."""
    return ref.accuracy(images_u8, labels)


@dataclass(frozen=True, eq=False)
class MemorizationResult:
    """Per generated image: pixel distance to its nearest training image over the median real-to-real
    nearest-neighbour distance (`scale`). A ratio below `threshold` marks a near copy."""

    ratios: torch.Tensor  # (N_fake,)
    nearest: torch.Tensor  # (N_fake,) index of the nearest training image
    scale: float
    threshold: float
    train_u8: torch.Tensor
    fake_u8: torch.Tensor

    @property
    def near_copy_fraction(self) -> float:
        return float((self.ratios < self.threshold).float().mean())

    @property
    def median_ratio(self) -> float:
        return float(self.ratios.median())

    def closest_pairs(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k generated images closest to the training set and their nearest training images (uint8 (k, C, H, W))."""
        pairs = self.closest(k)
        return pairs.generated, pairs.real

    def closest(self, k: int) -> ClosestPairs:
        """The k closest (generated, nearest real) pairs with their distance ratios, closest first."""
        order = self.ratios.argsort()[:k]
        return ClosestPairs(self.fake_u8[order], self.train_u8[self.nearest[order]], self.ratios[order])


@dataclass(frozen=True, eq=False)
class ClosestPairs:
    """Generated images next to their nearest real train images; `ratios` as in MemorizationResult."""

    generated: torch.Tensor  # uint8 (k, C, H, W)
    real: torch.Tensor  # uint8 (k, C, H, W)
    ratios: torch.Tensor  # (k,)


def memorization(train_u8: torch.Tensor, fake_u8: torch.Tensor, *, threshold: float = 0.1) -> MemorizationResult:
    """Nearest-training-neighbour ratios of generated images in pixel space ([0, 1], flattened).

    Normalising by the median real-to-real nearest-neighbour distance makes the ratio comparable across
    data sets: ~1 means "as close as two distinct real images usually are", an exact copy gives 0. The
    default threshold 0.1 (ten times closer than typical real neighbours) flags copies up to small noise or
    intensity shifts but not merely similar images (BreastMNIST train + Gaussian noise: sigma 2 grey levels
    gives ratios ~0.075, sigma 8 ~0.3). Real data sets hold near-duplicates too: 6 of 78 held-out BreastMNIST
    val images fall below 0.1, so read near_copy_fraction against that baseline. bench/bench_classifiers.py
    prints these ratios.
    """
    same_shape = train_u8.ndim == 4 and train_u8.shape[1:] == fake_u8.shape[1:]
    if not same_shape or {train_u8.dtype, fake_u8.dtype} != {torch.uint8}:
        raise QualityInputError(
            f"memorization: expected uint8 (N, C, H, W) sets of one image shape, got {train_u8.dtype} "
            f"{tuple(train_u8.shape)} and {fake_u8.dtype} {tuple(fake_u8.shape)}"
        )
    if len(train_u8) < 2 or len(fake_u8) < 1:
        raise QualityInputError(
            f"memorization: needs >= 2 training and >= 1 generated images, got {len(train_u8)} and {len(fake_u8)}"
        )
    train = train_u8.flatten(1).float().div(255.0)
    fake = fake_u8.flatten(1).float().div(255.0)
    real_nn, _ = _kth_nearest(train, train, k=1, exclude_self=True)
    # Guard against a set made mostly of duplicates (median 0): ratios then stay finite and copies still read 0.
    scale = max(float(real_nn.median()), 1e-8)
    fake_nn, nearest = _kth_nearest(fake, train, k=1)
    return MemorizationResult(
        ratios=fake_nn / scale, nearest=nearest, scale=scale, threshold=threshold, train_u8=train_u8, fake_u8=fake_u8
    )


def sample_quality(
    ref: ReferenceClassifier,
    real_images_u8: torch.Tensor,
    real_labels: torch.Tensor,
    *,
    fake_images_u8: torch.Tensor,
    fake_labels: torch.Tensor,
    k: int = 3,
    pairs: int = 8,
) -> tuple[dict[str, float], ClosestPairs]:
    """All quality/privacy metrics of a generated set, plus its `pairs` closest (generated, nearest real)
    pairs with their distances (models.pictures.labelled_pairs draws them).

    `real_*` is the real train split; `real_labels` is only checked against the images (all metrics here are
    unconditional except label fidelity, which uses the generated labels).
    """
    if len(real_labels) != len(real_images_u8) or len(fake_labels) != len(fake_images_u8):
        raise QualityInputError(
            f"sample_quality: {len(real_images_u8)} real images with {len(real_labels)} labels, "
            f"{len(fake_images_u8)} generated images with {len(fake_labels)} labels"
        )
    real_feats, fake_feats = ref.features(real_images_u8), ref.features(fake_images_u8)
    precision, recall = precision_recall(real_feats, fake_feats, k=k)
    mem = memorization(real_images_u8, fake_images_u8)
    metrics = {
        "fid": fid(real_feats, fake_feats),
        "kid": kid(real_feats, fake_feats),
        "precision": precision,
        "recall": recall,
        "label_fidelity": argmax_accuracy(ref.proba_from_features(fake_feats), fake_labels),
        "near_copy_fraction": mem.near_copy_fraction,
        "nn_ratio_median": mem.median_ratio,
    }
    return metrics, mem.closest(pairs)


def confidence_filter(
    ref: ReferenceClassifier, images_u8: torch.Tensor, labels: torch.Tensor, *, threshold: float
) -> torch.Tensor:
    """Bool mask (N,) on the CPU: keep images whose intended class gets reference probability >= threshold."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence threshold must lie in [0, 1], got {threshold}")
    if threshold == 0.0:
        # Every probability is >= 0: skip running the classifier.
        return torch.ones(len(images_u8), dtype=torch.bool)
    probs = ref.predict_proba(images_u8)
    return probs[torch.arange(len(labels)), labels.cpu()] >= threshold
