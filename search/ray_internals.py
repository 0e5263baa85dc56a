"""The one place ganmix touches Ray's and Tune's private attributes, where no public API does the job.

Each function says why it needs the private name; tests/test_ray_internals.py checks every one of them against
the installed Ray, so an upgrade that moves one fails there, not in the middle of a resumed search.
"""

from __future__ import annotations

from typing import Any


def replace_restored_callbacks(tuner: Any, callbacks: list[Any]) -> None:
    """Tuner.restore unpickles the run config saved in tuner.pkl, callbacks included (a stale SearchCallback
    from the interrupted driver); Ray has no public setter, so this driver's callbacks go in their place."""
    import ray

    local = getattr(tuner, "_local_tuner", None)
    if local is None or not hasattr(local, "_run_config"):
        raise RuntimeError(f"cannot resume with Ray {ray.__version__}: Tuner.restore no longer exposes its run "
                           "config (or Ray Client is in use)")
    local._run_config.callbacks = list(callbacks)  # noqa: SLF001


def tuner_callbacks(tuner: Any) -> list[Any]:
    """The callbacks a Tuner will run with (what `replace_restored_callbacks` set)."""
    return list(tuner._local_tuner.get_run_config().callbacks or [])  # noqa: SLF001


def optuna_trial(searcher: Any, trial_id: str) -> Any | None:
    """The Optuna trial behind a Tune trial of an OptunaSearch (for its constraint values), if it asked one."""
    return searcher._ot_trials.get(trial_id)  # noqa: SLF001


def optuna_study(searcher: Any) -> Any | None:
    """The Optuna study an OptunaSearch holds (a restored one included): Tune exposes no accessor."""
    return getattr(searcher, "_ot_study", None)


def launchable_node_types() -> list[dict[str, float]]:
    """Resources of the node types the cluster's autoscaler may start (none without an autoscaler)."""
    try:  # Ray keeps the autoscaler's config in its GCS; there is no public accessor
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001 - an older or newer Ray without it: judge the alive nodes alone
        return []
    if config is None:
        return []
    return [dict(group.resources) for group in config.node_group_configs if group.max_count != 0]


# A stop switch in the GCS's key-value store (ray.experimental.internal_kv, what Ray's own libraries keep
# state in): reading it is an RPC to the GCS, not an object fetch, so a task that reads it never counts as
# blocked. A blocking ray.get inside a task lends the task's CPU to queued tasks while it waits (a flag actor
# that is still starting made one more seed than CPUs run, in a freshly started worker), and a flag actor is
# one more worker process besides.
_FLAG_NAMESPACE = "ganmix"


def flag_set(key: str) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(key, b"1", overwrite=True, namespace=_FLAG_NAMESPACE)


def flag_is_set(key: str) -> bool:
    from ray.experimental.internal_kv import _internal_kv_exists

    return bool(_internal_kv_exists(key, namespace=_FLAG_NAMESPACE))


def flag_clear(key: str) -> None:
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(key, namespace=_FLAG_NAMESPACE)


def stop_local_monitor() -> None:
    """End the autoscaler monitor (monitor.py) of a Ray this process started, at once, before ray.shutdown():
    Ray's shutdown stops its processes one after another with a second's grace each, and the monitor, asleep
    between its rounds, uses all of it; on one machine there is nothing for it to scale and nothing of it to
    keep. Ray has no public handle on the processes it started. A Ray this process only joined is left alone."""
    import ray
    from ray._private import ray_constants

    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001
    if node is None or not getattr(node, "head", False):
        return
    node._kill_process_type(ray_constants.PROCESS_TYPE_MONITOR, allow_graceful=False, check_alive=False)  # noqa: SLF001


def tune_actors_in_prestarted_workers() -> None:
    """Tune gives every trial actor a runtime environment holding PL_DISABLE_FORK=1 (for PyTorch Lightning,
    which ganmix does not use). Ray prestarts workers only for the job's own, empty, environment, so an actor
    with any environment waits for a fresh worker started through the runtime-env agent while the prestarted
    ones sit idle. Without the variable Tune's environment is empty (unless the driver has one of the variables
    Tune passes on, e.g. AWS keys) and the actors start in the workers Ray prestarted. Tune reads this dict
    each time it registers a trainable; there is no public option."""
    from ray.tune.execution import class_cache

    class_cache.DEFAULT_ENV_VARS.pop("PL_DISABLE_FORK", None)  # noqa: SLF001
