"""Shared by every test."""

import signal

# A shell that starts the suite in the background (CI runners, `nohup`, `cmd &`) hands it Ctrl-C
# ignored, and every process it starts would inherit that: the tests that press Ctrl-C on a
# `loadgen` child would then test nothing. Python's own handler is reset to the default in
# exec'd children, so each child reacts to Ctrl-C as it would in a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)
