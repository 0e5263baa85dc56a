"""How ganmix prints a metric: one rule for the console, the MLflow descriptions, tags and `ganmix best`.

The rule: the fewest decimals (at least `LEAST`) at which the numbers shown together stay apart — distinct
values never print alike, so an interval never seems to exclude its mean ("0.9999 1.000..1.000") — and
no value that is not a whole number prints as one ("-0.0000", an AUC of .9997 as "1.000").
Standard library only: the CLI formats before any heavy import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

LEAST, MOST = 3, 6  # decimals: the rule's floor, and where it stops adding (beyond: exponent form)


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _apart(values: list[float], places: int) -> bool:
    shown = {v: round(v, places) for v in values}
    if len(set(shown.values())) < len(shown):  # two distinct values print alike
        return False
    return all(r != int(r) or v == int(v) for v, r in shown.items())  # a fraction printing as a whole number


def decimals(*values: float | None, least: int = LEAST, most: int = MOST) -> int:
    """The decimals the rule gives to numbers shown together (a table, a mean with its CI); missing and
    non-finite values are ignored."""
    finite = _finite(values)
    for places in range(least, most + 1):
        if _apart(finite, places):
            return places
    return most


def number(value: float | None, places: int | None = None, *, signed: bool = False) -> str:
    """`value` at `places` decimals (the rule's own for it alone when None); "-" when missing; a zero is never
    negative ("-0.000"); a value too small for `MOST` decimals is written with an exponent."""
    if value is None or not math.isfinite(value):
        return "-"
    places = decimals(value) if places is None else places
    sign = "+" if signed else ""
    if value != 0 and round(value, places) == 0:
        return format(value, f"{sign}.1e")
    return format(round(value, places) + 0.0, f"{sign}.{places}f")  # + 0.0: -0.0 prints as 0.0


def interval(low: float | None, high: float | None, places: int, *, signed: bool = False) -> str:
    """`low..high`, or "-" when either bound is missing (fewer than two seeds)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"{number(low, places, signed=signed)}..{number(high, places, signed=signed)}"


def rounded(value: float, *others: float | None) -> float:
    """`value` rounded as it prints beside `others` (a metric logged to MLflow, whose tables show every
    digit they get)."""
    return round(value, decimals(value, *others)) + 0.0
