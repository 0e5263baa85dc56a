"""Pre-flight checks of the machine or cluster a search runs on: CPUs and GPUs per trial must fit, or Tune
would wait for them forever. GPUs are counted without importing torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ganmix.search.preflight.errors import PreflightError

if TYPE_CHECKING:
    from ganmix.search.spec import SearchSpec

LOCAL_HINT = "lower it, or join a larger cluster with --address"


def check_local_resources(spec: SearchSpec) -> None:
    """Without --address a trial must fit this machine, or Tune waits for it forever."""
    check_fits(cpus_per_trial=spec.cpus_per_trial, gpus_per_trial=spec.gpus_per_trial, cpus=local_cpus(),
                gpus=local_gpus(), where="this machine", hint=LOCAL_HINT)


def local_cpus() -> int:
    """The CPUs this process may use (what Ray counts in a container, too)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_gpus() -> int:
    """NVIDIA GPUs visible here, without importing torch: /dev/nvidiaN, narrowed by CUDA_VISIBLE_DEVICES."""
    devices = [p for p in Path("/dev").glob("nvidia*") if p.name[len("nvidia"):].isdigit()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(devices)
    return min(len(devices), len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))


def check_cluster_resources(spec: SearchSpec, address: str) -> None:
    """After ray.init(address): one trial must fit some alive node, or a node type the cluster's autoscaler
    may start (cluster.yaml starts GPU workers on demand); otherwise Tune would wait for it forever."""
    import ray

    from ganmix.search.ray_internals import launchable_node_types

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")] + launchable_node_types()
    need = {"CPU": spec.cpus_per_trial, "GPU": spec.gpus_per_trial}
    if any(all(node.get(key, 0.0) >= amount for key, amount in need.items()) for node in nodes):
        return
    have = ", ".join(sorted({f"{n.get('CPU', 0):g} CPUs/{n.get('GPU', 0):g} GPUs" for n in nodes})) or "none"
    raise PreflightError(f"cpus_per_trial = {spec.cpus_per_trial:g} and gpus_per_trial = {spec.gpus_per_trial:g}: "
                         f"no node of the Ray cluster at {address} (nor one its autoscaler may start) has that "
                         f"much (nodes: {have}); lower them, add a node that has them, or wait until the "
                         "cluster's workers have joined (`ray status`)")


def check_fits(*, cpus_per_trial: float, gpus_per_trial: float, cpus: float, gpus: float, where: str,
                hint: str) -> None:
    if cpus_per_trial > cpus:
        raise PreflightError(f"cpus_per_trial = {cpus_per_trial:g} is more than the {cpus:g} CPU(s) of "
                             f"{where}; {hint}")
    if gpus_per_trial > 0 and gpus == 0:
        raise PreflightError(f"gpus_per_trial = {gpus_per_trial:g} but {where} has no GPU; use "
                             "--gpus-per-trial 0, or join a cluster with GPUs (--address)")
    if gpus_per_trial > gpus:
        raise PreflightError(f"gpus_per_trial = {gpus_per_trial:g} is more than the {gpus:g} GPU(s) of "
                             f"{where}; {hint}")
