"""The private Ray/Tune attributes ganmix relies on (search/ray_internals.py), checked against the installed Ray:
an upgrade that moves one fails here."""

from __future__ import annotations

import optuna
from ray import tune
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from ganmix.search import ray_internals


class _Stale(Callback):
    pass


class _Fresh(Callback):
    pass


def _trainable(config: dict) -> None:
    tune.report({"x": 1.0})


def test_a_restored_tuner_runs_with_the_callbacks_put_in_place_of_the_pickled_ones(tmp_path):
    tune.Tuner(_trainable, run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), callbacks=[_Stale()]))
    restored = tune.Tuner.restore(str(tmp_path / "exp"), _trainable)
    assert [type(c) for c in ray_internals.tuner_callbacks(restored)] == [_Stale]  # what restore brings back
    fresh = _Fresh()
    ray_internals.replace_restored_callbacks(restored, [fresh])
    assert ray_internals.tuner_callbacks(restored) == [fresh]


def _space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0, 1)  # define-by-run: suggested values reach the config by themselves


def test_an_optuna_search_exposes_its_study_and_the_trial_it_asked():
    searcher = OptunaSearch(space=_space,
                            metric="x", mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    assert searcher.suggest("t1") is not None
    trial = ray_internals.optuna_trial(searcher, "t1")
    assert isinstance(trial, optuna.trial.Trial) and "x" in trial.params
    assert ray_internals.optuna_trial(searcher, "never asked") is None
    study = ray_internals.optuna_study(searcher)
    assert isinstance(study, optuna.Study) and [t.number for t in study.trials] == [trial.number]


def test_ray_still_keeps_the_autoscaler_config_where_preflight_reads_it():
    from ray._private.state import state

    assert callable(state.get_cluster_config)
    # Without a running cluster there is nothing to read: no node types, and no error.
    assert ray_internals.launchable_node_types() == []


def test_a_stop_flag_in_the_gcs_is_seen_by_tasks_and_never_oversubscribes(ray_session):
    """confirm_task.StopFlag over ray_internals.flag_*: a task sees the driver set it; reading it inside
    tasks never counts as blocking (a blocking ray.get lends the task's CPU to a queued task), so no more
    one-CPU tasks run at once than there are CPUs, of twice as many; clear() removes the key."""
    import time

    from ganmix.search.confirm_task import StopFlag

    if not ray_session.is_initialized():  # an earlier test of the run may have shut the session's Ray down
        ray_session.init(address="local", include_dashboard=False, configure_logging=False, num_cpus=2)
    cpus = int(ray_session.cluster_resources()["CPU"])

    @ray_session.remote(num_cpus=1)
    def poll(flag: StopFlag, seconds: float) -> tuple[float, float, bool]:
        started = time.time()
        while time.time() - started < seconds:
            if flag.is_set():
                return started, time.time(), True
            time.sleep(0.01)
        return started, time.time(), False

    flag = StopFlag()
    assert not flag.is_set()
    spans = ray_session.get([poll.remote(flag, 1.0) for _ in range(2 * cpus)])
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= cpus and not any(seen for _, _, seen in spans)
    waiting = poll.remote(flag, 60.0)
    time.sleep(0.5)
    flag.set()
    assert ray_session.get(waiting, timeout=30)[2] is True
    flag.clear()
    assert not flag.is_set()


def test_the_monitor_of_a_ray_this_process_started_stops_at_once_and_ray_still_works_and_shuts_down():
    """stop_local_monitor SIGKILLs the autoscaler monitor Ray started (where Ray keeps its processes), tasks
    still run, and the shutdown after it leaves none of Ray's processes. In a fresh interpreter: the test run's
    own Ray is not touched."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import ray
        from ray._private import ray_constants
        from ganmix.search import ray_internals
        from ganmix.search.ray_start import start_ray, stop_ray
        start_ray(None)
        node = ray._private.worker._global_node
        monitor = node.all_processes[ray_constants.PROCESS_TYPE_MONITOR][0].process
        others = [info.process for kind, infos in node.all_processes.items() for info in infos
                  if kind != ray_constants.PROCESS_TYPE_MONITOR]
        assert monitor.poll() is None and others and all(p.poll() is None for p in others)
        ray_internals.stop_local_monitor()
        assert monitor.poll() is not None, "the monitor still runs"
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
        stop_ray()
        print("left:", [p.pid for p in others if p.poll() is None])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "left: []" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "autoscaler failed" not in done.stdout + done.stderr


def _runtime_env_of_trial():  # a closure: pickled by value (a Ray worker cannot import a test module)
    def trainable(config: dict) -> None:
        import os

        import ray

        env_vars = dict(ray.get_runtime_context().runtime_env.get("env_vars") or {})
        tune.report({"env_vars": len(env_vars), "pl_disable_fork": float("PL_DISABLE_FORK" in os.environ)})

    return trainable


def test_tune_trial_actors_get_no_runtime_env_of_their_own_so_they_start_in_prestarted_workers(ray_session, tmp_path):
    ray_internals.tune_actors_in_prestarted_workers()
    grid = tune.Tuner(_runtime_env_of_trial(),
                      run_config=tune.RunConfig(name="env", storage_path=str(tmp_path), verbose=0)).fit()
    result = grid[0]
    assert result.error is None
    assert result.metrics["pl_disable_fork"] == 0.0
    assert result.metrics["env_vars"] == 0  # Tune passes on AWS keys and the like; none are set here
