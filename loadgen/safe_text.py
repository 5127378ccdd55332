"""Text from outside (an agent's error body, an exception's message) made fit for one line of
output: no control characters, a bounded length, and never a secret.

An HTTP client's exception can quote the request it failed to send: h11's LocalProtocolError
says ``Illegal header value b'<the token>'``. :func:`describe_exception` names such an
exception by its type and a fixed description only, so no header value reaches a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["describe_exception", "one_line"]

# Terminal escape sequences (CSI "ESC [ ... letter", OSC "ESC ] ... BEL/ST") go whole; then C0
# and C1 controls, DEL and runs of whitespace become one space.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
LIMIT = 300

# Exceptions raised while a request is being built (httpx's and h11's): their text can quote a
# header value or a URL with its password. (A UnicodeError quotes one character at most.)
_QUOTE_THE_REQUEST = {"LocalProtocolError", "InvalidURL"}


def one_line(text: str, limit: int = LIMIT, secrets: Iterable[str | None] = ()) -> str:
    """``text`` on one line: control characters collapsed to a space, every secret replaced by
    ``***``, and cut to ``limit`` characters (``…`` marks the cut)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _CONTROL.sub(" ", _ESCAPES.sub("", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_exception(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """``Type: message`` for an error message, without anything of the request it was about:
    an exception that can quote the request (a header it could not encode) is named by type."""
    name = type(exc).__name__
    if name in _QUOTE_THE_REQUEST:
        return f"{name}: the request could not be sent as HTTP (a header or the URL is malformed; not shown)"
    text = one_line(str(exc), secrets=secrets)
    return f"{name}: {text}" if text else name
