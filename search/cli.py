"""`ganmix` command line: search, best, train, ui."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ganmix.search.metrics import METRICS

DEMO_SPEC = "demo.yaml"  # packaged with ganmix.search: the offline demo on digits


# Errors that mean bad input, by module: printed as one line, never as a traceback.
_USER_ERRORS = {
    "ganmix.datasets._types": "DatasetError", "ganmix.models._registry": "UnknownModelError",
    "ganmix.models.generator": "GeneratorError", "ganmix.search.recipe": "RecipeError",
    "ganmix.search.space": "SpaceError", "ganmix.tracking.store": "TrackingError",
    "ganmix.search.preflight": "PreflightError",
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The bad-input error types of the modules loaded so far: an error from a module never imported cannot
    have been raised, and importing one here (torch, MLflow) would cost seconds per error."""
    return tuple(getattr(sys.modules[module], name) for module, name in _USER_ERRORS.items() if module in sys.modules)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganmix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search augmentation recipes (no arguments: the offline demo on digits)")
    s.add_argument("--config", type=Path, help="search spec YAML (space, budget, fixed fields); flags override it")
    s.add_argument("--dry-run", action="store_true", help="print the resolved search spec and exit")
    s.add_argument("--dataset", help="digits | a MedMNIST flag (breastmnist, pneumoniamnist, ...) | folder:/path")
    s.add_argument("--data-dir", type=Path, help="folder holding <flag>.npz (default ~/.ganmix/data)")
    s.add_argument("--image-size", type=int, help="resize images to this many pixels (folders default to 64)")
    s.add_argument("--train-per-class", type=int, help="keep at most N train images per class")
    s.add_argument("--class-fraction", action="append", metavar="CLASS=F",
                   help="keep a fraction F of one class in train (repeatable)")
    s.add_argument("--trials", type=int, help="number of trials, the baseline included")
    s.add_argument("--max-concurrent", type=int, help="trials running at once")
    s.add_argument("--cpus-per-trial", type=float)
    s.add_argument("--gpus-per-trial", type=float, help="fractions allowed, e.g. 0.25")
    s.add_argument("--metric", choices=sorted(METRICS), help="objective (default val_auc)")
    s.add_argument("--seed", type=int)
    s.add_argument("--name", help="search name (default: dataset and time)")
    s.add_argument("--resume", metavar="NAME", help="continue the interrupted search NAME")
    _add_store_args(s)
    s.add_argument("--address", help="Ray address; 'auto' joins a running cluster")
    s.add_argument("--storage", help="Tune storage: a shared folder or s3://bucket/prefix (default RESULTS/ray)")
    s.add_argument("--no-sample-metrics", action="store_true", help="skip FID/KID/precision/recall/memorization")
    s.add_argument("--quiet", action="store_true")

    b = sub.add_parser("best", help="the best completed trial per data set, its recipe and lift over baseline")
    b.add_argument("--dataset")
    b.add_argument("--metric", choices=sorted(METRICS), help="rank by this metric (default: the search's)")
    b.add_argument("--export", type=Path, metavar="RECIPE.yaml", help="write the best recipe for `ganmix train`")
    _add_store_args(b)

    t = sub.add_parser("train", help="re-run one recipe and log it")
    t.add_argument("--recipe", type=Path, required=True)
    t.add_argument("--data-dir", type=Path)
    t.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    t.add_argument("--no-sample-metrics", action="store_true")
    _add_store_args(t)

    u = sub.add_parser("ui", help="the MLflow UI on 127.0.0.1 over the same store")
    u.add_argument("--port", type=int, default=5000)
    _add_store_args(u)
    return parser


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", type=Path, default=Path(os.environ.get("GANMIX_RESULTS", "ganmix-results")),
                   help="results folder: MLflow store, Ray results, caches (default ./ganmix-results)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default MLFLOW_TRACKING_URI or RESULTS/mlflow.db)")


def resolve_spec(args: argparse.Namespace) -> Any:
    from ganmix.datasets import parse_class_fraction
    from ganmix.search.spec import SearchSpec

    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("dataset", "image_size", "train_per_class", "trials", "max_concurrent", "cpus_per_trial",
                    "gpus_per_trial", "metric", "seed", "name")
        if getattr(args, key) is not None
    }
    if args.class_fraction:
        overrides["class_fraction"] = dict(parse_class_fraction(text) for text in args.class_fraction)
    if args.config is not None:
        return SearchSpec.load(args.config, **overrides)
    if args.dataset is None or args.dataset == "digits":
        with resources.as_file(resources.files("ganmix.search") / DEMO_SPEC) as demo:
            return SearchSpec.load(demo, **overrides)
    return SearchSpec.from_mapping(overrides, source="command line")


def cmd_search(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    # Every check that can fail runs before Ray, MLflow or any training (search/preflight.py).
    preflight.check_search_flags(args)
    preflight.check_data_flags(args)
    if args.resume:
        preflight.check_resume_state(args.resume, args.storage, args.results_dir)
    spec = _spec_of_search(args) if args.resume else resolve_spec(args)
    preflight.check_spec(spec, sample_metrics=not args.no_sample_metrics)
    if args.dry_run:
        print(spec.to_yaml(), end="")
        return 0
    if args.address in (None, "local"):
        preflight.check_local_resources(spec)
    dataset = preflight.load_search_data(spec, args.data_dir)

    from ganmix.search.runner import RunOptions, run_search
    from ganmix.search.spec import SearchSpec

    options = RunOptions(results_dir=args.results_dir, tracking_uri=args.tracking_uri, address=args.address,
                         storage=args.storage, data_dir=args.data_dir, resume=bool(args.resume),
                         sample_metrics=not args.no_sample_metrics, quiet=args.quiet)
    assert isinstance(spec, SearchSpec)
    print(f"ganmix: searching {spec.dataset}: {spec.trials} trials, objective {spec.metric} ({spec.mode})", flush=True)
    outcome = run_search(spec, options, dataset=dataset)
    print(f"\nsearch {outcome.name}: {outcome.num_trials} trials, {outcome.num_errors} failed")
    if outcome.num_trials and outcome.num_errors == outcome.num_trials:
        print(f"ganmix: error: every trial of search {outcome.name} failed: {outcome.first_error or 'see the logs'}",
              file=sys.stderr)
        return 1
    if outcome.best is not None:
        print(f"best trial {outcome.best.name}: {spec.metric} = {outcome.best.metrics.get(spec.metric, float('nan')):.4f}")
        print("best recipe:\n" + "\n".join("  " + line for line in (outcome.best.recipe_yaml or "").splitlines()))
    _print_ui_hint(outcome.tracking_uri, args)
    return 0


def _spec_of_search(args: argparse.Namespace) -> Any:
    """The spec a search was started with, read back from its MLflow parent run."""
    import tempfile

    from ganmix.search import preflight
    from ganmix.search.spec import SearchSpec
    from ganmix.tracking import query, store

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if preflight.local_store_missing(uri):  # reading a store that is not there would create it
        raise store.TrackingError(f"no search named {args.resume!r} at {uri} (no results there yet); nothing to resume")
    store.check_reachable(uri)
    found = query.find_search(uri, args.resume)
    if found is None:
        raise store.TrackingError(f"no search named {args.resume!r} at {uri}; nothing to resume")
    with tempfile.TemporaryDirectory() as tmp:
        path = store.client(uri).download_artifacts(found.info.run_id, "search_spec.yaml", tmp)
        return SearchSpec.load(path, name=args.resume)


def cmd_best(args: argparse.Namespace) -> int:
    from ganmix.search.recipe import Recipe
    from ganmix.tracking import query, store

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if _no_store(uri):
        print(f"no completed trials at {uri} (no results there yet)")
        return 1
    store.check_reachable(uri)
    results = query.best_per_dataset(uri, dataset=args.dataset, metric=args.metric)
    if not results:
        print(f"no completed trials{' for ' + args.dataset if args.dataset else ''} at {uri}")
        return 1
    for res in results:
        best = res.best
        print(f"{res.dataset}: best trial {best.name} of search {res.search} (run {best.run_id})")
        for split in ("val", "test"):
            keys = sorted(k for k in best.metrics if k.startswith(split + "_"))
            print(f"  {split}: " + ", ".join(f"{k[len(split) + 1:]}={best.metrics[k]:.4f}" for k in keys))
        for key in (res.metric, res.metric.replace("val_", "test_")):
            lift = res.lift(key)
            if lift is not None:
                print(f"  lift over baseline ({key}): {lift:+.4f}")
        print("  recipe:\n" + "\n".join("    " + line for line in (best.recipe_yaml or "").splitlines()))
    if args.export is not None:
        if len(results) > 1:
            print("ganmix: error: several data sets have results; pick one with --dataset", file=sys.stderr)
            return 2
        recipe = Recipe.from_yaml(results[0].best.recipe_yaml or "", source=f"run {results[0].best.run_id}")
        recipe.replace(baseline=False).save(args.export)
        print(f"exported to {args.export}; re-run it with: ganmix train --recipe {args.export}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_store_flags(args)
    preflight.check_input_file(args.recipe, "--recipe", "a recipe YAML file (ganmix best --export writes one)")
    from ganmix.search.recipe import Recipe
    from ganmix.search.retrain import retrain

    recipe = Recipe.load(args.recipe)
    metrics, run_id, uri = retrain(recipe, results_dir=args.results_dir, tracking_uri=args.tracking_uri,
                                   data_dir=args.data_dir, prefer_gpu=not args.cpu,
                                   sample_metrics=not args.no_sample_metrics)
    print(f"run {run_id} logged to {uri}")
    for split in ("val", "test"):
        keys = sorted(k for k in metrics if k.startswith(split + "_"))
        print(f"  {split}: " + ", ".join(f"{k[len(split) + 1:]}={metrics[k]:.4f}" for k in keys))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_port(args.port)
    from ganmix.tracking import store

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port)]
    print(f"MLflow UI over {uri} at http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    return subprocess.call(command)


def _print_ui_hint(uri: str, args: argparse.Namespace) -> None:
    from ganmix.tracking.store import is_local_store

    if is_local_store(uri):
        print(f"\nresults in {uri}\nopen them with: ganmix ui --results-dir {args.results_dir}"
              f"   (or: mlflow ui --backend-store-uri {uri})")
    else:
        print(f"\nresults on the tracking server {uri}")


def _no_store(uri: str) -> bool:
    from ganmix.search.preflight import local_store_missing

    return local_store_missing(uri) is not None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"search": cmd_search, "best": cmd_best, "train": cmd_train, "ui": cmd_ui}
    results_dir = getattr(args, "results_dir", None)
    fresh = results_dir is not None and not results_dir.exists()
    try:
        return commands[args.command](args)
    except _user_errors() as exc:
        print(f"ganmix: error: {exc}", file=sys.stderr)
        if fresh and results_dir.is_dir():  # bad input leaves nothing behind: not even the folder it created
            import shutil

            shutil.rmtree(results_dir, ignore_errors=True)
        return 2
    except KeyboardInterrupt:
        print("\nganmix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
