"""ACL tokens as the CLIs read them, checked before any request carries one.

The consul CLI strips the whitespace around a token (a token file ending in a newline, a
Kubernetes secret mounted with one); loadgen strips it from every source the same way. What is
left must be sendable as an HTTP header value: a line break, NUL or other control character,
or a non-ASCII character inside it cannot be, and h11 would refuse it with an error that
quotes the value. So such a token is refused here, in one line that names where it came from
(the variable or the file), never what it holds (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from loadgen.errors import ExitCode, LoadgenError

__all__ = ["env_token", "file_token", "header_token", "sendable"]


def sendable(token: str) -> bool:
    """``token`` can be an HTTP header value as it is."""
    # Visible ASCII, and spaces or tabs between them (RFC 9110 field-value, without obs-text).
    return all(c == "\t" or " " <= c <= "~" for c in token)


def header_token(raw: str, source: str, what: str = "a token") -> str | None:
    """``raw`` without the whitespace around it; None when nothing is left. One line naming
    ``source`` (exit 2) when what is left cannot be sent in an HTTP header."""
    token = raw.strip()
    if not token:
        return None
    if not sendable(token):
        raise LoadgenError(f"{source} holds {what} that cannot be sent in an HTTP header (a line break, control "
                           "or non-ASCII character inside it; only the whitespace around it is stripped): "
                           "fix it", ExitCode.USAGE)
    return token


def env_token(env: Mapping[str, str], name: str) -> str | None:
    """The token in the variable ``name`` (None when unset or blank, as the CLIs treat it)."""
    return header_token(env.get(name) or "", name)


def file_token(path: str, source: str) -> str:
    """The token in the file ``path`` (given by ``source``: a flag or a variable). An unreadable,
    empty, binary or otherwise unsendable file is one line naming the file (exit 2)."""
    named = f"{source} {path}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LoadgenError(f"{named} cannot be read: {exc.strerror or type(exc).__name__}", ExitCode.USAGE) from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise LoadgenError(f"{named} does not hold a token: it has bytes that are not ASCII text (a binary "
                           "file?)", ExitCode.USAGE) from None
    token = header_token(text, named)
    if token is None:
        raise LoadgenError(f"{named} is empty: it should hold an ACL token", ExitCode.USAGE)
    return token
