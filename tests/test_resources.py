"""Per-trial resources ganmix picks when the user names none: a local GPU is shared by several trials."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from ganmix.search.cli import build_parser, resolve_spec_and_given
from ganmix.search.resources import TRIALS_PER_GPU, local_defaults
from ganmix.search.spec import SearchSpec

SPEC = SearchSpec(dataset="digits")


def test_without_a_gpu_nothing_changes():
    choice = local_defaults(SPEC, set(), cpus=16, gpus=0)
    assert choice.spec == SPEC and choice.note is None


def test_one_gpu_is_shared_by_eight_trials_with_the_cpus_split_among_them():
    choice = local_defaults(SPEC, set(), cpus=16, gpus=1)
    assert (choice.spec.max_concurrent, choice.spec.gpus_per_trial, choice.spec.cpus_per_trial) == (8, 0.125, 2.0)
    assert "1 GPU(s) here: 8 trials at once, 0.125 GPU and 2 CPU(s) each" in choice.note


def test_two_gpus_and_few_cpus():
    spec = local_defaults(SPEC, set(), cpus=4, gpus=2).spec
    assert (spec.max_concurrent, spec.gpus_per_trial, spec.cpus_per_trial) == (2 * TRIALS_PER_GPU, 0.125, 1.0)


@pytest.mark.parametrize(("given", "expected"), [
    ({"max_concurrent": 4}, (4, 0.25, 4.0)),  # the GPU split among the trials the user wants at once
    ({"max_concurrent": 1}, (1, 1.0, 16.0)),
    ({"cpus_per_trial": 1.0}, (8, 0.125, 1.0)),
    ({"gpus_per_trial": 0.0}, (2, 0.0, 1.0)),  # CPU only, as asked
    ({"gpus_per_trial": 0.5, "max_concurrent": 2}, (2, 0.5, 1.0)),
])
def test_what_the_user_gave_stands(given, expected):
    spec = local_defaults(SPEC.replace(**given), set(given), cpus=16, gpus=1).spec
    assert (spec.max_concurrent, spec.gpus_per_trial, spec.cpus_per_trial) == expected


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["search", *argv])


def test_given_keys_come_from_the_flags_and_the_spec_file(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"dataset": "digits", "max_concurrent": 3}))
    spec, given = resolve_spec_and_given(_args("--config", str(path), "--cpus-per-trial", "2"))
    assert {"max_concurrent", "cpus_per_trial"} <= given and "gpus_per_trial" not in given
    assert (spec.max_concurrent, spec.cpus_per_trial) == (3, 2.0)
    _, demo = resolve_spec_and_given(_args())  # the packaged demo spec names its own concurrency
    assert "max_concurrent" in demo and "gpus_per_trial" not in demo
