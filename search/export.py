"""`ganmix export`: a recipe's augmented training set on disk, for any training pipeline.

The real train split (loaded as the trial loaded it: its data set, data dir and scarcity draw) plus the
synthetic images of one trial's recipe: its logged generator checkpoint is loaded, not retrained, and sampled
at the recipe's ratio and allocation. Written as DIR/{train,val,test}/<class>/*.png with DIR/manifest.csv, or
as one DIR/export.npz with the same fields. Everything is written into a temporary folder beside DIR and
renamed at the end, so bad input or an interruption leaves nothing behind.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganmix.tracking.location import TrackingError

ARMS = "gan, real-only or topK (top1, top2, ...)"
FORMATS = ("folder", "npz")
NPZ_NAME = "export.npz"
MANIFEST = "manifest.csv"


class ExportError(TrackingError):
    """Bad input to `ganmix export` (an unknown search or arm, a non-empty --out, a run without a generator)."""


@dataclass(frozen=True)
class Chosen:
    key: str  # the arm asked for
    summary: Any  # query.TrialSummary of the trial whose recipe is exported
    recipe: Any  # its Recipe


def check_out(out: Path) -> None:
    """--out must not exist, or be an empty folder: an export never mixes with (or replaces) other files."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {str(out)!r} exists and is not an empty folder; expected a new or empty folder")


def check_arm(arm: str) -> None:
    if arm not in ("gan", "real-only") and not re.fullmatch(r"top[1-9][0-9]*", arm):
        raise ExportError(f"--arm {arm!r} is not an arm; expected one of {ARMS}")


def choose(uri: str, search: Any, arm: str, metric: str) -> Chosen:
    """The trial of `arm`; `gan` is the confirmed GAN arm when `ganmix confirm` ran, else the best GAN trial."""
    from ganmix.search.recipe import Recipe
    from ganmix.tracking import query

    trials = query.trial_summaries(uri, search.info.experiment_id, search.info.run_id)
    ranked = query.rank(trials, metric)
    picked = None
    if arm.startswith("top"):
        k = int(arm[3:])
        if k > len(ranked):
            raise ExportError(f"--arm {arm}: the search has {len(ranked)} completed trial(s) with a finite {metric}")
        picked = ranked[k - 1]
    elif arm == "real-only":
        picked = next((s for s in ranked if query.is_real_only(s)), None)
    else:
        gans = [s for s in ranked if not query.is_real_only(s)] or [
            s for s in query.rank_stopped(trials, metric) if not query.is_real_only(s)]
        confirmed = query.confirmed_arm(search)
        picked = next((s for s in gans if s.name == confirmed), gans[0] if gans else None)
    if picked is None:
        raise ExportError(f"--arm {arm}: the search has no such trial (no completed {arm} trial)")
    text = query.recipe_yaml(uri, picked.run_id)
    if text is None:
        raise ExportError(f"trial run {picked.run_id} has no recipe.yaml; it cannot be exported")
    return Chosen(arm, picked, Recipe.from_yaml(text, source=f"run {picked.run_id}"))


def export(*, uri: str, search: Any, arm: str, out: Path, fmt: str, seed: int | None,
           data_dir: Path | None, metric: str | None = None) -> dict[str, Any]:
    """Write the augmented training set; returns a summary (trial, counts) for the command to print."""
    import torch

    from ganmix.models.generator import load_generator, sample_images
    from ganmix.search.allocation import allocate, synthetic_total
    from ganmix.search.recipe_data import load_recipe_data
    from ganmix.tracking import query
    from ganmix.tracking.runs import METRIC

    chosen = choose(uri, search, arm, metric or search.data.tags.get(METRIC, "val_auc"))
    recipe, run_id = chosen.recipe, chosen.summary.run_id
    if recipe.real_only:
        raise ExportError(f"--arm {arm} is trial {chosen.summary.name!r} (run {run_id}), a real-only recipe "
                          "without a generator: there is nothing synthetic to export; pick a GAN arm")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = query.generator_checkpoint(uri, run_id, tmp)
        if checkpoint is None:
            raise ExportError(f"trial run {run_id} logged no generator ({query.GENERATOR_ARTIFACT}); "
                              "it cannot be sampled without retraining")
        model = load_generator(checkpoint)
    dataset = load_recipe_data(recipe, data_dir or query.search_data_dir(search))
    train = dataset.train
    per_class = allocate(synthetic_total(recipe.synthetic_ratio, len(train)),
                         train.class_counts(dataset.num_classes), recipe.allocation)
    seed = recipe.generator_seed if seed is None else seed  # the default reproduces the trial's own samples
    labels = torch.repeat_interleave(torch.arange(dataset.num_classes), torch.tensor(per_class))
    synthetic = sample_images(model, labels, seed=seed)
    _write(out, fmt, dataset, synthetic.numpy(), labels.numpy(), run_id=run_id, seed=seed)
    return {"trial": chosen.summary.name, "run_id": run_id, "seed": seed, "real": len(train),
            "synthetic": dict(zip(dataset.class_names, per_class))}


def export_model(*, uri: str, model_uri: str, out: Path, fmt: str, seed: int | None,
                 data_dir: Path | None) -> dict[str, Any]:
    """The same augmented training set from a generator in the Model Registry (`ganmix best --register`):
    its recipe (a model-version tag) says which data, ratio and allocation; the model itself is sampled."""
    from ganmix.search.allocation import allocate, synthetic_total
    from ganmix.search.recipe import Recipe
    from ganmix.search.recipe_data import load_recipe_data
    from ganmix.tracking.registry import model_version_tags, sample_registered

    tags = model_version_tags(uri, model_uri)
    if "ganmix.recipe" not in tags:
        raise ExportError(f"--model {model_uri}: this model version has no ganmix.recipe tag; register it with "
                          "`ganmix best --register`")
    recipe = Recipe.from_yaml(tags["ganmix.recipe"], source=f"--model {model_uri}")
    dataset = load_recipe_data(recipe, data_dir)
    per_class = allocate(synthetic_total(recipe.synthetic_ratio, len(dataset.train)),
                         dataset.train.class_counts(dataset.num_classes), recipe.allocation)
    seed = recipe.generator_seed if seed is None else seed
    images, labels = sample_registered(model_uri, {c: n for c, n in enumerate(per_class) if n}, seed,
                                       tracking_uri=uri)
    run_id = tags.get("ganmix.trial_run_id", model_uri)
    _write(out, fmt, dataset, images, labels, run_id=run_id, seed=seed)
    return {"trial": model_uri, "run_id": run_id, "seed": seed, "real": len(dataset.train),
            "synthetic": dict(zip(dataset.class_names, per_class))}


def _write(out: Path, fmt: str, dataset: Any, images: np.ndarray, labels: np.ndarray, *, run_id: str,
           seed: int) -> None:
    """Write into a staging folder beside `out`, then rename: an interruption leaves nothing behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        writer = _write_npz if fmt == "npz" else _write_folder
        writer(staging, dataset, images, labels, run_id=run_id, seed=seed)
        if out.exists():
            out.rmdir()  # empty, as check_out made sure
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _folder_names(class_names: tuple[str, ...]) -> list[str]:
    """A folder name per class: the class name, made safe for a file system (no separators, no leading dot)."""
    names = [re.sub(r"[^\w.+-]+", "_", name).lstrip(".") or f"class_{i}" for i, name in enumerate(class_names)]
    if len(set(names)) < len(names):  # two names that clash once cleaned: keep them apart by index
        names = [f"{i}_{name}" for i, name in enumerate(names)]
    return names


def _write_folder(root: Path, dataset: Any, syn_images: np.ndarray, syn_labels: np.ndarray, *,
                  run_id: str, seed: int) -> None:
    from PIL import Image

    folders = _folder_names(dataset.class_names)
    rows: list[list[object]] = []

    def save(split: str, images: np.ndarray, labels: np.ndarray, prefix: str, source: str) -> None:
        for i, (image, label) in enumerate(zip(images, labels)):
            rel = Path(split) / folders[int(label)] / f"{prefix}_{i:06d}.png"
            (root / rel.parent).mkdir(parents=True, exist_ok=True)
            pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)  # (C, H, W) -> PIL's layout
            Image.fromarray(pixels).save(root / rel)
            synthetic = source == "synthetic"
            rows.append([rel.as_posix(), split, dataset.class_names[int(label)], int(label), source,
                         run_id if synthetic else "", seed if synthetic else ""])

    for split, part in dataset.splits().items():
        save(split, part.images.numpy(), part.labels.numpy(), "real", "real")
    save("train", syn_images, syn_labels, "syn", "synthetic")
    with open(root / MANIFEST, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split", "class", "label", "source", "generator_run_id", "seed"])
        writer.writerows(rows)


def _write_npz(root: Path, dataset: Any, syn_images: np.ndarray, syn_labels: np.ndarray, *,
               run_id: str, seed: int) -> None:
    train = dataset.train
    n_real, n_syn = len(train), len(syn_labels)
    labels = np.concatenate([train.labels.numpy(), syn_labels])
    np.savez_compressed(
        root / NPZ_NAME,
        train_images=np.concatenate([train.images.numpy(), syn_images]), train_labels=labels,
        train_class=np.asarray(dataset.class_names)[labels],
        train_source=np.asarray(["real"] * n_real + ["synthetic"] * n_syn),
        train_generator_run_id=np.asarray([""] * n_real + [run_id] * n_syn),
        train_seed=np.asarray([-1] * n_real + [seed] * n_syn),  # -1: a real image, no seed
        val_images=dataset.val.images.numpy(), val_labels=dataset.val.labels.numpy(),
        test_images=dataset.test.images.numpy(), test_labels=dataset.test.labels.numpy(),
        class_names=np.asarray(dataset.class_names),
    )


def cmd_export(args: argparse.Namespace) -> int:
    from ganmix.datasets.names import canonical_name
    from ganmix.tracking import query, store
    from ganmix.tracking.location import local_store_missing

    check_arm(args.arm)
    check_out(args.out)  # both before MLflow and torch are imported: bad input answers fast
    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if local_store_missing(uri):  # reading a store that is not there would create it
        raise ExportError(f"no searches at {uri} (no results there yet); nothing to export")
    store.check_reachable(uri)
    if args.model:
        done = export_model(uri=uri, model_uri=args.model, out=args.out, fmt=args.format, seed=args.seed,
                            data_dir=args.data_dir)
        found = None
    elif args.name:
        found = query.find_search(uri, args.name)
    else:
        found = query.latest_search(uri, dataset=canonical_name(args.dataset) if args.dataset else None)
    if found is None and not args.model:
        what = f" named {args.name!r}" if args.name else f" of data set {args.dataset!r}" if args.dataset else ""
        raise ExportError(f"no search{what} at {uri}")
    if not args.model:
        done = export(uri=uri, search=found, arm=args.arm, out=args.out, fmt=args.format, seed=args.seed,
                      data_dir=args.data_dir)
    total = sum(done["synthetic"].values())
    print(f"exported trial {done['trial']} (run {done['run_id']}): {done['real']} real + {total} synthetic train "
          f"images (seed {done['seed']}; per class {done['synthetic']}) to {args.out}")
    return 0
