"""Pre-flight checks of each command's flags, judged without torch, Ray or MLflow (well under a second):
numbers by the one function that owns their range (spec.check_budget, the Recipe's INT_RANGES), paths
here, URIs and addresses in network.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ganmix.search.preflight.errors import PreflightError
from ganmix.search.preflight.machine import LOCAL_HINT, check_fits, local_cpus, local_gpus
from ganmix.search.preflight.network import check_address, check_storage, check_tracking_uri
from ganmix.search.preflight.paths import check_input_file, check_name, check_output_file, check_port, \
    check_writable_dir

if TYPE_CHECKING:
    import argparse

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
    check_store_flags(args)
    check_storage(args.storage)
    check_address(args.address)


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


def check_store_flags(args: argparse.Namespace, *, must_exist: bool = False) -> None:
    """--results-dir writable (or creatable), the tracking URI well formed, reachable and its local store
    usable; with `must_exist` (commands that only read), a local store that is not there is an error."""
    from ganmix.tracking.location import default_tracking_uri, local_store_missing, tracking_uri_source

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
    check_store_flags(args, must_exist=True)
    check_address(args.address)


def check_best_flags(args: argparse.Namespace) -> None:
    """`ganmix best`: the export path is judged before the report is printed (nothing overwritten unasked)."""
    check_store_flags(args)
    if args.export is not None:
        check_output_file(args.export, "--export", force=args.force)


def check_train_flags(args: argparse.Namespace) -> None:
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
