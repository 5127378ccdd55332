"""A service name as Consul can be asked about it: checked before it goes into an API path
(``/v1/config/service-splitter/NAME``) or a file name (the shift's lock).

Consul accepts almost any name but warns that only letters, digits and dashes are DNS-safe;
loadgen also takes ``_`` and ``.`` inside a name. A ``/``, a space, a control character or an
empty name cannot be a service loadgen should touch: one line, exit 2.
"""

from __future__ import annotations

import re

from loadgen.errors import UsageError
from loadgen.safe_text import one_line

__all__ = ["check_service_name"]

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")


def check_service_name(name: str, option: str = "--service") -> str:
    """``name`` when it is a service name (letters, digits, ``-``, ``_``, ``.`` inside, at most
    128 characters); else one line (UsageError, exit 2)."""
    if not _NAME.match(name):
        shown = one_line(repr(name), 80)
        raise UsageError(f"{option} {shown} is not a service name: letters, digits and - (also _ and . inside), "
                         "starting and ending with a letter or digit, at most 128 characters")
    return name
