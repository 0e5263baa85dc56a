"""Bad search specs and recipe files fail with one line naming the file or field (see test_bad_inputs.py):
empty, not UTF-8, not YAML, a key given twice, unknown keys, values out of range, constraints no trial can
meet. A file that cannot be parsed is judged before torch (a process per case); values are judged by the
Recipe (torch), in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from _bad_input_harness import bad_input_case, make_inputs

SPECS = {
    "unknown_family": {"space": {"generator": ["dcgan", "stylegan"]}},
    "negative_ratio": {"space": {"synthetic_ratio": {"type": "float", "low": -1.0, "high": 1.0}}},
    "latent_zero": {"generator_space": {"dcgan": {"latent_dim": {"type": "int", "low": 0, "high": 64}}}},
    "latent_float": {"generator_space": {"cvae": {"latent_dim": [8.5, 16]}}},
    "filter_above_one": {"space": {"filter_threshold": {"type": "float", "low": 0.0, "high": 1.5}}},
    "unknown_allocation": {"space": {"allocation": ["proportional", "random"]}},
    "lr_zero": {"space": {"classifier_lr": {"type": "float", "low": 0.0, "high": 0.1}}},
    "n_critic_zero": {"generator_space": {"wgan_gp": {"n_critic": {"type": "int", "low": 0, "high": 5}}}},
    "unknown_gs_family": {"generator_space": {"stylegan": {"width": [32]}}},
    "unknown_gs_option": {"generator_space": {"dcgan": {"n_critic": [1, 2]}}},
    "gs_low_above_high": {"generator_space": {"cvae": {"kl_weight": {"type": "float", "low": 2.0, "high": 1.0}}}},
    "image_size_200": {"image_size": 200},
    "name_escape": {"name": "../../escape"},
    "format_9": {"format": "ganmix.search/9"},
    "unknown_key": {"budget": 3},
    "unknown_space_field": {"space": {"dropout": [0.1]}},
    "fixed_bad": {"fixed": {"classifier_epochs": 0}},
    "fixed_ratio_negative": {"fixed": {"synthetic_ratio": -1.0}},
    "fixed_batch_huge": {"fixed": {"batch_size": 10**9}},
    "fixed_not_mapping": {"fixed": "latent_dim"},
    "fixed_epochs_zero": {"fixed": {"generator_epochs": 0}},  # no space: judged, not "both searched and fixed"
    "space_list": {"space": ["generator"]},
    "constraints_list": {"constraints": ["near_copy_fraction"]},
    "space_and_fixed": {"space": {"generator_epochs": [16]}, "fixed": {"generator_epochs": 16}},
    "constraints": {"constraints": {"near_copy_fraction": {"max": 0.01}}},
    "unknown_constraint": {"constraints": {"fidelity": {"max": 1}}},
    "constraint_min_above_max": {"constraints": {"near_copy_fraction": {"min": 0.5, "max": 0.1}}},
    "constraint_two_spellings": {"constraints": {"val_auc": {"min": 0.9}, "val/auc": {"max": 0.8}}},
    "constraint_nan": {"constraints": {"near_copy_fraction": {"max": float("nan")}}},
    "constraint_text": {"constraints": {"near_copy_fraction": {"max": "low"}}},
    "seed_too_big": {"seed": 2**32},
    "seed_negative": {"seed": -3},
    "trials_zero": {"trials": 0},
    "trials_text": {"trials": "many"},
    "cpus_nan": {"cpus_per_trial": float("nan")},
    "top_level_list": ["dataset", "digits"],
    "metric_unknown": {"metric": "accuracy"},
    "dataset_number": {"dataset": 7},
}
TEXTS = {
    "empty.yaml": b"", "blank.yaml": b"  \n\n", "latin1.yaml": "trials: 3 # caf\u00e9\n".encode("latin-1"),
    "binary.yaml": bytes(range(256)), "dup_top.yaml": b"trials: 2\ntrials: 3\n",
    "dup_nested.yaml": b"space:\n  generator: [dcgan]\n  generator: [cvae]\n",
    "syntax.yaml": b"space:\n  generator: [dcgan\n  latent_dim: 3\n", "tabs.yaml": b"trials:\t\t- 1\n  - x: [\n",
    "recipe_empty.yaml": b"", "recipe_latin1.yaml": "dataset: caf\u00e9\n".encode("latin-1"),
    "recipe_dup.yaml": b"dataset: digits\ndataset: breastmnist\n", "recipe_syntax.yaml": b"dataset: [digits\n",
    "recipe_list.yaml": b"- dataset\n- digits\n", "recipe_format9.yaml": b"format: ganmix.recipe/9\ndataset: digits\n",
    "recipe_unknown.yaml": b"format: ganmix.recipe/3\ndropout: 0.5\n",
    "recipe_seed.yaml": b"format: ganmix.recipe/3\nclassifier_seed: 4294967296\n",
    "recipe_epochs.yaml": b"format: ganmix.recipe/3\nclassifier_epochs: -1\n",
    "recipe_comment.yaml": b"# only a comment\n",
}
PARSE = [  # judged before torch
    ("spec_empty", "empty.yaml", "--config {tmp}/empty.yaml is empty"),
    ("spec_blank", "blank.yaml", "blank.yaml is empty; expected a YAML mapping"),
    ("spec_latin1", "latin1.yaml", "latin1.yaml is not UTF-8 text"),
    ("spec_binary", "binary.yaml", "binary.yaml is not UTF-8 text"),
    ("spec_dup_top", "dup_top.yaml", "not valid YAML at line 2, column 1: key 'trials' is given twice"),
    ("spec_dup_nested", "dup_nested.yaml", "key 'generator' is given twice"),
    ("spec_syntax", "syntax.yaml", "syntax.yaml: not valid YAML at line"),
    ("spec_tabs", "tabs.yaml", "tabs.yaml: not valid YAML at line"),
    ("spec_top_level_list", "top_level_list.yaml", "expected a mapping at the top level, got list"),
]
VALUES = [(f"spec_{key}", f"{key}.yaml", expected) for key, expected in [
    ("unknown_family", "space.generator: choice 'stylegan' is not a valid value"),
    ("negative_ratio", "space.synthetic_ratio: low -1.0 is not a valid value"),
    ("latent_zero", "generator_space.dcgan.latent_dim: low 0 is not a valid value"),
    ("latent_float", "generator_space.cvae.latent_dim: choice 8.5 is not a valid value"),
    ("filter_above_one", "space.filter_threshold: high 1.5 is not a valid value"),
    ("unknown_allocation", "space.allocation: choice 'random'"),
    ("lr_zero", "space.classifier_lr: low 0.0"),
    ("n_critic_zero", "generator_space.wgan_gp.n_critic: low 0 is not a valid value"),
    ("unknown_gs_family", "generator_space.stylegan: unknown generator family"),
    ("unknown_gs_option", "generator_space.dcgan.n_critic"),
    ("gs_low_above_high", "generator_space.cvae.kl_weight: low 2.0 is above high 1.0"),
    ("image_size_200", "image_size 200 does not suit generator 'dcgan': it takes 8..128 px"),
    ("name_escape", "name must be a plain name"),
    ("format_9", "format 'ganmix.search/9' is not supported"),
    ("unknown_key", "unknown key(s) ['budget']"),
    ("unknown_space_field", "space: unknown recipe field(s) ['dropout']"),
    ("fixed_bad", "classifier_epochs must be an integer"),
    ("fixed_ratio_negative", "synthetic_ratio must be a number in [0.0, 100.0], got -1.0"),
    ("fixed_batch_huge", "batch_size must be an integer in [2, 1000000]"),
    ("fixed_not_mapping", "fixed_not_mapping.yaml: fixed must be a mapping, got str"),
    ("fixed_epochs_zero", "fixed: generator_epochs must be an integer in [1, 100000], got 0"),
    ("space_list", "space must be a mapping, got list"),
    ("constraints_list", "constraints must be a mapping, got list"),
    ("space_and_fixed", "both searched (space) and fixed"),
    ("unknown_constraint", "constraints.fidelity: unknown metric"),
    ("constraint_min_above_max", "constraints.near_copy_fraction: min 0.5 is above max 0.1"),
    ("constraint_two_spellings", "constraints.val_auc: min 0.9 is above max 0.8"),
    ("constraint_nan", "constraints.near_copy_fraction.max must be a finite number, got nan"),
    ("constraint_text", "constraints.near_copy_fraction.max must be a finite number, got 'low'"),
    ("seed_too_big", "data_seed must be an integer in [0, 4294967295], got 4294967296"),
    ("seed_negative", "data_seed must be an integer in [0, 4294967295], got -3"),
    ("trials_zero", "trials must be an integer >= 1, got 0"),
    ("trials_text", "trials must be an integer >= 1, got 'many'"),
    ("cpus_nan", "cpus_per_trial must be a number > 0, got nan"),
    ("metric_unknown", "unknown metric 'accuracy'"),
    ("dataset_number", "dataset must be a non-empty name, got 7"),
]]
RECIPES = [
    ("recipe_empty", "recipe_empty.yaml", "--recipe {tmp}/recipe_empty.yaml is empty", False),
    ("recipe_latin1", "recipe_latin1.yaml", "recipe_latin1.yaml is not UTF-8 text", False),
    ("recipe_dup", "recipe_dup.yaml", "key 'dataset' is given twice", False),
    ("recipe_syntax", "recipe_syntax.yaml", "recipe_syntax.yaml: not valid YAML at line", False),
    ("recipe_comment", "recipe_comment.yaml", "expected a mapping of recipe fields, got NoneType", False),
    ("recipe_list", "recipe_list.yaml", "expected a mapping of recipe fields, got list", False),
    ("recipe_format9", "recipe_format9.yaml", "format 'ganmix.recipe/9' is not supported", False),
    ("recipe_unknown", "recipe_unknown.yaml", "unknown field(s) ['dropout']", False),
    ("recipe_seed", "recipe_seed.yaml", "classifier_seed must be an integer in [0, 4294967295]", True),
    ("recipe_epochs", "recipe_epochs.yaml", "classifier_epochs must be an integer in [1, 100000], got -1", True),
]
AS_PROCESS = {"spec_unknown_family", "spec_constraint_min_above_max"}  # the whole path, as a process  # one value case as a process: the whole path, spec to torch


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("bad_files"), SPECS, TEXTS)


@pytest.mark.parametrize(("name", "expected"), [c[1:] for c in PARSE + VALUES], ids=[c[0] for c in PARSE + VALUES])
def test_bad_spec_fails_with_one_line(inputs: Path, name: str, expected: str, request,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    case = request.node.callspec.id
    in_process = case not in {c[0] for c in PARSE} and case not in AS_PROCESS
    bad_input_case(inputs, case, ["search", "--config", f"{{tmp}}/{name}"], expected, in_process=in_process,
                   monkeypatch=monkeypatch, capsys=capsys)


def test_constraints_without_sample_metrics(inputs: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad_input_case(inputs, "constraints_without_samples",
                   ["search", "--config", "{tmp}/constraints.yaml", "--no-sample-metrics"], "need sample metrics",
                   in_process=True, monkeypatch=monkeypatch, capsys=capsys)


@pytest.mark.parametrize(("name", "expected", "in_process"), [c[1:] for c in RECIPES], ids=[c[0] for c in RECIPES])
def test_bad_recipe_fails_with_one_line(inputs: Path, name: str, expected: str, in_process: bool, request,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad_input_case(inputs, request.node.callspec.id, ["train", "--recipe", f"{{tmp}}/{name}"], expected,
                   in_process=in_process, monkeypatch=monkeypatch, capsys=capsys)


def test_a_fixed_field_leaves_the_default_space(tmp_path: Path) -> None:
    """`fixed: {generator_epochs: 16}` with no `space:` fixes it (issue 18: "both searched and fixed")."""
    from ganmix.search.spec import SearchSpec

    spec = SearchSpec.from_mapping({"fixed": {"generator_epochs": 16}})
    assert "generator_epochs" not in spec.space and spec.base_recipe().generator_epochs == 16
    assert "generator" in spec.space  # the rest of the default space stays
