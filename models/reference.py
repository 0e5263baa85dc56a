"""The reference classifier: one small_cnn per data set, trained on the real train split, cached on disk.

Its penultimate features stand in for Inception features in FID/KID/precision/recall (ImageNet weights
neither fit 28 px grey medical images nor may be downloaded here), and its predictions judge whether a
generated image looks like the class it was generated for.
"""

from __future__ import annotations

import dataclasses
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

# The fixed recipe, trained by the same trainer as every trial. Changing it changes what "fid" etc. mean,
# so it is stored in the cache file and a file written with another recipe is retrained, not reused.
_ARCH = "small_cnn"  # built directly as SmallCNN, which exposes forward_features
_LR = 1e-3
_BATCH_SIZE = 128
_SEED = 0
_EVAL_BATCH = 1024


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


def reference_path(ds: ImageDataset, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / f"reference-{ds.fingerprint}.pt"


def reference_classifier(
    ds: ImageDataset, *, cache_dir: str | Path, device: torch.device | str = "cpu", epochs: int = 15
) -> ReferenceClassifier:
    """Load the reference classifier of `ds` from `<cache_dir>/reference-<fingerprint>.pt`, or train and save it.

    One process per machine trains it: the others wait on a lock file beside it and then load it (the search
    driver trains it while Ray starts, and an early trial waits for it instead of training a copy). Writes go
    to a private temporary file renamed into place (atomic on one file system), so a reader on a machine that
    does not share the lock never sees a half-written file. A file saved under another recipe (e.g. other
    `epochs`) is retrained and overwritten.
    """
    path = reference_path(ds, cache_dir)
    device = torch.device(device)
    with _lock(path):  # released on exit, or by the OS when the holder dies
        model = _load_or_train(ds, path, device=device, epochs=epochs)
    return _frozen(model, ds, device)


def _load_or_train(ds: ImageDataset, path: Path, *, device: torch.device, epochs: int) -> SmallCNN:
    settings = TrainSettings(epochs=epochs, lr=_LR, batch_size=_BATCH_SIZE, seed=_SEED)
    recipe = {"arch": _ARCH, **dataclasses.asdict(settings)}
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


def install_reference(ds: ImageDataset, cache_dir: str | Path, payload: bytes) -> Path:
    """Put the reference file the search driver trained (its bytes) into `cache_dir`, so a trial on any node
    loads that very model instead of training its own: every trial's sample metrics share one feature space.

    `cache_dir` is the driver's path; on a node where it cannot be written, a node-local temporary folder
    is used instead. Returns the folder that holds the file (pass it on as the trial's cache_dir)."""
    error: OSError | None = None
    for folder in (Path(cache_dir), Path(tempfile.gettempdir()) / "ganmix-cache"):
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
