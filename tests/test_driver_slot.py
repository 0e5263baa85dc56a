"""Seeds (finalists, `ganmix confirm`) on a one-machine Ray: the driver runs seeds in a thread as one of the
machine's slots, Ray gets the others (confirm_task.run_jobs). Real Ray, real MLflow, real training."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from ganmix.search import confirm_task
from ganmix.search.confirm_task import SeedJob, _JobQueue, _ray_slots, run_jobs


def _jobs(parent: str, count: int) -> dict[int, SeedJob]:
    """`count` seeds of one small real-only recipe on the digits (one classifier epoch)."""
    from ganmix.search.recipe import Recipe

    recipe = Recipe(dataset="digits", generator="none", synthetic_ratio=0.0, classifier_epochs=1,
                    classifier_min_steps=0, augment="none")
    return {i: SeedJob(recipe.with_seed(i).to_yaml(), parent_run_id=parent, name=f"seed {i}") for i in range(count)}


def test_the_driver_takes_a_slot_only_on_a_one_machine_ray_without_gpus(ray_session) -> None:
    from ganmix.search.ray_start import start_ray

    start_ray(None)  # the test run's Ray, or a fresh local one where an earlier test shut that down
    cpus = int(ray_session.cluster_resources()["CPU"])
    assert _ray_slots(None, cpus=1, gpus=0, jobs=4) == cpus - 1  # the driver is the last slot
    assert _ray_slots("local", cpus=1, gpus=0, jobs=4) == cpus - 1
    assert _ray_slots("auto", cpus=1, gpus=0, jobs=4) is None  # a cluster's driver is no worker node
    assert _ray_slots(None, cpus=1, gpus=1, jobs=4) is None  # the driver holds no GPU
    assert _ray_slots(None, cpus=1, gpus=0, jobs=1) is None  # one seed: Ray alone
    assert _ray_slots(None, cpus=cpus, gpus=0, jobs=4) is None  # room for one seed at a time: Ray alone


def test_the_queue_hands_each_job_out_once_across_threads() -> None:
    jobs = {i: SeedJob("", parent_run_id="", name=str(i)) for i in range(200)}
    queue, taken, lock = _JobQueue(jobs), [], threading.Lock()

    def take_all() -> None:
        while (item := queue.take()) is not None:
            with lock:
                taken.append(item[0])

    threads = [threading.Thread(target=take_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(200)) and queue.empty()


def _run_seeds(uri: str, tmp_path, count: int, slot: type, beside: Any = None) -> tuple[dict, Any, str, str]:
    """`count` seeds through run_jobs on the test run's local Ray, the driver's slot being `slot`; returns the
    results, an MLflow client, the experiment and the parent run the seeds' runs are nested under."""
    from mlflow import MlflowClient

    from ganmix.datasets import load_dataset

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"driver-slot-{slot.__name__}")
    parent = client.create_run(experiment_id).info.run_id
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(confirm_task, "_DriverSlot", slot)
        results = run_jobs(_jobs(parent, count), [load_dataset("digits")], uri=uri, experiment_id=experiment_id,
                           cpus=1, gpus=0, cache_dir=str(tmp_path / "cache"), address=None, quiet=True, label="test",
                           beside=beside)
    return results, client, experiment_id, parent


def test_seeds_share_the_machine_between_ray_and_the_driver(ray_session, migrated_store, tmp_path) -> None:
    """Three seeds on a 2-CPU Ray: each finishes with its own FINISHED run; the driver ran at least one and Ray
    at least one, never more than two at once (the driver's slot is one of the machine's, not one more), and
    the driver's torch threads are as they were."""
    ran_in_driver: list[str] = []

    class Recording(confirm_task._DriverSlot):
        def __init__(self, queue, run, **kwargs) -> None:
            super().__init__(queue, lambda job: (ran_in_driver.append(job.name), run(job))[1], **kwargs)

    threads = torch.get_num_threads()
    results, client, experiment_id, parent = _run_seeds(migrated_store, tmp_path, 3, Recording)
    assert set(results) == {0, 1, 2}
    assert all(isinstance(out, dict) and 0.0 <= out["val_auc"] <= 1.0 for out in results.values()), results
    assert 1 <= len(ran_in_driver) <= 2, ran_in_driver
    assert torch.get_num_threads() == threads
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_name for r in runs) == ["seed 0", "seed 1", "seed 2"]
    assert all(r.info.status == "FINISHED" for r in runs)
    spans = [(r.info.start_time, r.info.end_time) for r in runs]
    at_once = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert at_once <= int(ray_session.cluster_resources()["CPU"]), spans


def test_a_failing_seed_in_the_driver_is_reported_and_the_others_still_run(ray_session, migrated_store,
                                                                         tmp_path) -> None:
    """A seed that raises in the driver's thread is one failed result, like a failed Ray task."""

    class Failing(confirm_task._DriverSlot):
        def __init__(self, queue, run, **kwargs) -> None:
            def fail_second(job: SeedJob) -> Any:
                if job.name == "seed 1":
                    raise ValueError("no such thing")
                return run(job)

            super().__init__(queue, fail_second, **kwargs)

    results, *_ = _run_seeds(migrated_store, tmp_path, 2, Failing)
    assert results[1] == "ValueError: no such thing", results  # seed 1 is the driver's: seed 0 went to Ray first
    assert isinstance(results[0], dict), results


@pytest.mark.parametrize("count", [3, 1])
def test_the_drivers_own_work_beside_the_seeds_runs_once_before_its_first_seed(ray_session, migrated_store, tmp_path,
                                                                              count: int) -> None:
    """`beside` (the search's study figures) runs once: in the driver's seed slot before its first seed while Ray
    runs the first ones, or, with no slot (one seed), in the calling thread."""
    events: list[tuple[str, str]] = []

    class Recording(confirm_task._DriverSlot):
        def __init__(self, queue, run, **kwargs) -> None:
            super().__init__(queue, lambda job: (events.append(("seed", job.name)), run(job))[1], **kwargs)

    def beside() -> None:
        events.append(("beside", threading.current_thread().name))

    results, *_ = _run_seeds(migrated_store, tmp_path, count, Recording, beside=beside)
    assert all(isinstance(out, dict) for out in results.values()) and len(results) == count, results
    assert [e for e in events if e[0] == "beside"] == [
        ("beside", "ganmix-driver-seed" if count > 1 else threading.current_thread().name)]
    assert events[0][0] == "beside"  # before any seed of the driver's
