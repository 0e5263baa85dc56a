"""Generator reuse across trials: snapshots of a training run on disk, keyed by everything that shapes it.

A trial that wants a generator trained for E epochs looks up its key (data fingerprint, family, the whole
typed config: options, latent size, image size, channels, batch size, learning rate; the training seed and
the device type) and resumes from the largest snapshot <= E instead of starting from scratch; it then saves
a snapshot at E for the trials after it. A snapshot holds the weights, the optimizers' state, the RNG
states and the per-epoch metrics so far, so a resumed generator is the one training from scratch would
give (bit for bit on the CPU at the same torch thread count; on a GPU up to the nondeterminism of its
kernels), and the caller can log
the full metric history.

Layout: <root>/<key digest>/key.json and epoch-<E>.pt. Writes go to a private temporary file that is
renamed into place (atomic on one file system), under an exclusive lock (<key digest>/.snapshots.lock, models/files.py), so
concurrent trials on one machine never see or leave a half-written snapshot. Training itself runs outside
the lock: two trials with the same key at the same time both train (wasted work, never a clash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ganmix.models.files import atomic_path, atomic_write, file_lock
from ganmix.models.generator import GenerativeModel, GeneratorConfig, create_generator
from ganmix.models.generator_training import TrainingState, resume_generator

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "ganmix.generator-snapshot/1"
_SNAPSHOT = re.compile(r"^epoch-(\d+)\.pt$")


@dataclass(frozen=True)
class CachedTraining:
    """A trained generator and what the cache saved: epochs requested, reused from a snapshot, trained."""

    model: GenerativeModel
    history: list[dict[str, float]]  # every epoch 1..requested, reused ones included
    requested: int
    resumed_from: int  # epochs taken from a snapshot (0: trained from scratch)

    @property
    def trained(self) -> int:
        return self.requested - self.resumed_from


def generator_key(*, fingerprint: str, family: str, config: GeneratorConfig, seed: int,
                  device: torch.device | str) -> dict[str, object]:
    """Everything that decides the weights after E epochs; equal keys, equal training runs."""
    from ganmix.models._registry import PLUGIN_GROUP, entry_point_version

    plugin = entry_point_version(PLUGIN_GROUP, family)  # a plugin's package version; built-ins: none
    return {
        **({"plugin": plugin} if plugin is not None else {}),
        "format": SNAPSHOT_FORMAT,
        "fingerprint": fingerprint,
        "family": family,
        "config": dataclasses.asdict(config),
        "seed": seed,
        "device": torch.device(device).type,
        "torch": torch.__version__.split("+")[0],  # other kernels, other numbers
    }


def key_digest(key: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


class GeneratorCache:
    """Snapshots under `root` (a search keeps them in <results dir>/cache/generators)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, key: dict[str, object]) -> Path:
        return self.root / key_digest(key)

    @contextmanager
    def _locked(self, key: dict[str, object]) -> Iterator[Path]:
        folder = self.folder(key)
        with file_lock(folder / ".snapshots"):  # released on exit, or by the OS if the process dies
            yield folder

    def epochs(self, key: dict[str, object]) -> list[int]:
        """Epochs with a snapshot for `key`, ascending."""
        folder = self.folder(key)
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for name in os.listdir(folder) if (m := _SNAPSHOT.match(name)))

    def load(self, key: dict[str, object], at_most: int) -> dict[str, object] | None:
        """The largest readable snapshot <= `at_most` epochs, or None; unreadable files are skipped."""
        with self._locked(key) as folder:
            for epoch in reversed([e for e in self.epochs(key) if e <= at_most]):
                path = folder / f"epoch-{epoch}.pt"
                try:
                    payload = torch.load(path, map_location="cpu", weights_only=True)
                except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
                    log.warning("skipping unreadable generator snapshot %s: %s", path, exc)
                    continue
                if isinstance(payload, dict) and payload.get("key") == key and payload.get("epoch") == epoch:
                    return payload
        return None

    def save(self, key: dict[str, object], model: GenerativeModel, state: TrainingState,
             history: list[dict[str, float]]) -> Path:
        payload = {
            "format": SNAPSHOT_FORMAT,
            "key": key,
            "epoch": state.epoch,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "trainer": _to_cpu(model.trainer_state()),
            "rng": {"torch": state.torch_rng, "order": state.order_rng, "cuda": state.cuda_rng},
            "history": history,
        }
        with self._locked(key) as folder:
            atomic_write(folder / "key.json", json.dumps(key, sort_keys=True, indent=1))
            path = folder / f"epoch-{state.epoch}.pt"
            with atomic_path(path) as tmp:
                torch.save(payload, tmp)
        return path


def _to_cpu(value: object) -> object:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value


def train_with_cache(
    family: str,
    config: GeneratorConfig,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    fingerprint: str,
    cache: GeneratorCache | None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> CachedTraining:
    """create_generator + train_generator, resumed from the cache's largest snapshot <= `epochs` when there
    is one; saves a snapshot at `epochs`. `on_epoch` sees every epoch, reused ones first (replayed from
    the snapshot's history). Seed torch's global RNG before calling, as for create_generator.
    `cache=None` trains from scratch and saves nothing."""
    device = torch.device(device)
    model = create_generator(family, config)  # always built, so the global RNG advances the same way
    key = generator_key(fingerprint=fingerprint, family=family, config=config, seed=seed, device=device)
    snapshot = cache.load(key, epochs) if cache is not None else None
    start, history = None, []
    if snapshot is not None:
        model.load_state_dict(snapshot["state_dict"])  # type: ignore[arg-type]
        model.to(device)  # before the optimizer state: load_state_dict casts it to the parameters' device
        model.load_trainer_state(snapshot["trainer"])  # type: ignore[arg-type]
        rng = snapshot["rng"]
        start = TrainingState(int(snapshot["epoch"]), rng["torch"], rng["order"], rng["cuda"])  # type: ignore[index, call-overload]
        history = list(snapshot["history"])  # type: ignore[call-overload]
        if on_epoch is not None:
            for epoch, metrics in enumerate(history, start=1):
                on_epoch(epoch, metrics)
    trained, state = resume_generator(model, images, labels, epochs=epochs, device=device, seed=seed,
                                      on_epoch=on_epoch, start=start)
    history += trained
    if cache is not None and trained:
        try:
            cache.save(key, model, state, history)
        except OSError as exc:  # a full or read-only disk costs reuse, not the trial
            log.warning("could not save a generator snapshot under %s: %s", cache.root, exc)
    return CachedTraining(model=model, history=history, requested=epochs,
                          resumed_from=start.epoch if start is not None else 0)
