"""The reference classifier: one small_cnn per data set, trained on the real train split with pinned settings,
cached per data-set fingerprint and REFERENCE_VERSION in the user-level cache (reference_dir()).

Its penultimate features stand in for Inception features in FID/KID/precision/recall (ImageNet weights
neither fit 28 px grey medical images nor may be downloaded here), and its predictions judge whether a
generated image looks like the class it was generated for.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from filelock import FileLock

from ganmix.datasets import ImageDataset
from ganmix.models._images import to_unit
from ganmix.models.classifiers import SmallCNN
from ganmix.models.files import atomic_path, atomic_write, file_lock
from ganmix.models.classify import EvalSet, TrainSettings, fit_classifier, map_batches
from ganmix.models.reference_files import REFERENCE_VERSION, reference_dir, reference_path

# The pinned recipe: every setting spelled out, none read from the trainer's or the recipe's defaults, so a
# change of those (e.g. the default augmentation) never moves the feature space FID/KID are measured in.
# Changing anything here, the architecture or the preprocessing means a new REFERENCE_VERSION (in
# models/reference_files.py, beside the file's path, which the search's driver reads without torch).
_ARCH = "small_cnn"  # built directly as SmallCNN, which exposes forward_features
_SETTINGS = TrainSettings(epochs=15, lr=1e-3, min_steps=0, batch_size=128, weight_decay=1e-4,
                          lr_schedule="onecycle", augment="none", class_weight="none", seed=0,
                          select_metric="val_auc")
_SEED = 0  # the model's initialisation
_EVAL_BATCH = 1024
# Per process: where a missing reference file can be fetched instead of trained (a trial asks the search's
# background task for it); keyed by data-set fingerprint.
_SOURCES: dict[str, Callable[[], bytes | None]] = {}


@dataclass(frozen=True, eq=False)
class ReferenceClassifier:
    """A trained, frozen (eval-mode) small_cnn; inputs are uint8 images like the data set's, outputs on the CPU."""

    model: SmallCNN
    val_acc: float
    fingerprint: str
    device: torch.device

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], images_u8: torch.Tensor) -> torch.Tensor:
        if images_u8.dtype != torch.uint8 or images_u8.ndim != 4:
            raise ValueError(f"expected uint8 images (N, C, H, W), got {images_u8.dtype} {tuple(images_u8.shape)}")
        # Convert per batch so a large uint8 set never sits on the device as float all at once.
        return map_batches(lambda chunk: fn(to_unit(chunk, self.device)), images_u8, batch_size=_EVAL_BATCH)

    def features(self, images_u8: torch.Tensor) -> torch.Tensor:
        """(N, D) penultimate-layer embeddings (D = 128)."""
        return self._map(self.model.forward_features, images_u8)

    def proba_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """(N, K) softmax probabilities from `features()` output: callers that need both pay one forward pass."""
        with torch.no_grad():
            return self.model.head(features.to(self.device)).softmax(dim=1).cpu()

    def predict_proba(self, images_u8: torch.Tensor) -> torch.Tensor:
        """(N, K) softmax probabilities."""
        return self.proba_from_features(self.features(images_u8))

    def accuracy(self, images_u8: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of images whose argmax prediction equals `labels`; NaN for an empty set."""
        return argmax_accuracy(self.predict_proba(images_u8), labels)


def argmax_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of `probs` whose argmax equals `labels`; NaN for an empty set."""
    if len(labels) != len(probs):
        raise ValueError(f"{len(probs)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        return float("nan")
    return float((probs.argmax(1) == labels.cpu()).float().mean())


def register_source(fingerprint: str, fetch: Callable[[], bytes | None]) -> None:
    """Where this process gets the reference file of a data set when its cache lacks it: `fetch` returns the
    file's bytes (None: unavailable, train it here). It is called outside the file lock, since whoever
    produces the bytes may be holding that lock while it trains."""
    _SOURCES[fingerprint] = fetch


def reference_classifier(ds: ImageDataset, *, cache_dir: str | Path | None = None,
                         device: torch.device | str = "cpu", epochs: int | None = None) -> ReferenceClassifier:
    """Load the reference classifier of `ds` from `<cache_dir>/<fingerprint>-v<REFERENCE_VERSION>.pt` (default
    folder: reference_dir()), fetch it from a registered source, or train and save it.

    One process per machine trains it: the others wait on a lock file beside it and then load it. Writes go
    to a private temporary file renamed into place (atomic on one file system), so a reader on a machine that
    does not share the lock never sees a half-written file. `epochs` overrides the pinned recipe (tests
    only); a file saved under another recipe is retrained and overwritten.
    """
    device = torch.device(device)
    path = _usable_path(ds, cache_dir)
    fetch = _SOURCES.get(ds.fingerprint)
    if fetch is not None and not path.is_file():
        payload = fetch()
        if payload:
            with _lock(path):
                if not path.is_file():
                    atomic_write(path, payload)
    with _lock(path):  # released on exit, or by the OS when the holder dies
        model = _load_or_train(ds, path, device=device, epochs=epochs)
    return _frozen(model, ds, device)


def reference_bytes(ds: ImageDataset, *, cache_dir: str | Path | None = None) -> bytes:
    """The reference file of `ds` (loaded from the cache or trained into it): what the search's background
    task hands to its trials."""
    path = _usable_path(ds, cache_dir)
    with _lock(path):
        if not path.is_file():
            _load_or_train(ds, path, device=torch.device("cpu"), epochs=None)
        return path.read_bytes()


def _usable_path(ds: ImageDataset, cache_dir: str | Path | None) -> Path:
    """The reference file's path in `cache_dir`, or in a node-local temporary folder where that folder cannot
    be created (a driver's path on another node, a read-only home)."""
    path = reference_path(ds, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() or _writable(path.parent):
            return path
    except OSError:
        pass
    return reference_path(ds, Path(tempfile.gettempdir()) / "ganmix-cache" / "reference")


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _recipe(epochs: int | None) -> tuple[TrainSettings, dict[str, object]]:
    settings = _SETTINGS if epochs is None else replace(_SETTINGS, epochs=epochs)
    return settings, {"arch": _ARCH, "version": REFERENCE_VERSION, **dataclasses.asdict(settings)}


def _load_or_train(ds: ImageDataset, path: Path, *, device: torch.device, epochs: int | None) -> SmallCNN:
    settings, recipe = _recipe(epochs)
    model = _new_model(ds)
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("recipe") == recipe:
            model.load_state_dict(saved["state_dict"])
            return model
    train = ds.train
    fit_classifier(model, train.images, train.labels, settings=settings, device=device, num_classes=ds.num_classes,
                   val=EvalSet(ds.val.images, ds.val.labels, ds.class_names))
    _atomic_save({"recipe": recipe, "state_dict": model.state_dict()}, path)
    return model


def install_reference(ds: ImageDataset, cache_dir: str | Path | None, payload: bytes) -> Path:
    """Put a reference file trained elsewhere (its bytes) into `cache_dir` (default reference_dir()), so this
    node loads that very model instead of training its own: every trial's sample metrics share one feature
    space. Where `cache_dir` cannot be written, a node-local temporary folder is used instead. Returns the
    folder that holds the file."""
    error: OSError | None = None
    for folder in (Path(cache_dir or reference_dir()), Path(tempfile.gettempdir()) / "ganmix-cache" / "reference"):
        path = reference_path(ds, folder)
        try:
            with _lock(path):
                if not path.is_file() or path.read_bytes() != payload:
                    atomic_write(path, payload)
            return folder
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _lock(path: Path) -> FileLock:
    return file_lock(path)


def _new_model(ds: ImageDataset) -> SmallCNN:
    # A seeded initialisation makes the cached model a function of the data set alone; fork_rng keeps the
    # caller's global RNG stream (the trial's own seeding) untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        return SmallCNN(in_channels=ds.channels, num_classes=ds.num_classes, image_size=ds.image_size)


def _frozen(model: SmallCNN, ds: ImageDataset, device: torch.device) -> ReferenceClassifier:
    model.to(device).eval().requires_grad_(False)
    ref = ReferenceClassifier(model=model, val_acc=float("nan"), fingerprint=ds.fingerprint, device=device)
    return replace(ref, val_acc=ref.accuracy(ds.val.images, ds.val.labels))


def _atomic_save(obj: dict[str, object], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
