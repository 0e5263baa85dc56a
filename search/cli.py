"""`ganmix` command line: search, best, train, ui."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ganmix.datasets.errors import DatasetError
from ganmix.models.errors import GeneratorError, UnknownModelError
from ganmix.models.metrics import SEARCHABLE, MetricError, canonical_metric
from ganmix.models.sizes import ImageSizeError
from ganmix.search.cli_results import cmd_best, cmd_train, cmd_ui
from ganmix.search.preflight.errors import PreflightError
from ganmix.search.preflight.paths import nonempty, nonempty_path
from ganmix.search.recipe import RecipeError
from ganmix.search.space import SpaceError
from ganmix.tracking.location import TrackingError, local_store_missing

DEMO_SPEC = "demo.yaml"  # packaged with ganmix.search: the offline demo on digits
# `ganmix confirm`'s defaults (and `search --confirm`'s): recipes re-run and seeds per recipe. Their one home;
# search/confirm.py takes both as arguments (it is too heavy to import for --help).
# 8 seeds: the fewest with which Holm over the default comparisons (the top 3 and the best GAN recipe, four
# arms against one baseline) can reach p < 0.05 with a two-sided Wilcoxon test (see search/stats.py).
CONFIRM_TOP, CONFIRM_SEEDS = 3, 8


# Errors that mean bad input, by class (each defined in a module that imports no torch, Ray or MLflow):
# printed as one line, never as a traceback.
_USER_ERRORS: tuple[type[Exception], ...] = (
    DatasetError, UnknownModelError, GeneratorError, RecipeError, SpaceError, TrackingError, PreflightError,
    MetricError, ImageSizeError,
)
# At most this many characters of one word (a bad value, a path) in an error line.
_WORD_LIMIT = 200


def one_line(message: str) -> str:
    """An error message as one line, each over-long word (a 5,000-character name) cut to _WORD_LIMIT."""
    words = message.split()
    return " ".join(w if len(w) <= _WORD_LIMIT else f"{w[:_WORD_LIMIT]}...({len(w)} characters)" for w in words)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganmix", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_search_parser(sub)
    _add_confirm_parser(sub)
    _add_result_parsers(sub)
    return parser


def _add_search_parser(sub: Any) -> None:
    s = sub.add_parser("search", help="search augmentation recipes (no arguments: the offline demo on digits)")
    s.add_argument("--config", type=nonempty_path, help="search spec YAML (space, budget, fixed fields); flags override it")
    s.add_argument("--dry-run", action="store_true", help="print the resolved search spec and exit")
    s.add_argument("--dataset", type=nonempty, help="digits | a MedMNIST flag (breastmnist, pneumoniamnist, ...) | folder:/path")
    s.add_argument("--data-dir", type=nonempty_path, help="folder holding <flag>.npz (default ~/.ganmix/data)")
    s.add_argument("--size", type=int, help="MedMNIST+ file to read: 28 (<flag>.npz, the default), 64, 128 or 224 "
                                           "(<flag>_<size>.npz, downloaded when missing)")
    s.add_argument("--image-size", type=int, help="resize images to this many pixels, 8..256 (generators take up to "
                                                  "128; folders default to 64)")
    s.add_argument("--train-per-class", type=int, help="keep at most N train images per class")
    s.add_argument("--class-fraction", action="append", metavar="CLASS=F",
                   help="keep a fraction F of one class in train (repeatable)")
    s.add_argument("--trials", type=int, help="number of trials, the baseline included")
    s.add_argument("--max-concurrent", type=int, help="trials running at once")
    s.add_argument("--cpus-per-trial", type=float)
    s.add_argument("--gpus-per-trial", type=float, help="fractions allowed, e.g. 0.25")
    s.add_argument("--metric", type=canonical_metric, choices=SEARCHABLE, metavar="METRIC",
                   help="objective, as val_auc or as the UI shows it, val/auc (default val_auc); one of "
                        + ", ".join(SEARCHABLE))
    s.add_argument("--seed", type=int)
    s.add_argument("--name", type=nonempty, help="search name (default: dataset and time)")
    s.add_argument("--resume", type=nonempty, metavar="NAME", help="continue the interrupted search NAME")
    _add_store_args(s)
    s.add_argument("--address", type=nonempty, help="Ray address; 'auto' joins a running cluster")
    s.add_argument("--storage", type=nonempty, help="Tune storage: a shared folder or s3://bucket/prefix (default RESULTS/ray)")
    s.add_argument("--no-sample-metrics", action="store_true", help="skip FID/KID/precision/recall/memorization")
    s.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="end the search after this many seconds of Tune time (running trials are stopped)")
    s.add_argument("--confirm", type=int, metavar="SEEDS", default=0,
                   help="when the search ends, confirm its best recipes over SEEDS seeds (see `ganmix confirm`)")
    s.add_argument("--confirm-top", type=int, default=CONFIRM_TOP, metavar="K",
                   help=f"recipes to confirm with --confirm (default {CONFIRM_TOP})")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.add_argument("--verbose", action="store_true", help="also show Ray's, Optuna's and MLflow's own output")


def _add_confirm_parser(sub: Any) -> None:
    c = sub.add_parser("confirm", help="re-run a search's top recipes, the tuned real-only baseline and each GAN "
                                       "recipe without its generator over several seeds on the test split, and say "
                                       "whether augmentation (and the generator itself) helped")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--name", type=nonempty, help="the search to confirm")
    which.add_argument("--dataset", type=nonempty, help="confirm the latest search of this data set")
    c.add_argument("--top", type=int, default=CONFIRM_TOP, metavar="K",
                   help=f"top K recipes by validation (default {CONFIRM_TOP})")
    c.add_argument("--seeds", type=int, default=CONFIRM_SEEDS, metavar="N",
                   help=f"seeds per recipe (default {CONFIRM_SEEDS})")
    c.add_argument("--data-dir", type=nonempty_path, help="where the data set is (default: the search's --data-dir)")
    c.add_argument("--address", type=nonempty, help="Ray address; 'auto' joins a running cluster")
    c.add_argument("--quiet", action="store_true")
    _add_store_args(c)


def _add_result_parsers(sub: Any) -> None:
    """`best`, `train` and `ui`: the commands that read or re-run a search's results (search/cli_results.py)."""
    b = sub.add_parser("best", help="the best completed trial per data set, its recipe and lift over baseline")
    b.add_argument("--dataset", type=nonempty)
    b.add_argument("--metric", type=canonical_metric, choices=SEARCHABLE, metavar="METRIC",
                   help="rank by this metric, val_auc or val/auc (default: the search's)")
    b.add_argument("--export", type=nonempty_path, metavar="RECIPE.yaml", help="write the best recipe for `ganmix train`")
    b.add_argument("--force", action="store_true", help="let --export overwrite an existing file")
    b.add_argument("--register", nargs="?", const=True, default=None, type=nonempty, metavar="NAME",
                   help="register the chosen generator (the confirmed best GAN recipe's trial, else the best "
                        "generator trial) in the MLflow Model Registry as NAME (default ganmix-<dataset>)")
    _add_store_args(b)

    t = sub.add_parser("train", help="re-run one recipe and log it")
    t.add_argument("--recipe", type=nonempty_path, required=True)
    t.add_argument("--data-dir", type=nonempty_path)
    t.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    t.add_argument("--no-sample-metrics", action="store_true")
    _add_store_args(t)

    u = sub.add_parser("ui", help="the MLflow UI on 127.0.0.1 over the same store")
    u.add_argument("--port", type=int, default=5000)
    _add_store_args(u)


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", type=nonempty_path, default=os.environ.get("GANMIX_RESULTS", "ganmix-results"),
                   help="results folder: MLflow store, Ray results, caches (default ./ganmix-results)")
    p.add_argument("--tracking-uri", type=nonempty, help="MLflow tracking URI (default MLFLOW_TRACKING_URI or RESULTS/mlflow.db)")


def resolve_spec_and_given(args: argparse.Namespace) -> tuple[Any, set[str]]:
    """The search spec from --config (or the demo's), the flags on top, and the top-level keys the user
    gave in either: what ganmix must not choose for them (search/resources.py)."""
    from ganmix.search.spec import SearchSpec

    overrides: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("dataset", "size", "image_size", "train_per_class", "trials", "max_concurrent", "cpus_per_trial",
                    "gpus_per_trial", "metric", "seed", "name")
        if getattr(args, key) is not None
    }
    if args.class_fraction:
        from ganmix.datasets import parse_class_fraction

        overrides["class_fraction"] = dict(parse_class_fraction(text) for text in args.class_fraction)
    if args.config is None and args.dataset not in (None, "digits"):
        return SearchSpec.from_mapping(overrides, source="command line"), set(overrides)
    with resources.as_file(resources.files("ganmix.search") / DEMO_SPEC) as demo:
        path = args.config if args.config is not None else demo
        data = SearchSpec.read(path)  # a bad file fails here, with its name
        return SearchSpec.from_mapping({**data, **overrides}, source=str(path)), set(data) | set(overrides)


def cmd_search(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    spec, notes = _checked_spec(args)
    if args.dry_run:
        print(spec.to_yaml(), end="")
        return 0
    if args.address in (None, "local"):
        preflight.check_local_resources(spec)
    # None: the data file is missing and is downloaded by the run itself, after every check (preflight/data.py).
    dataset = preflight.check_search_data(spec, args.data_dir)
    for note in notes:  # what ganmix chose for the user, once every check has passed (bad input: one line)
        print(note, flush=True)

    from ganmix.search.runner import RunOptions, run_search
    from ganmix.search.spec import SearchSpec

    options = RunOptions(results_dir=args.results_dir, tracking_uri=args.tracking_uri, address=args.address,
                         storage=args.storage, data_dir=args.data_dir, resume=bool(args.resume),
                         sample_metrics=not args.no_sample_metrics, quiet=args.quiet, verbose=args.verbose,
                         time_budget_s=args.time_budget)
    assert isinstance(spec, SearchSpec)
    print(f"ganmix: searching {spec.dataset}: {spec.trials} trials, objective {spec.metric} ({spec.mode})", flush=True)
    outcome = run_search(spec, options, dataset=dataset)
    print(f"\nsearch {outcome.name}: {outcome.num_trials} trials, {outcome.num_errors} failed"
          + (f" (ended by the time budget of {args.time_budget:g} s)" if outcome.budget_ended else ""))
    if outcome.num_trials and outcome.num_errors == outcome.num_trials:
        print(f"ganmix: error: every trial of search {outcome.name} failed: {outcome.first_error or 'see the logs'}",
              file=sys.stderr)
        return 1
    if outcome.best is not None:
        print(f"best trial {outcome.best.name}: {spec.metric} = {outcome.best.metrics.get(spec.metric, float('nan')):.4f}"
              f" (run {outcome.best.run_id}; unconfirmed: one seed, chosen on validation)")
        print(f"its recipe: ganmix best --dataset {spec.dataset} --export recipe.yaml")
    if args.confirm:
        _confirm_and_print(uri=outcome.tracking_uri, experiment_id=outcome.experiment_id,
                           parent_run_id=outcome.parent_run_id, name=outcome.name, spec=spec,
                           dataset=dataset, top=args.confirm_top, seeds=args.confirm,
                           results_dir=args.results_dir, address=args.address, quiet=args.quiet)
    _print_ui_hint(outcome.tracking_uri, args)
    return 0


def _checked_spec(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The spec a search runs, every flag and spec field checked (search/preflight/): flags and paths first,
    before torch, Ray or MLflow is imported; and the notes on what ganmix chose (printed after the checks)."""
    from ganmix.search import preflight

    notes: list[str] = []
    preflight.check_search_flags(args)
    if args.resume:
        preflight.check_resume_state(args.resume, args.storage, args.results_dir)
        spec = _spec_of_search(args)
    else:
        spec, given = resolve_spec_and_given(args)
        if args.address in (None, "local"):  # a local GPU is used unless the user said otherwise
            from ganmix.search.resources import local_defaults

            choice = local_defaults(spec, given, cpus=preflight.local_cpus(), gpus=preflight.local_gpus())
            spec = choice.spec
            notes += [choice.note] if choice.note else []
        spec, note = spec.for_device()
        notes += [note] if note else []
    preflight.check_spec(spec, sample_metrics=not args.no_sample_metrics)
    return spec, notes


def cmd_confirm(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_confirm_flags(args)
    from ganmix.datasets.names import canonical_name
    from ganmix.tracking import query, store
    from ganmix.tracking.runs import DATA_DIR

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    store.check_reachable(uri)
    if args.name:
        found = query.find_search(uri, args.name)
    else:
        found = query.latest_search(uri, dataset=canonical_name(args.dataset) if args.dataset else None)
    if found is None:
        what = f"named {args.name!r}" if args.name else f"of data set {args.dataset!r}" if args.dataset else ""
        # A TrackingError (ConfirmError's base): search.confirm imports torch, Ray and scipy, seconds to wait
        # for a mistyped name.
        raise store.TrackingError(f"no search {what} at {uri}".replace("  ", " "))
    from ganmix.search.runner import load_search_data

    spec = _load_spec(uri, found.info.run_id, found.data.tags.get("ganmix.search", ""))
    data_dir = args.data_dir or (Path(found.data.tags[DATA_DIR]) if DATA_DIR in found.data.tags else None)
    _confirm_and_print(uri=uri, experiment_id=found.info.experiment_id, parent_run_id=found.info.run_id,
                       name=found.data.tags.get("ganmix.search", ""), spec=spec,
                       dataset=load_search_data(spec, data_dir), top=args.top, seeds=args.seeds,
                       results_dir=args.results_dir, address=args.address, quiet=args.quiet)
    return 0


def _confirm_and_print(*, uri: str, experiment_id: str, parent_run_id: str, name: str, spec: Any, dataset: Any,
                       top: int, seeds: int, results_dir: Path, address: str | None, quiet: bool) -> None:
    from ganmix.search.confirm import confirm
    from ganmix.search.confirm_report import table
    from ganmix.search.stats import min_seeds_for_significance

    print(f"\nconfirming search {name}: top {top} recipes, the tuned real-only baseline, the best GAN recipe and "
          f"each GAN recipe without its generator, {seeds} seeds each, on the test split", flush=True)
    outcome = confirm(uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id, search_name=name, spec=spec,
                      dataset=dataset, top=top, seeds=seeds, cache_dir=(results_dir / "cache").resolve(),
                      address=address, quiet=quiet)
    print("\n".join(table(outcome)))
    print("\n".join(outcome.lines))
    print(f"\nverdict: {outcome.verdict}")
    needed = min_seeds_for_significance(outcome.family)
    if seeds < needed:
        print(f"note: with {seeds} seeds and {outcome.family} arm(s) compared with the baseline, a two-sided Wilcoxon "
              f"test cannot reach p < 0.05 after Holm's correction; use {needed} or more seeds for a significance claim")
    print(f"confirmation run {outcome.run_id} (nested under the search's parent run)")


def _load_spec(uri: str, run_id: str, name: str) -> Any:
    import tempfile

    from ganmix.search.spec import SearchSpec
    from ganmix.tracking.runs import download_artifact

    with tempfile.TemporaryDirectory() as tmp:
        return SearchSpec.load(download_artifact(uri, run_id, "search_spec.yaml", tmp), name=name)


def _spec_of_search(args: argparse.Namespace) -> Any:
    """The spec a search was started with, read back from its MLflow parent run."""
    from ganmix.tracking import query, store

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if local_store_missing(uri):  # reading a store that is not there would create it
        raise store.TrackingError(f"no search named {args.resume!r} at {uri} (no results there yet); nothing to resume")
    store.check_reachable(uri)
    found = query.find_search(uri, args.resume)
    if found is None:
        raise store.TrackingError(f"no search named {args.resume!r} at {uri}; nothing to resume")
    return _load_spec(uri, found.info.run_id, args.resume)


def _print_ui_hint(uri: str, args: argparse.Namespace) -> None:
    from ganmix.tracking.store import is_local_store

    if is_local_store(uri):
        print(f"results in {uri}; open them with: ganmix ui --results-dir {args.results_dir}")
    else:
        print(f"\nresults on the tracking server {uri}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow's per-download progress bars are noise on a console that reports trials.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    commands = {"search": cmd_search, "confirm": cmd_confirm, "best": cmd_best, "train": cmd_train, "ui": cmd_ui}
    results_dir = getattr(args, "results_dir", None)
    fresh = results_dir is not None and not results_dir.exists()
    try:
        return commands[args.command](args)
    except _USER_ERRORS as exc:
        print(f"ganmix: error: {one_line(str(exc))}", file=sys.stderr)
        if fresh and results_dir.is_dir():  # bad input leaves nothing behind: not even the folder it created
            import shutil

            shutil.rmtree(results_dir, ignore_errors=True)
        return 2
    except KeyboardInterrupt:
        print("\nganmix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
