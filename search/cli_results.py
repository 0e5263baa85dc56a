"""`ganmix best`, `ganmix train` and `ganmix ui`: the commands that read what searches left in MLflow.

Split from search/cli.py (the parser, `ganmix search` and error handling); like it, every heavy import
(torch, MLflow) happens inside a command, so a bad flag is reported before any of them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ganmix.tracking.query import BestResult

from ganmix.models.numbers import number  # standard library only: no heavy import before a command runs


def cmd_best(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_best_flags(args)  # the export path too: judged before the report is printed
    # The name goes into a models:/NAME/VERSION URI.
    if isinstance(args.register, str) and ("/" in args.register or ":" in args.register):
        raise preflight.PreflightError(f"--register: a model name without '/' or ':' is expected, "
                                       f"got {args.register!r}")
    from ganmix.datasets.names import canonical_name
    from ganmix.models.metrics import metric_info
    from ganmix.search.recipe import Recipe
    from ganmix.tracking import query, store
    from ganmix.tracking.location import local_store_missing

    uri = store.resolve_tracking_uri(args.tracking_uri, args.results_dir)
    if local_store_missing(uri):
        if args.register is not None:
            raise store.TrackingError(f"no results at {uri}: no generator to register")
        print(f"no completed trials at {uri} (no results there yet)")
        return 1
    store.check_reachable(uri)
    dataset = canonical_name(args.dataset) if args.dataset else None
    results = query.best_per_dataset(uri, dataset=dataset, metric=args.metric)
    if not results:
        if args.register is not None:  # nothing to register is bad input for --register: one line, exit 2
            raise store.TrackingError(f"no completed trials{' for ' + dataset if dataset else ''} at {uri}: "
                                      "no generator to register")
        print(f"no completed trials{' for ' + dataset if dataset else ''} at {uri}")
        return 1
    for res in results:
        best, info = res.best, metric_info(res.metric)
        print(f"{res.dataset} ({res.data}): best trial {best.name} of search {res.search} by {res.metric} "
              f"({'higher' if info.mode == 'max' else 'lower'} is better; run {best.run_id})")
        for split in ("val", "test"):
            keys = sorted(k for k in best.metrics if k.startswith(split + "_") and "recall_" not in k)
            print(f"  {split}: " + _metric_list({k[len(split) + 1:]: best.metrics[k] for k in keys}))
        if res.baseline is None:
            print("  no completed real-only trial in this search: no lift to report")
        elif res.baseline.run_id == best.run_id:
            print("  the best trial is real-only: augmentation did not beat the tuned real-only baseline on validation")
        else:
            print(f"  tuned real-only baseline: trial {res.baseline.name} (run {res.baseline.run_id})")
            for key in dict.fromkeys([res.metric, "val_auc", "test_auc"]):
                lift = res.lift(key)
                if lift is not None:
                    print(f"  lift over the tuned real-only baseline ({key}): {number(lift, signed=True)}")
        if res.confirmed:
            print(f"  confirmed answer: {res.confirmed}")
        print(f"  confirmed: {res.verdict}" if res.verdict else
              "  unconfirmed: one seed, chosen on validation (run `ganmix confirm` for a multi-seed answer)")
        print("  recipe:\n" + "\n".join("    " + line for line in (best.recipe_yaml or "").splitlines()))
    if args.export is not None:
        if len(results) > 1:
            print("ganmix: error: several data sets (or data versions) have results; pick one with --dataset",
                  file=sys.stderr)
            return 2
        recipe = Recipe.from_yaml(results[0].best.recipe_yaml or "", source=f"run {results[0].best.run_id}")
        recipe.replace(baseline=False).save(args.export)
        print(f"exported to {args.export}; re-run it with: ganmix train --recipe {args.export}")
    if args.register is not None:
        return _register(uri, results, args.register)
    return 0


def _register(uri: str, results: list[BestResult], name: str | bool) -> int:
    """`best --register`: the chosen generator as a new version of an MLflow registered model."""
    from ganmix.tracking import store
    from ganmix.tracking.registry import register_generator

    if len(results) > 1:
        raise store.TrackingError("several data sets (or data versions) have results; pick one with --dataset")
    result = results[0]
    name = name if isinstance(name, str) else f"ganmix-{result.dataset}"
    version, chosen = register_generator(uri, result, name=name)
    print(f"registered trial {chosen.trial.name} (run {chosen.trial.run_id}; {chosen.why}) as "
          f"models:/{version.name}/{version.version}")
    print(f"  load it: mlflow.pyfunc.load_model('models:/{version.name}/{version.version}')"
          f".predict(pd.DataFrame({{'label': [0], 'count': [4]}}))  (tracking URI {uri})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_train_flags(args)
    from ganmix.search.recipe import Recipe

    recipe = Recipe.load(args.recipe)  # a bad file is one line before torch and MLflow are imported
    preflight.check_recipe_data(recipe, args.data_dir)  # its data set, before a store is created or opened
    from ganmix.search.retrain import retrain
    from ganmix.tracking.claims import use_folder

    use_folder(args.results_dir)  # ours from here: another command's clean-up after bad input leaves it alone

    metrics, run_id, uri = retrain(recipe, results_dir=args.results_dir, tracking_uri=args.tracking_uri,
                                   data_dir=args.data_dir, prefer_gpu=not args.cpu,
                                   sample_metrics=not args.no_sample_metrics)
    print(f"run {run_id} logged to {uri}")
    for split in ("val", "test"):
        keys = sorted(k for k in metrics if k.startswith(split + "_"))
        print(f"  {split}: " + _metric_list({k[len(split) + 1:]: metrics[k] for k in keys}))
    return 0


def _metric_list(values: dict[str, float]) -> str:
    """`auc=0.9412, loss=0.2210, ...`: each at the decimals models/numbers.py's rule gives it."""
    return ", ".join(f"{key}={number(value)}" for key, value in values.items())


def cmd_ui(args: argparse.Namespace) -> int:
    from ganmix.search import preflight

    preflight.check_ui_flags(args)  # a missing store is an error: serving it would create an empty one
    from ganmix.tracking.ui import check_port, serve

    check_port("127.0.0.1", args.port)  # before MLflow's imports: a taken port is one line at once
    from ganmix.search.progress import quiet_libraries
    from ganmix.tracking import store

    quiet_libraries(verbose=False)
    return serve(store.resolve_tracking_uri(args.tracking_uri, args.results_dir), port=args.port)
