"""`ganmix` command line: search, best, train, ui, export."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ganmix.datasets.errors import DatasetError
from ganmix.models.errors import GeneratorError, MissingWeightsError, UnknownModelError
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
    MetricError, ImageSizeError, MissingWeightsError,
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
    _add_export_parser(sub)
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
    s.add_argument("--confirm-top", type=int, metavar="K",
                   help=f"recipes to confirm with --confirm (default {CONFIRM_TOP})")
    s.add_argument("--allow-underpowered", action="store_true",
                   help="let --confirm run with fewer seeds than a significant answer needs (refused otherwise)")
    loudness = s.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true", help="no progress output")
    loudness.add_argument("--verbose", action="store_true", help="also show Ray's, Optuna's and MLflow's own output")


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
    c.add_argument("--allow-underpowered", action="store_true",
                   help="run even when --seeds is too few for any comparison to reach p < 0.05 after Holm's "
                        "correction (refused otherwise, before anything runs)")
    c.add_argument("--resample-data", action="store_true",
                   help="draw the search's --train-per-class / --class-fraction subsample anew for every seed "
                        "(its data seed), so the intervals include which images were kept (default: the "
                        "search's subsample for every seed)")
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


def _add_export_parser(sub: Any) -> None:
    e = sub.add_parser("export", help="write a recipe's augmented training set (real train split + its generator's "
                                      "samples, val and test untouched) as PNG folders with a manifest, or one .npz")
    which = e.add_mutually_exclusive_group()
    which.add_argument("--name", type=nonempty, help="the search to export from (default: the latest search)")
    which.add_argument("--dataset", type=nonempty, help="export from the latest search of this data set")
    which.add_argument("--model", type=nonempty, metavar="models:/NAME/VERSION",
                       help="sample a generator registered with `ganmix best --register` instead of a search's trial")
    e.add_argument("--arm", type=nonempty, default="gan",
                   help="whose recipe: gan (default: the confirmed GAN arm, else the best GAN trial), top1, top2, ...")
    e.add_argument("--out", type=nonempty_path, required=True, metavar="DIR", help="a new or empty folder")
    e.add_argument("--format", choices=("folder", "npz"), default="folder",
                   help="folder: DIR/{train,val,test}/<class>/*.png and DIR/manifest.csv; npz: DIR/export.npz")
    e.add_argument("--seed", type=int, help="the sampling seed (default: the trial's generator seed)")
    e.add_argument("--data-dir", type=nonempty_path, help="where the data set is (default: the search's --data-dir)")
    _add_store_args(e)


def cmd_export(args: argparse.Namespace) -> int:
    from ganmix.search.export import cmd_export as run  # torch and MLflow: only once the flags parsed

    return run(args)


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
    if args.confirm:
        _check_confirm_seeds(args.confirm, args.confirm_top or CONFIRM_TOP, allow=args.allow_underpowered)
    if args.dry_run:
        print(spec.to_yaml(), end="")
        return 0
    preflight.check_home()
    if spec.name and not args.resume:  # a search of that name running now: one line before Ray starts
        from ganmix.search.parent_run import check_search_free

        check_search_free(args.storage or args.results_dir / "ray", spec.name)
    if args.address in (None, "local"):
        preflight.check_ray_temp_dir()
        preflight.check_local_resources(spec)
    # None: the data file is missing; it is downloaded below, after every check (preflight/data.py). Data
    # judged with numpy alone is read as tensors beside Ray's start instead: torch's import is most of it.
    judged = False
    if args.resume:  # the data the search started on, or one line: never a download into another folder
        dataset = preflight.check_resumed_data(spec, args.data_dir, search=args.resume,
                                               fingerprint=args.resumed_fingerprint)
    elif preflight.judge_search_data(spec, args.data_dir):
        dataset, judged = None, True
    else:
        dataset = preflight.check_search_data(spec, args.data_dir)
    if dataset is None and not judged:  # downloaded now, before anything is printed: a failed download is one line
        dataset = preflight.load_search_data(spec, args.data_dir)
    for note in notes:  # what ganmix chose for the user, once every check has passed (bad input: one line)
        print(note, flush=True)
    from ganmix.search.preflight.weights import fetch_search_weights
    from ganmix.tracking.claims import use_folder

    use_folder(args.results_dir)  # ours from here: another command's clean-up after bad input leaves it alone
    weights = fetch_search_weights(spec)  # ImageNet weights, before Ray starts: offline, one line
    if not args.resume:  # a resumed search said what it continues (a note)
        print(f"ganmix: searching {spec.dataset}: {spec.trials} trials, objective {spec.metric} ({spec.mode})",
              flush=True)

    loaded = threading.Event()  # the tensors are there (or their load failed): what `background` waits for

    def prepare() -> tuple[Any, Any, Any]:
        # The data's tensors, the search machinery's imports (Tune, Optuna, MLflow, torch's training stack:
        # seconds) and the store's opening, while Ray's processes start on the cores these leave (README,
        # "Demo timing").
        nonlocal dataset
        try:
            if dataset is None:
                dataset = preflight.load_judged_data(spec, args.data_dir)
        finally:
            loaded.set()
        from ganmix.search import runner
        from ganmix.search.progress import quiet_libraries

        quiet_libraries(args.verbose)  # before the store opens: a first run's MLflow migration INFO lines
        options = runner.RunOptions(results_dir=args.results_dir, tracking_uri=args.tracking_uri,
                                    address=args.address, storage=args.storage, data_dir=args.data_dir,
                                    resume=bool(args.resume), sample_metrics=not args.no_sample_metrics,
                                    quiet=args.quiet, verbose=args.verbose, time_budget_s=args.time_budget)
        return runner, options, runner.open_search_store(spec, options)

    def background() -> Any:  # once Ray is up, while the store opens: the reference task takes the free core
        loaded.wait()
        if dataset is None:  # its load failed: the work's error is the one said
            return None
        from ganmix.search import runner

        return runner.start_background_early(spec, dataset, address=args.address,
                                             sample_metrics=not args.no_sample_metrics)

    from ganmix.search.ray_start import start_ray_beside

    (runner, options, ready), started = start_ray_beside(prepare, address=args.address, verbose=args.verbose,
                                                          then=background)
    outcome = runner.run_search(spec, options, dataset=dataset, weights=weights, ready=ready, background=started)
    print(f"\nsearch {outcome.name}: {outcome.num_trials} trials, {outcome.num_errors} failed"
          + (f" (ended by the time budget of {args.time_budget:g} s)" if outcome.budget_ended else ""))
    if outcome.num_trials and outcome.num_errors == outcome.num_trials:
        print(f"ganmix: error: every trial of search {outcome.name} failed: {outcome.first_error or 'see the logs'}",
              file=sys.stderr)
        return 1
    if outcome.best is not None:
        print(_best_line(outcome.best, spec.metric))
        print(f"its recipe: ganmix best --dataset {spec.dataset} --export recipe.yaml")
    if args.confirm:
        _confirm_and_print(uri=outcome.tracking_uri, experiment_id=outcome.experiment_id,
                           parent_run_id=outcome.parent_run_id, name=outcome.name, spec=spec,
                           dataset=dataset, top=args.confirm_top or CONFIRM_TOP, seeds=args.confirm,
                           results_dir=args.results_dir, address=args.address, quiet=args.quiet,
                           allow_underpowered=args.allow_underpowered)
    _print_ui_hint(outcome.tracking_uri, args)
    return 0


def _check_confirm_seeds(seeds: int, top: int, *, allow: bool) -> None:
    """`search --confirm N`, before the search starts: can N seeds reach significance? Its arms are not
    known yet, so the count is the most it can be: the top K and the best GAN recipe against the baseline."""
    from ganmix.search.preflight import PreflightError
    from ganmix.search.stats import seeds_check

    problem = seeds_check(seeds, top + 1)
    if problem is None:
        return
    problem = problem.replace("--seeds", "--confirm")
    counted = f"up to {top + 1}: the --confirm-top {top} and the best GAN recipe against the tuned baseline"
    if not allow:
        raise PreflightError(f"--confirm {seeds}: {problem}, or --allow-underpowered to run it anyway ({counted})")
    print(f"ganmix: warning: --confirm {seeds}: {problem} ({counted}); running anyway (--allow-underpowered)",
          flush=True)


def _checked_spec(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The spec a search runs, every flag and spec field checked (search/preflight/): flags and paths first,
    before torch, Ray or MLflow is imported; and the notes on what ganmix chose (printed after the checks)."""
    from ganmix.search import preflight

    notes: list[str] = []
    preflight.check_search_flags(args)
    if args.resume:
        preflight.check_resume_state(args.resume, args.storage, args.results_dir)
        from ganmix.search.parent_run import check_search_free

        check_search_free(args.storage or args.results_dir / "ray", args.resume)  # one process per search
        _check_local_tune_state(args)
        spec = _spec_of_search(args)
        notes.append(_resume_note(args, spec))
    else:
        spec, given = resolve_spec_and_given(args)
        if args.address in (None, "local"):  # a local GPU is used unless the user said otherwise
            from ganmix.search.resources import local_defaults

            choice = local_defaults(spec, given, cpus=preflight.local_cpus(), gpus=preflight.local_gpus())
            spec = choice.spec
            notes += [choice.note] if choice.note else []
        spec, note = spec.for_device()
        notes += [note] if note else []
    preflight.check_search_against_spec(spec, args)
    preflight.check_spec(spec, sample_metrics=not args.no_sample_metrics)
    return spec, notes


def _check_local_tune_state(args: argparse.Namespace) -> None:
    """A resume's Tune state in local storage is whole (a remote one is Tune's to judge)."""
    from urllib.parse import urlsplit

    from ganmix.search.preflight.paths import check_tune_state

    storage = str(args.storage) if args.storage else str(args.results_dir / "ray")
    if "://" in storage and not storage.startswith("file://"):
        return
    folder = Path(urlsplit(storage).path if storage.startswith("file://") else storage).expanduser()
    check_tune_state(folder / args.resume, args.resume)


def cmd_confirm(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_confirm_flags(args)
    preflight.check_home()
    if args.address in (None, "local"):
        preflight.check_ray_temp_dir()
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
    from ganmix.search.confirm import check_resample, plan
    from ganmix.search.progress import quiet_libraries
    from ganmix.search.runner import load_search_data

    quiet_libraries(getattr(args, "verbose", False))  # Ray's start-up chatter hidden, as a search hides it

    name = found.data.tags.get("ganmix.search", "")
    spec = _load_spec(uri, found.info.run_id, name)
    if args.resample_data:
        check_resample(spec, name)
    # Before anything runs (the data set is not even loaded): the arms, the comparisons, the seeds check.
    arms, plan_line = plan(uri=uri, experiment_id=found.info.experiment_id, parent_run_id=found.info.run_id,
                           metric=spec.metric, top=args.top, seeds=args.seeds,
                           allow_underpowered=args.allow_underpowered)
    data_dir = args.data_dir or (Path(found.data.tags[DATA_DIR]) if DATA_DIR in found.data.tags else None)
    _confirm_and_print(uri=uri, experiment_id=found.info.experiment_id, parent_run_id=found.info.run_id,
                       name=name, spec=spec, dataset=load_search_data(spec, data_dir), top=args.top,
                       seeds=args.seeds, results_dir=args.results_dir, address=args.address, quiet=args.quiet,
                       arms=arms, plan_line=plan_line, allow_underpowered=args.allow_underpowered,
                       resample_data=args.resample_data, data_dir=data_dir)
    return 0


def _confirm_and_print(*, uri: str, experiment_id: str, parent_run_id: str, name: str, spec: Any, dataset: Any,
                       top: int, seeds: int, results_dir: Path, address: str | None, quiet: bool,
                       arms: Any = None, plan_line: str | None = None, allow_underpowered: bool = False,
                       resample_data: bool = False, data_dir: Path | None = None) -> None:
    from ganmix.search.confirm import confirm, plan
    from ganmix.search.confirm_report import table
    from ganmix.search.stats import min_seeds_for_significance

    if arms is None:  # `search --confirm`: its arms exist only now that the search ended
        arms, plan_line = plan(uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id, metric=spec.metric,
                               top=top, seeds=seeds, allow_underpowered=allow_underpowered)
    resampled = "; every seed draws its own train subsample (--resample-data)" if resample_data else ""
    print(f"\nconfirming search {name}: top {top} recipes, the tuned real-only baseline, the best GAN recipe and "
          f"each GAN recipe without its generator, {seeds} seeds each, on the test split{resampled}", flush=True)
    print(f"confirm: {plan_line}", flush=True)
    outcome = confirm(uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id, search_name=name, spec=spec,
                      dataset=dataset, top=top, seeds=seeds, cache_dir=(results_dir / "cache").resolve(),
                      address=address, quiet=quiet, arms=arms, resample_data=resample_data, data_dir=data_dir)
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
    """The spec a search was started with, read back from its MLflow parent run, and the run options it
    recorded there that the spec does not hold: its data folder and whether it skipped the sample metrics
    (set on `args`, unless the resume gives them)."""
    from ganmix.tracking import query, store
    from ganmix.tracking.runs import DATA_DIR, FINGERPRINT, SAMPLE_METRICS

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if local_store_missing(uri):  # reading a store that is not there would create it
        raise store.TrackingError(f"no search named {args.resume!r} at {uri} (no results there yet); nothing to resume")
    store.check_reachable(uri)
    found = query.find_search(uri, args.resume)
    if found is None:
        raise store.TrackingError(f"no search named {args.resume!r} at {uri}; nothing to resume")
    tags = found.data.tags
    args.recorded_data_dir = args.data_dir is None and DATA_DIR in tags
    if args.recorded_data_dir:
        args.data_dir = Path(tags[DATA_DIR])
    args.no_sample_metrics = args.no_sample_metrics or tags.get(SAMPLE_METRICS) == "false"
    args.resumed_fingerprint = tags.get(FINGERPRINT)
    return _load_spec(uri, found.info.run_id, args.resume)


def _resume_note(args: argparse.Namespace, spec: Any) -> str:
    """The one line that says what a resumed search continues with (all of it read from its parent run)."""
    data = []
    if not spec.dataset.startswith("folder:"):  # a folder data set names its folder itself
        data.append(f"from {args.data_dir}" + (" (its data folder)" if args.recorded_data_dir else "")
                    if args.data_dir is not None else "from the default data folder")
    for field, shown in (("size", "file size {}"), ("image_size", "image size {}"),
                         ("train_per_class", "at most {} train images per class")):
        if getattr(spec, field) is not None:
            data.append(shown.format(getattr(spec, field)))
    if spec.class_fraction:
        data.append("class fractions " + ",".join(f"{k}={v:g}" for k, v in spec.class_fraction.items()))
    extra = ", no sample metrics" if args.no_sample_metrics else ""
    return (f"ganmix: resuming search {args.resume} as it was started: {spec.dataset} {', '.join(data)}; "
            f"{spec.trials} trials, "
            f"objective {spec.metric} ({spec.mode}){extra}")


def _print_ui_hint(uri: str, args: argparse.Namespace) -> None:
    from ganmix.tracking.store import is_local_store

    if is_local_store(uri):
        print(f"results in {uri}; open them with: ganmix ui --results-dir {args.results_dir}")
    else:
        print(f"\nresults on the tracking server {uri}")


def _address_from_environment(args: argparse.Namespace) -> None:
    """RAY_ADDRESS stands for --address when the flag is not given, as Ray itself reads it: a search must not
    run locally while the user's shell names a cluster (and a cluster that is not running is one line)."""
    if getattr(args, "address", "local") is None and os.environ.get("RAY_ADDRESS", "").strip():
        args.address = os.environ["RAY_ADDRESS"].strip()
        args.address_label = "RAY_ADDRESS"


def _best_line(best: Any, metric: str) -> str:
    """The search's best trial by its one seed, and, when it was a finalist, its mean over the finalists'
    seeds (the finalists' own ranking is printed above it; confirm takes its candidates from that ranking)."""
    from ganmix.tracking.finalists import mean_metric

    line = (f"best trial {best.name}: {metric} = {best.metrics.get(metric, float('nan')):.4f} (run {best.run_id}; "
            "unconfirmed: one seed, chosen on validation)")
    mean = best.metrics.get(mean_metric(metric), math.nan)
    if math.isfinite(mean):  # a finalist: its mean over the finalists' seeds is the better estimate
        line += f"; its mean over the finalists' seeds: {mean:.4f}"
    return line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # MLflow's per-download progress bars are noise on a console that reports trials.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Tune's own TensorBoard, CSV and JSON trial loggers duplicate what MLflow holds, and TensorboardX prints a
    # traceback for a value it cannot store (an integer beyond int64): read when Tune builds its callbacks.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    commands = {"search": cmd_search, "confirm": cmd_confirm, "best": cmd_best, "train": cmd_train, "ui": cmd_ui,
                "export": cmd_export}
    _address_from_environment(args)
    from ganmix.search import signals

    with signals.installed():  # Ctrl-C and SIGTERM: runs closed as KILLED, exit 130 or 143, no traceback
        code = _run_command(commands[args.command], args)
    if argv is None and args.command in ("search", "confirm"):  # the command itself, not an in-process caller
        exit_without_teardown(code)
    return code


def exit_without_teardown(code: int) -> NoReturn:
    """Exit as a normal exit does (thread pools shut down and non-daemon threads joined, atexit handlers
    run: Ray's shutdown, MLflow's and logging's flushes; the std streams flushed), minus the interpreter's
    teardown of every module and object afterwards: seconds for a process holding torch, Ray and MLflow
    (README, "Demo timing")."""
    import atexit
    import threading

    from ganmix.search.ray_start import stop_ray_before_exit

    # What the interpreter's own exit runs first: the thread pools' exit hooks, then non-daemon threads joined.
    threading._shutdown()  # type: ignore[attr-defined]  # noqa: SLF001
    stop_ray_before_exit()  # without Ray's half-second wait for worker output it does not forward
    atexit._run_exitfuncs()  # noqa: SLF001 (the documented handlers, run in their usual order)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(code)


def _run_command(command: Any, args: argparse.Namespace) -> int:
    from ganmix.search import signals
    from ganmix.tracking import claims

    since = claims.mark()
    try:
        return command(args)
    except _USER_ERRORS as exc:
        print(f"ganmix: error: {one_line(str(exc))}", file=sys.stderr)
        # Bad input leaves nothing behind: the folders this command created, unless another command uses them
        # by now (one started beside it on the same new results folder).
        claims.remove_all_created(since)
        return 2
    except KeyboardInterrupt:
        signals.closing()  # Ray's shutdown at exit must not be cut short either
        print("\nganmix: interrupted", file=sys.stderr)
        return signals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
