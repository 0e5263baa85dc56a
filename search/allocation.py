"""How many synthetic images each class gets: exact integer arithmetic, no randomness."""

from __future__ import annotations

from collections.abc import Sequence

from ganmix.search.recipe import ALLOCATIONS, RecipeError


def synthetic_total(ratio: float, train_size: int) -> int:
    """ratio x |train| synthetic images, rounded half up (0 when ratio is 0)."""
    return int(ratio * train_size + 0.5)


def allocate(total: int, class_counts: Sequence[int], mode: str) -> list[int]:
    """Split `total` synthetic images over classes.

    proportional: in proportion to the real train counts, so the class balance is unchanged.
    balance: water-filling; the smallest classes are raised first, toward the majority count, and
    whatever is left once every class is level is spread evenly. Both sum to exactly `total`.
    """
    if mode not in ALLOCATIONS:
        raise RecipeError(f"allocation must be one of {list(ALLOCATIONS)}, got {mode!r}")
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    counts = list(class_counts)
    if total == 0:
        return [0] * len(counts)
    if mode == "proportional":
        return _largest_remainder([total * c / sum(counts) for c in counts], total)
    return _water_fill(total, counts)


def _water_fill(total: int, counts: list[int]) -> list[int]:
    # Find the integer level L where raising every class below it to L costs at most `total`.
    order = sorted(counts)
    level, used = order[0], 0
    for i in range(1, len(order) + 1):
        width = i  # classes at or below the current level
        next_level = order[i] if i < len(order) else None
        room = (next_level - level) * width if next_level is not None else None
        if room is None or used + room > total:
            level += (total - used) // width
            break
        used += room
        level = next_level
    alloc = [max(0, level - c) for c in counts]
    # Hand out the few images left over by integer division one by one, smallest classes first.
    leftover = total - sum(alloc)
    for idx in sorted(range(len(counts)), key=lambda j: (counts[j] + alloc[j], j))[:leftover]:
        alloc[idx] += 1
    return alloc


def _largest_remainder(shares: list[float], total: int) -> list[int]:
    floors = [int(s) for s in shares]
    leftover = total - sum(floors)
    by_remainder = sorted(range(len(shares)), key=lambda j: (-(shares[j] - floors[j]), j))
    for idx in by_remainder[:leftover]:
        floors[idx] += 1
    return floors
