"""Pre-flight checks: every bad input fails here, as one line, before training, Ray or MLflow start.

One module per job, called by the CLI in order of cost:
  paths.py    names, files and folders (no torch, Ray or MLflow);
  flags.py    each command's flags (numbers by the owner of their range: spec.check_budget, the Recipe);
  network.py  the tracking URI and its local store, Tune storage, the Ray address (a TCP connect);
  probe.py    the spec: every space dimension probed through the Recipe (light family descriptions, no torch);
  machine.py  CPUs and GPUs per trial against this machine or the cluster joined;
  data.py     the data set, read and judged (never downloaded: a missing file is fetched by the real run).
Nothing here creates a file or a folder, and nothing is downloaded.
"""

from ganmix.search.preflight.data import (
    check_recipe_data,
    check_resumed_data,
    check_search_data,
    judge_data,
    judge_search_data,
    load_judged_data,
    load_search_data,
)
from ganmix.search.preflight.errors import PreflightError, quote
from ganmix.search.preflight.flags import (
    check_best_flags,
    check_confirm_flags,
    check_data_dir,
    check_home,
    check_ray_temp_dir,
    check_search_against_spec,
    check_recipe_flags,
    check_resume_flags,
    check_resume_state,
    check_search_flags,
    check_store_flags,
    check_train_flags,
    check_ui_flags,
)
from ganmix.search.preflight.machine import (
    check_cluster_resources,
    check_fits,
    check_local_resources,
    local_cpus,
    local_gpus,
)
from ganmix.search.preflight.network import CONNECT_TIMEOUT, check_address, check_storage, check_tracking_uri
from ganmix.search.preflight.paths import (
    check_input_file,
    check_name,
    check_output_file,
    check_port,
    check_writable_dir,
    nonempty,
    nonempty_path,
)
from ganmix.search.preflight.probe import check_spec

__all__ = [
    "CONNECT_TIMEOUT", "PreflightError", "check_address", "check_best_flags", "check_cluster_resources",
    "check_confirm_flags", "check_data_dir", "check_fits",
    "check_input_file", "check_local_resources", "check_name", "check_output_file", "check_port",
    "check_home", "check_ray_temp_dir", "check_recipe_data", "check_recipe_flags", "check_resume_flags",
    "check_search_against_spec", "check_resumed_data", "check_resume_state", "check_search_data", "check_search_flags", "check_spec",
    "check_storage", "check_store_flags", "check_tracking_uri", "check_train_flags", "check_ui_flags",
    "check_writable_dir", "judge_data", "judge_search_data", "load_judged_data", "load_search_data", "local_cpus", "local_gpus", "nonempty",
    "nonempty_path", "quote",
]
