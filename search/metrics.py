"""The metrics a search may optimise, with their direction; the CLI validates --metric against it."""

from __future__ import annotations

from ganmix.search.space import SpaceError

# Validation metrics reported every classifier epoch, and per-trial sample metrics (constant per trial).
# The searcher only ever sees validation or sample metrics, never test metrics.
VALIDATION_METRICS = {
    "val_auc": "max",
    "val_acc": "max",
    "val_balanced_acc": "max",
    "val_macro_f1": "max",
    "val_loss": "min",
}
SAMPLE_METRICS = {
    "fid": "min",
    "kid": "min",
    "precision": "max",
    "recall": "max",
    "label_fidelity": "max",
    "near_copy_fraction": "min",
}
METRICS = {**VALIDATION_METRICS, **SAMPLE_METRICS}


def metric_mode(name: str) -> str:
    """'max' or 'min' for a known metric; a clear error naming the valid ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise SpaceError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}") from None

