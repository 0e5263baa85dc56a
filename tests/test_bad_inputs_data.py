"""Bad data sets fail with one line before Ray or MLflow start (see test_bad_inputs.py); data a search can
run on but whose numbers would mean little (a split without some class, constant images, a near-empty
class) give a clear warning. Pre-flight reads the data but never downloads or creates anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _bad_input_harness import bad_input_case, make_inputs, tree, write_npz

CASES = [  # (id, argv, expected); data is read with torch, so most run in this process
    ("npz_is_text", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_text"], "not a readable .npz (not a zip"),
    ("npz_is_folder", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_folder"],
     "breastmnist.npz is a folder; expected the .npz file"),
    ("val_split_empty", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_empty_val"], "the val split is empty"),
    ("npz_missing_key", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_no_test"], "missing key(s) test_images"),
    ("npz_float_images", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_float"], "has dtype float64"),
    ("npz_bad_labels", ["--dataset", "breastmnist", "--data-dir", "{tmp}/data_labels"], "holds labels 0..7"),
    ("dataset_unknown", ["--dataset", "nosuchmnist"], "unknown data set 'nosuchmnist'"),
    ("dataset_long", ["--dataset", "{long}"], "unknown data set"),
    ("folder_missing", ["--dataset", "folder:{tmp}/no_such_folder"], "no_such_folder"),
    ("folder_no_path", ["--dataset", "folder:"], "has no path"),
]
AS_PROCESS = {"npz_is_text", "val_split_empty"}  # the whole path, flag to data file, as a user meets it


def _arrays(path: Path, **changes: np.ndarray) -> None:
    write_npz(path)
    with np.load(path) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_inputs(tmp_path_factory.mktemp("bad_data"), {}, {"data_text/breastmnist.npz": b"hello, text\n"})
    (root / "data_folder" / "breastmnist.npz").mkdir(parents=True)
    write_npz(root / "data_empty_val" / "breastmnist.npz", val=0)
    _arrays(root / "data_no_test" / "breastmnist.npz", test_images=None)
    _arrays(root / "data_float" / "breastmnist.npz", train_images=np.zeros((8, 28, 28)))
    _arrays(root / "data_labels" / "breastmnist.npz", train_labels=np.arange(8).reshape(8, 1).astype(np.uint8))
    return root


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_fails_with_one_line(inputs: Path, args: list[str], expected: str, request,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    bad_input_case(inputs, case, ["search", *args], expected, in_process=case not in AS_PROCESS,
                   monkeypatch=monkeypatch, capsys=capsys)


@pytest.mark.parametrize(("kind", "expected"), [
    ("test_lacks_class", "the test split has no image of class(es) 'normal, benign'"),
    ("constant", "every image of the train split is the same"),
    ("one_image", "class(es) 'malignant' (1) have fewer than 2 train images"),
])
def test_data_that_means_little_warns(tmp_path: Path, kind: str, expected: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from ganmix.search.preflight import check_search_data
    from ganmix.search.spec import SearchSpec

    write_npz(tmp_path / "data" / "breastmnist.npz", test_classes=1 if kind == "test_lacks_class" else 2,
              constant=kind == "constant")
    fraction = {"class_fraction": {"malignant": 0.25}} if kind == "one_image" else {}
    dataset = check_search_data(SearchSpec(dataset="breastmnist", **fraction), tmp_path / "data")
    assert dataset is not None
    warning = capsys.readouterr().err
    assert warning.startswith("ganmix: warning: data set 'breastmnist': ") and expected in warning, warning


def test_a_missing_file_is_left_to_the_run_and_nothing_is_created(tmp_path: Path) -> None:
    """Pre-flight does not download: a missing MedMNIST file is fetched by the real run after every check."""
    from ganmix.search.preflight import check_search_data
    from ganmix.search.spec import SearchSpec

    before = tree(tmp_path)
    assert check_search_data(SearchSpec(dataset="breastmnist"), tmp_path / "data") is None
    assert tree(tmp_path) == before and not (tmp_path / "data").exists()


@pytest.fixture()
def local_ray(ray_session):
    """The test run's one local Ray (tests/conftest.py; run_search reuses an initialised Ray)."""
    return ray_session


def test_a_trial_no_node_can_hold_is_refused_after_connecting(local_ray) -> None:
    """With --address the resources are judged on the cluster joined (here a 2-CPU, GPU-less one)."""
    from ganmix.search.preflight import PreflightError, check_cluster_resources
    from ganmix.search.spec import SearchSpec

    check_cluster_resources(SearchSpec(cpus_per_trial=2), "here")
    with pytest.raises(PreflightError, match=r"cpus_per_trial = 3 and gpus_per_trial = 0: no node .* 2 CPUs/0 GPUs"):
        check_cluster_resources(SearchSpec(cpus_per_trial=3), "here")
    with pytest.raises(PreflightError, match=r"gpus_per_trial = 0.5: no node of the Ray cluster at here"):
        check_cluster_resources(SearchSpec(gpus_per_trial=0.5), "here")


def test_a_resume_whose_set_up_fails_leaves_its_parent_as_it_was(tmp_path: Path, local_ray, migrated_store) -> None:
    """A crash between reopening the parent run and Tune's start must not leave the parent RUNNING, nor
    change it at all (issue 25: a failed resume changes nothing): here the Tune state of a search to resume
    is missing (run_search called directly, past the CLI's pre-flight). The error is one line."""
    from ganmix.search.runner import RunOptions, run_search
    from ganmix.search.spec import SearchSpec
    from ganmix.tracking import runs, store

    uri = migrated_store
    experiment_id = store.ensure_experiment(uri, "digits")
    parent = runs.start_run(uri, experiment_id, name="lost", tags={runs.KIND: "search", runs.SEARCH_NAME: "lost"})
    parent.finish("KILLED", error="interrupted")
    spec = SearchSpec.from_mapping({"name": "lost", "trials": 2, "fixed": {"classifier_epochs": 1}})
    options = RunOptions(results_dir=tmp_path, resume=True, sample_metrics=False, quiet=True)
    before = store.client(uri).get_run(parent.run_id)
    with pytest.raises(store.TrackingError, match=r"--resume lost: the search cannot be resumed \(FileNotFoundError"):
        run_search(spec, options)
    run = store.client(uri).get_run(parent.run_id)
    assert (run.info.status, run.info.end_time) == ("KILLED", before.info.end_time)
    assert run.data.tags[runs.ERROR] == "interrupted"
