"""Data set names: one spelling each, so a search and `ganmix best` agree on the experiment. Light (no torch)."""

from __future__ import annotations

FOLDER_PREFIX = "folder:"


def canonical_name(name: str) -> str:
    """`BreastMNIST`, ` breastmnist ` and `breastmnist` are one data set (stored lower-case); a folder data set
    keeps its path as given (paths are case-sensitive)."""
    if not isinstance(name, str):
        return name
    text = name.strip()
    if text.lower().startswith(FOLDER_PREFIX):
        return FOLDER_PREFIX + text[len(FOLDER_PREFIX):]
    return text.lower()
