"""The metric registry: every metric's name, direction, kind and display format, in one place.

The CLI's choices, the search space's objective, the constraints, the trial (checkpoint selection),
confirmation and tracking/query all read it, so a metric's direction is never guessed from its name
anywhere else. Standard library only: the CLI validates `--metric` before any heavy import.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass


class MetricError(ValueError):
    """An unknown metric name; the message lists the valid ones."""


@dataclass(frozen=True)
class MetricInfo:
    name: str
    mode: str  # "max": higher is better; "min": lower is better
    kind: str  # "val" (searchable, per epoch), "test" (logged once, never searched), "sample" (per trial)
    fmt: str = ".4f"
    label: str = ""  # for people: "test AUC"
    unit_interval: bool = False  # its values lie in [0, 1]: confidence intervals must stay there

    def better(self, a: float, b: float) -> bool:
        """True when `a` is strictly better than `b`."""
        return a > b if self.mode == "max" else a < b

    def sort_key(self, value: float) -> float:
        """Ascending order of this key is best first (sorted, min)."""
        return -value if self.mode == "max" else value

    @property
    def direction(self) -> str:
        """Optuna's name for the mode: "maximize" or "minimize"."""
        return "maximize" if self.mode == "max" else "minimize"

    def lift(self, value: float, baseline: float) -> float:
        """`value` minus `baseline`, signed so that positive always means better."""
        return value - baseline if self.mode == "max" else baseline - value

    def format(self, value: float) -> str:
        return format(value, self.fmt)


class BestSoFar:
    """The best of each key's latest value of one metric, by the registry's direction: a search's best trial
    so far (the console's line and the parent run's `best_<metric>` both keep one). Ties keep the first."""

    def __init__(self, metric: str) -> None:
        self.info = metric_info(metric)
        self.latest: dict[Hashable, float] = {}
        self.key: Hashable | None = None
        self.value: float | None = None

    def update(self, key: Hashable, value: float) -> bool:
        """Record `key`'s latest value (a NaN is ignored); True when the best (key or value) changed."""
        if math.isnan(value):
            return False
        self.latest[key] = float(value)
        best = min(self.latest, key=lambda k: self.info.sort_key(self.latest[k]))
        changed = (best, self.latest[best]) != (self.key, self.value)
        self.key, self.value = best, self.latest[best]
        return changed


# Classifier metrics exist for val (searched) and test (reported); the registry lists both splits.
_CLASSIFIER = {
    "auc": ("max", "AUC"),
    "acc": ("max", "accuracy"),
    "balanced_acc": ("max", "balanced accuracy"),
    "macro_f1": ("max", "macro F1"),
    "loss": ("min", "cross-entropy"),
    "sensitivity": ("max", "sensitivity"),
    "specificity": ("max", "specificity"),
}
_SAMPLE = {
    "fid": ("min", "FID", ".3f"),
    "kid": ("min", "KID", ".4f"),
    "precision": ("max", "precision", ".3f"),
    "recall": ("max", "recall", ".3f"),
    "label_fidelity": ("max", "label fidelity", ".3f"),
    "near_copy_fraction": ("min", "near-copy fraction", ".3f"),
    "nn_ratio_median": ("max", "median NN-distance ratio", ".3f"),
}

REGISTRY: dict[str, MetricInfo] = {}
for _split in ("val", "test"):
    for _short, (_mode, _label) in _CLASSIFIER.items():
        REGISTRY[f"{_split}_{_short}"] = MetricInfo(f"{_split}_{_short}", _mode, _split, label=f"{_split} {_label}",
                                                    unit_interval=_short != "loss")
for _name, (_mode, _label, _fmt) in _SAMPLE.items():
    REGISTRY[_name] = MetricInfo(_name, _mode, "sample", _fmt, _label)

# What a search may optimise: validation or sample metrics, never test ones.
SEARCHABLE = sorted(n for n, m in REGISTRY.items() if m.kind in ("val", "sample")
                    and n not in ("val_sensitivity", "val_specificity", "nn_ratio_median"))
SAMPLE_METRICS = sorted(n for n, m in REGISTRY.items() if m.kind == "sample")
# Checkpoint selection inside a trial must use a per-epoch validation metric.
SELECTABLE = sorted(n for n, m in REGISTRY.items() if m.kind == "val")


# --- names as MLflow shows them -------------------------------------------------------------------------
# MLflow's chart view groups a run's metrics into sections by the part before the first "/", and each
# section's charts get their own step axis (generator epochs under generator/, classifier epochs under val/ and train/).
# ganmix's own names (the registry's, the CLI's, Tune's) keep underscores; tracking/ maps them at the MLflow
# boundary through these two functions, so this table is the only place a section is decided.
# A name prefix that becomes its section ("val_auc" -> "val/auc"); longest first, so per-class recalls get
# their own section ("val_recall_benign" -> "val_recall/benign").
_PREFIX_SECTIONS = ("val_recall", "test_recall", "val", "test", "train", "generator", "best", "lift")
# Names without such a prefix that are put into a section ("fid" -> "sample/fid").
_ADDED_SECTIONS = {
    "sample": frozenset(_SAMPLE) | {"synthetic_count", "filter_kept_fraction", "heldout_pool"},
    "time": frozenset({"compute_seconds", "generator_seconds", "trial_wall_seconds"}),
    "train": frozenset({"lr", "best_epoch"}),
    # Chosen on validation (models/evaluation.py), so shown beside the val metrics; test applies the same one.
    "val": frozenset({"decision_threshold"}),
}


def logged_name(name: str) -> str:
    """The name a metric has in MLflow: `val_auc` -> `val/auc`, `generator_g_loss` -> `generator/g_loss`, `fid` ->
    `sample/fid`. Names already logged, and names no section claims, are returned as they are."""
    if "/" in name:
        return name
    for section, names in _ADDED_SECTIONS.items():
        if name in names:
            return f"{section}/{name}"
    for section in _PREFIX_SECTIONS:
        if name.startswith(section + "_") and len(name) > len(section) + 1:
            return f"{section}/{name[len(section) + 1:]}"
    return name


def internal_name(name: str) -> str:
    """The inverse of `logged_name`: `val/auc` -> `val_auc`, `sample/fid` -> `fid`."""
    section, sep, rest = name.partition("/")
    if not sep:
        return name
    if rest in _ADDED_SECTIONS.get(section, ()):
        return rest
    return f"{section}_{rest}"


def canonical_metric(name: str) -> str:
    """A metric as a user may type it, in either spelling (`val/auc` as the UI shows it, or `val_auc`);
    an unknown name comes back as typed, so the error that follows quotes what the user wrote."""
    converted = internal_name(name.strip())
    try:
        metric_info(converted)
    except MetricError:
        return name
    return converted


def metric_info(name: str) -> MetricInfo:
    """The registry entry; per-class recalls (`val_recall_<class>`) are higher-is-better val/test metrics."""
    found = REGISTRY.get(name)
    if found is not None:
        return found
    for split in ("val", "test"):
        if name.startswith(f"{split}_recall_"):
            return MetricInfo(name, "max", split, label=f"{split} recall of {name[len(split) + 8:]}", unit_interval=True)
    raise MetricError(f"unknown metric {name!r}; expected one of {sorted(REGISTRY)}")


def metric_mode(name: str) -> str:
    """'max' or 'min'; a clear error naming the valid metrics otherwise."""
    return metric_info(name).mode


def test_counterpart(name: str) -> str | None:
    """The test metric of a val metric (val_auc -> test_auc), shown beside it in tables; None for others."""
    return "test_" + name[len("val_"):] if metric_info(name).kind == "val" else None


def confirming_metric(name: str) -> str:
    """The test metric that confirms a search on `name`: val_auc -> test_auc; sample metrics -> test_auc."""
    info = metric_info(name)
    return test_counterpart(name) or (name if info.kind == "test" else "test_auc")


def selection_metric(objective: str) -> str:
    """The per-epoch val metric a trial picks its checkpoint by: the objective when it is one, else val_auc."""
    return objective if objective in SELECTABLE else "val_auc"
