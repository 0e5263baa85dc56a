"""Shared fixtures: where the real MedMNIST files live, and small synthetic data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/data beside the checkout (see DEVELOPERS.md); GANMIX_SHARED_DATA overrides it.
SHARED_DATA = Path(os.environ.get("GANMIX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def require_shared(name: str) -> Path:
    """Path of ../shared/data/<name>, or skip the test with a reason when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (real MedMNIST files live in ../shared/data; see its README)")
    return path


# --- shared heavy set-up, done once per test run (issue 23: a test suite that is fast where it can be) -------------


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that uses Ray in this process (run_search and the pre-flight reuse an
    initialised Ray). Started on first use, shut down at the end of the run; CLI tests run in their own
    processes and start their own. 2 CPUs: what the in-process tests assume."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", include_dashboard=False, configure_logging=False, num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def _migrated_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, created and migrated once (seconds) by ganmix's own store opening."""
    from ganmix.tracking import store

    folder = tmp_path_factory.mktemp("store-template")
    store.check_reachable(store.default_tracking_uri(folder))
    return folder / "mlflow.db"


@pytest.fixture()
def migrated_store(tmp_path: Path, _migrated_store_template: Path) -> str:
    """The tracking URI of a fresh, already-migrated store in this test's tmp_path (a copy of the template), for
    tests that are not about opening or migrating a store."""
    import shutil

    from ganmix.tracking import store

    shutil.copyfile(_migrated_store_template, tmp_path / "mlflow.db")
    uri = store.default_tracking_uri(tmp_path)
    store.check_reachable(uri)  # finds it migrated: no migration runs
    return uri
