"""Pre-flight checks of each command's flags, judged without torch, Ray or MLflow (well under a second):
numbers by the one function that owns their range (spec.check_budget, the Recipe's INT_RANGES), paths
here, URIs and addresses in network.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ganmix.search.preflight.errors import PreflightError, quote
from ganmix.search.preflight.machine import LOCAL_HINT, check_fits, local_cpus, local_gpus
from ganmix.search.preflight.network import check_address, check_storage, check_tracking_uri
from ganmix.search.preflight.paths import check_input_file, check_name, check_output_file, check_port, \
    check_writable_dir

if TYPE_CHECKING:
    import argparse

    from ganmix.search.spec import SearchSpec

# Flags that describe the search itself: a resumed search continues with what it was started with.
_SPEC_FLAGS = ("config", "dataset", "size", "image_size", "train_per_class", "class_fraction", "trials",
               "max_concurrent", "cpus_per_trial", "gpus_per_trial", "metric", "seed", "name")


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_search_flags(args: argparse.Namespace) -> None:
    """Every `ganmix search` flag that can be judged without the spec."""
    from ganmix.search.spec import check_budget

    if args.resume is not None:
        check_resume_flags(args)
    for field in ("trials", "max_concurrent", "cpus_per_trial", "gpus_per_trial", "time_budget", "confirm",
                  "confirm_top"):
        value = getattr(args, field, None)
        if value is not None:
            check_budget(field, value, label=flag(field))
    for field in ("cpus_per_trial", "gpus_per_trial"):
        check_resource_granularity(getattr(args, field, None), flag(field))
    if args.confirm_top is not None and not args.confirm:
        raise PreflightError(f"--confirm-top {args.confirm_top} does nothing without --confirm SEEDS; add --confirm 8 "
                             "(seeds per recipe) or drop --confirm-top")
    check_class_fraction_flags(args.class_fraction or [])
    check_recipe_flags(args)
    if args.address in (None, "local"):  # the resource flags against this machine, before the spec is built
        check_fits(cpus_per_trial=args.cpus_per_trial or 0, gpus_per_trial=args.gpus_per_trial or 0,
                   cpus=local_cpus(), gpus=local_gpus(), where="this machine", hint=LOCAL_HINT)
    if args.config is not None:
        check_input_file(args.config, "--config", "a search spec YAML file")
    for label, name in (("--name", args.name), ("--resume", args.resume)):
        if name is not None:
            check_name(name, label)
    check_data_dir(args)
    _check_flags_against_each_other(args)
    check_store_flags(args)
    check_storage(args.storage)
    check_address(args.address, getattr(args, "address_label", "--address"))


def check_recipe_flags(args: argparse.Namespace) -> None:
    """Recipe fields given as flags, by the Recipe's own table (no torch); --seed becomes every seed. An image
    size by its one judge (models/sizes.py), against the spec's families later, in the spec's Recipe."""
    from ganmix.models.sizes import ImageSizeError, check_image_size
    from ganmix.search.recipe import RecipeError, check_int_field

    if getattr(args, "image_size", None) is not None:
        try:
            check_image_size(args.image_size, label="--image-size")
        except ImageSizeError as exc:
            raise PreflightError(str(exc)) from None
    for field, recipe_field in (("train_per_class", "train_per_class"), ("seed", "data_seed")):
        value = getattr(args, field, None)
        if value is None:
            continue
        try:
            check_int_field(recipe_field, value)
        except RecipeError as exc:
            raise PreflightError(f"{flag(field)}: {str(exc).replace(recipe_field, field)}") from None


def check_resume_flags(args: argparse.Namespace) -> None:
    """--resume continues a search as it was started: a flag that would change its spec is refused, not
    ignored. Run options that the spec does not hold (--no-sample-metrics, --quiet, where things are) are
    honoured: the resumed trials run with them, as on a first start."""
    given = [flag(f) for f in _SPEC_FLAGS if getattr(args, f, None) not in (None, [])]
    if given:
        raise PreflightError(f"--resume {args.resume} continues that search with the spec it was started with; "
                             f"drop {', '.join(given)} (to change them, start a new search)")


def check_data_dir(args: argparse.Namespace) -> None:
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise PreflightError(f"--data-dir {data_dir} is a file; expected a folder of <dataset>.npz files")
    env = os.environ.get("GANMIX_DATA_DIR")
    if data_dir is None and env and Path(env).expanduser().exists() and not Path(env).expanduser().is_dir():
        raise PreflightError(f"GANMIX_DATA_DIR {env} is a file; expected a folder of <dataset>.npz files (set it "
                             "to a folder, or unset it for ~/.ganmix/data)")


# Ray counts CPUs and GPUs in steps of this much (ray_constants.MIN_RESOURCE_GRANULARITY); less is zero to it.
_RESOURCE_STEP = 0.0001


def check_resource_granularity(value: float | None, label: str) -> None:
    if value is not None and 0 < value < _RESOURCE_STEP:
        raise PreflightError(f"{label} {value:g} is below Ray's smallest share of a CPU or GPU ({_RESOURCE_STEP:g}); "
                             f"pass a number >= {_RESOURCE_STEP:g}, e.g. 0.25")


def check_class_fraction_flags(texts: list[str]) -> None:
    """One CLASS=F per --class-fraction, each class once (a second value would silently win)."""
    seen: dict[str, str] = {}
    for text in texts:
        if text.count("=") > 1:
            raise PreflightError(f"--class-fraction {quote(text)}: one CLASS=F per flag; repeat the flag for each "
                                 "class, e.g. --class-fraction 0=0.5 --class-fraction 1=0.5")
        key = text.rpartition("=")[0].strip()
        if key and key in seen:
            raise PreflightError(f"--class-fraction: class {key!r} is given twice ({seen[key]} and {text}); give "
                                 "each class once")
        seen[key] = text


def check_home() -> None:
    """Ray, MLflow, torch and matplotlib keep caches under HOME: a HOME that is unset or missing fails
    (or warns) deep inside them, after the results folder was made."""
    home = os.environ.get("HOME")
    if not home:
        raise PreflightError("HOME is not set; Ray, MLflow and torch keep their caches under it: set it to your "
                             "home folder (export HOME=/path/to/home)")
    if not Path(home).is_dir():
        raise PreflightError(f"HOME {home} is not a folder; Ray, MLflow and torch keep their caches under it: set "
                             "HOME to an existing, writable folder")


# A Unix socket path holds at most 107 bytes; Ray puts its sockets at
# <temp>/ray/session_<date>_<time>_<microseconds>_<pid>/sockets/plasma_store (68 bytes after <temp>, a 7-digit pid).
_SOCKET_PATH_MAX, _RAY_SOCKET_TAIL = 107, 68


def check_ray_temp_dir() -> None:
    """The folder a local Ray starts in (RAY_TMPDIR, else TMPDIR on Linux, else /tmp): short enough for its
    sockets, and a folder (Ray would fail with a traceback, or wait)."""
    import sys

    name = "RAY_TMPDIR" if os.environ.get("RAY_TMPDIR") else (
        "TMPDIR" if os.environ.get("TMPDIR") and sys.platform.startswith("linux") else None)
    if name is None:
        return
    folder = os.environ[name]
    room = _SOCKET_PATH_MAX - _RAY_SOCKET_TAIL
    if len(os.fsencode(folder)) > room:
        raise PreflightError(f"{name} {quote(folder)} is {len(os.fsencode(folder))} bytes long; Ray's sockets under "
                             f"it would pass the {_SOCKET_PATH_MAX}-byte limit of a Unix socket path: set {name} "
                             f"to a folder of at most {room} bytes, such as /tmp")
    if not Path(folder).is_dir():
        raise PreflightError(f"{name} {quote(folder)} is not a folder; Ray starts under it: set {name} to an "
                             "existing folder, such as /tmp")


def check_store_flags(args: argparse.Namespace, *, must_exist: bool = False) -> None:
    """--results-dir writable (or creatable), the tracking URI well formed, reachable and its local store
    usable; with `must_exist` (commands that only read), a local store that is not there is an error."""
    from ganmix.tracking.location import default_tracking_uri, local_store_missing, tracking_uri_source

    if args.results_dir.is_symlink() and not args.results_dir.exists():
        raise PreflightError(f"--results-dir {args.results_dir} is a link to {os.readlink(args.results_dir)}, which "
                             "does not exist; create that folder, or remove the link, or pick another --results-dir")
    check_writable_dir(args.results_dir, "--results-dir")
    uri, label = tracking_uri_source(args.tracking_uri)
    check_tracking_uri(uri if uri is not None else default_tracking_uri(args.results_dir), label)
    missing = local_store_missing(uri if uri is not None else default_tracking_uri(args.results_dir))
    if must_exist and missing is not None:
        where = f"--results-dir {args.results_dir}" if uri is None else f"{label} {uri}"
        raise PreflightError(f"no results at {where} ({missing} does not exist): run `ganmix search` first, or "
                             "pass the --results-dir / --tracking-uri of an earlier search")


def check_confirm_flags(args: argparse.Namespace) -> None:
    from ganmix.search.spec import check_budget

    for field in ("seeds", "top"):
        check_budget(field, getattr(args, field), label=flag(field))
    if args.name is not None:
        check_name(args.name, "--name")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise PreflightError(f"--data-dir {args.data_dir} is not a folder; expected a folder of <dataset>.npz files")
    check_data_dir(args)
    check_store_flags(args, must_exist=True)
    check_address(args.address, getattr(args, "address_label", "--address"))


def check_best_flags(args: argparse.Namespace) -> None:
    """`ganmix best`: the export path is judged before the report is printed (nothing overwritten unasked)."""
    check_store_flags(args)
    if args.export is not None:
        check_output_file(args.export, "--export", force=args.force)


def check_train_flags(args: argparse.Namespace) -> None:
    check_home()
    check_store_flags(args)
    check_input_file(args.recipe, "--recipe", "a recipe YAML file (ganmix best --export writes one)")
    check_data_dir(args)


def check_ui_flags(args: argparse.Namespace) -> None:
    check_port(args.port)
    check_store_flags(args, must_exist=True)


def check_resume_state(name: str, storage: str | None, results_dir: Path) -> None:
    """A search to resume has its Tune state (tuner.pkl) in local storage; remote storage is Tune's to judge."""
    if storage and "://" in storage and not storage.startswith("file://"):
        return
    if storage and storage.startswith("file://"):
        storage = urlsplit(storage).path
    folder = Path(storage) if storage else results_dir / "ray"
    state = folder.expanduser() / name / "tuner.pkl"
    if not state.is_file():
        raise PreflightError(f"--resume {name}: no Tune state at {state}; nothing to resume (same --results-dir "
                             "and --storage as the interrupted search?)")


def _check_flags_against_each_other(args: argparse.Namespace) -> None:
    """What the flags alone show (the same checks as check_search_against_spec, before the spec is built)."""
    from ganmix.models.metrics import SAMPLE_METRICS

    if args.metric in SAMPLE_METRICS and args.no_sample_metrics:
        raise PreflightError(f"objective {args.metric} is a sample metric, and --no-sample-metrics turns those off: "
                             "no trial could report it; drop --no-sample-metrics, or pick a validation metric "
                             "such as --metric val_auc")
    digits = args.dataset is not None and args.dataset.strip().lower() == "digits" or (
        args.dataset is None and args.config is None)  # the demo's data set
    if args.data_dir is not None and digits and not args.resume:
        raise PreflightError(f"--data-dir {args.data_dir}: data set 'digits' reads nothing from a data folder (it is "
                             "embedded in scikit-learn); drop --data-dir, or pass --dataset NAME of a MedMNIST data "
                             "set")


def check_search_against_spec(spec: SearchSpec, args: argparse.Namespace) -> None:
    """The flags judged against the spec they run with (spec file and flags merged): resources Ray can
    count, a data folder the data set reads, and an objective some trial can report."""
    from ganmix.models.metrics import SAMPLE_METRICS

    for field in ("cpus_per_trial", "gpus_per_trial"):
        check_resource_granularity(getattr(spec, field), field)
    reads_no_files = spec.dataset == "digits" or spec.dataset.startswith("folder:")
    if getattr(args, "data_dir", None) is not None and reads_no_files and not args.resume:
        why = "it is embedded in scikit-learn" if spec.dataset == "digits" else "its folder is named in it"
        raise PreflightError(f"--data-dir {args.data_dir}: data set {spec.dataset!r} reads nothing from a data "
                             f"folder ({why}); drop --data-dir, or pass --dataset NAME of a MedMNIST data set")
    if spec.metric not in SAMPLE_METRICS:
        return
    if args.no_sample_metrics:
        raise PreflightError(f"objective {spec.metric} is a sample metric, and --no-sample-metrics turns those off: "
                             "no trial could report it; drop --no-sample-metrics, or pick a validation metric "
                             "such as --metric val_auc")
    if _real_only_space(spec):
        raise PreflightError(f"objective {spec.metric} measures generated images, but this search's space draws only "
                             "real-only recipes (generator none or synthetic_ratio 0): no trial could report it; "
                             "search a generator, or pick a validation metric such as --metric val_auc")


def _real_only_space(spec: SearchSpec) -> bool:
    from ganmix.search.recipe import is_real_only
    from ganmix.search.space import CategoricalDim

    base = spec.base_recipe()
    ratio = None if "synthetic_ratio" in spec.space else base.synthetic_ratio
    dim = spec.space.get("generator")
    generators = list(dim.choices) if isinstance(dim, CategoricalDim) else [base.generator]
    return all(is_real_only(g, ratio) for g in generators)
