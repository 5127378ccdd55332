"""Values from the target shown in one line: the few most frequent, each cut to a readable length.

An APP_ID comes from whatever answers: a request id in its place gives every answer its own,
and one value can be 100,000 characters. A message names the top :data:`MAX_LISTED` and says
how many others there were; a value longer than :data:`MAX_CHARS` is cut, with its length said.
"""

from __future__ import annotations

from collections.abc import Mapping

from loadgen.shown import shown

__all__ = ["MAX_CHARS", "MAX_LISTED", "brief_counts", "brief_value", "brief_values"]

MAX_LISTED = 5
MAX_CHARS = 40


def brief_value(value: str, limit: int = MAX_CHARS, quoted: bool = True) -> str:
    """``value`` as an input is shown (loadgen.shown), at the shorter length of a list's item."""
    return shown(value, limit, quoted)


def _most_frequent(counts: Mapping[str, int]) -> list[str]:
    return sorted(counts, key=lambda a: (-counts[a], a))


def brief_values(counts: Mapping[str, int], limit: int = MAX_LISTED) -> str:
    """The most frequent values first: ``'a', 'b' and 7 others``."""
    seen = _most_frequent(counts)
    listed = ", ".join(brief_value(v) for v in seen[:limit])
    return listed + (f" and {len(seen) - limit:,} others" if len(seen) > limit else "")


def brief_counts(counts: Mapping[str, int], limit: int = MAX_LISTED) -> str:
    """The most frequent values with their counts: ``'a' x30, 'b' x2 and 7 others (9 answers)``."""
    seen = _most_frequent(counts)
    listed = ", ".join(f"{brief_value(v)} x{counts[v]:,}" for v in seen[:limit])
    if len(seen) > limit:
        rest = sum(counts[v] for v in seen[limit:])
        listed += f" and {len(seen) - limit:,} others ({rest:,} answers)"
    return listed
