"""What of a user's input an error message shows: the value as repr, cut to its first characters.

An option's value goes into its one-line error so a person sees what was wrong, but a 100,000
character ``--expect`` must not become a 100,000 character line in a CI log.
"""

from __future__ import annotations

__all__ = ["SHOWN_CHARS", "shown"]

SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS, quoted: bool = True) -> str:
    """``repr(value)`` when its text is at most ``limit`` characters, else the repr of its first
    ``limit`` characters followed by '…' and how many were left out. ``quoted=False`` (a table
    cell): no quotes, control characters escaped all the same."""
    text = str(value)
    head = text[:limit]
    cut = repr(head) if quoted else head.encode("unicode_escape").decode("ascii")
    return cut if len(text) <= limit else f"{cut}… ({len(text) - limit:,} more characters)"
