"""Per-trial resources when the user names none: a local GPU is used, shared by several small trials.

On a machine with a GPU, a search that sets no `gpus_per_trial` would otherwise train every trial on the
CPU (Ray hides GPUs from a trial that asked for none). 28 px images and 0.4 M-parameter models leave an
H100 mostly idle with one trial: measured there (issue 9), 8 trials at 0.125 GPU each finished 48 trials
at 3.1 s per trial, 4 at 0.25 took 4.2 s per trial. No torch or Ray here: it runs in the CLI's
pre-flight, before either is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from ganmix.search.spec import SearchSpec

TRIALS_PER_GPU = 8


@dataclasses.dataclass(frozen=True)
class Choice:
    spec: SearchSpec
    note: str | None  # one line for the console when ganmix chose, None when the user's values stand


def local_defaults(spec: SearchSpec, given: Collection[str], *, cpus: int, gpus: int) -> Choice:
    """`spec` with GPU resources filled in for this machine, unless the user set `gpus_per_trial`.

    With G GPUs: `max_concurrent` = 8 x G (unless given), `gpus_per_trial` = G / max_concurrent (at most 1),
    `cpus_per_trial` = the machine's CPUs split among the trials (unless given, at least 1)."""
    if gpus <= 0 or "gpus_per_trial" in given:
        return Choice(spec, None)
    concurrent = spec.max_concurrent if "max_concurrent" in given else TRIALS_PER_GPU * gpus
    share = min(1.0, gpus / concurrent)
    cpus_each = spec.cpus_per_trial if "cpus_per_trial" in given else float(max(1, cpus // concurrent))
    chosen = spec.replace(max_concurrent=concurrent, gpus_per_trial=share, cpus_per_trial=cpus_each)
    note = (f"ganmix: {gpus} GPU(s) here: {concurrent} trials at once, {share:g} GPU and {cpus_each:g} CPU(s) "
            "each (set --gpus-per-trial 0 for CPU only, or --max-concurrent / --gpus-per-trial to change)")
    return Choice(chosen, note)
