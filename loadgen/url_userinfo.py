"""A user name and password in a URL (``http://user:pass@host/``) are refused, never echoed.

loadgen sends no basic auth: a password in ``--target`` (or an agent's address) would be
unused, and the URL is written into reports and JSON. So such a URL is one line naming the
option or variable it came from, with the credentials masked, and exit 2.
"""

from __future__ import annotations

import re

from loadgen.errors import ExitCode, LoadgenError

__all__ = ["has_userinfo", "refuse_userinfo", "without_userinfo"]

# scheme://USERINFO@host...: the userinfo ends at the last "@" before the path, query or fragment.
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")


def has_userinfo(url: str) -> bool:
    """``url`` names a user (and perhaps a password) before its host."""
    return _USERINFO.match(url.strip()) is not None


def without_userinfo(url: str) -> str:
    """``url`` with its user name and password replaced by ``***``, for a message."""
    return _USERINFO.sub(r"\g<head>***@", url.strip(), count=1)


TARGET_HINT = "a header, if the target needs one: --header 'Authorization: ...'"


def refuse_userinfo(url: str, source: str, hint: str = TARGET_HINT) -> None:
    """One line naming ``source`` (exit 2) when ``url`` carries a user name or password;
    ``hint`` says where credentials go instead."""
    if has_userinfo(url):
        raise LoadgenError(f"{source} {without_userinfo(url)} holds a user name or password: loadgen does not "
                           f"send basic auth and does not write credentials into reports; give the URL without "
                           f"them ({hint})", ExitCode.USAGE)
