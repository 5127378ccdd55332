"""Issue 25 items 1 and 12: an exception that can quote a request (a header value, a URL with a
password) is named by its type only; outside text is one bounded line without control bytes."""

from __future__ import annotations

import h11
import httpx
import pytest

from loadgen.safe_text import describe_exception, one_line

SECRET = "s3cr3t-tok"


@pytest.mark.parametrize("exc", [httpx.LocalProtocolError(f"Illegal header value b'{SECRET}\\n'"),
                                 h11.LocalProtocolError(f"Illegal header value b'{SECRET}\\x00'"),
                                 httpx.InvalidURL(f"Invalid URL http://u:{SECRET}@h")])
def test_an_error_about_the_request_is_named_by_type_only(exc):
    text = describe_exception(exc)
    assert SECRET not in text and text.startswith(type(exc).__name__)


def test_other_errors_keep_their_words_on_one_line_and_mask_a_secret():
    text = describe_exception(httpx.ConnectError(f"refused\n\x1b[31m {SECRET}"), secrets=[SECRET, None])
    assert text == "ConnectError: refused ***"
    assert one_line("\x1b]0;owned\x07\x1b[2Jboom\x1b[1;31mred") == "boomred"
    assert one_line("a\x00b\x9bc" + "x" * 400, limit=10) == "a b c" + "x" * 4 + "…"


def test_the_internal_error_line_never_quotes_a_header(monkeypatch, capsys):
    """A bug that lets h11's error escape still prints one line without the value (exit 70)."""
    from loadgen import cli as cli_module

    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)
    monkeypatch.delenv("LOADGEN_DEBUG", raising=False)

    @cli_module.cli.command("boom-test", hidden=True)
    def boom() -> None:
        raise h11.LocalProtocolError(f"Illegal header value b'{SECRET}\\n'")

    try:
        with pytest.raises(SystemExit) as info:
            cli_module.cli.main(["boom-test"], prog_name="loadgen")
    finally:
        cli_module.cli.commands.pop("boom-test", None)
    err = capsys.readouterr().err
    assert info.value.code == 70 and SECRET not in err and "LocalProtocolError" in err
