"""The pre-flight error and how its messages quote what the user typed."""

from __future__ import annotations

from typing import Any

# A bad value is quoted up to this many characters: a 5,000-character name must not fill the screen.
QUOTE_LIMIT = 200


class PreflightError(ValueError):
    """Bad input found before any work; the message names the flag, field or file and what was expected."""


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """repr(value), cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
