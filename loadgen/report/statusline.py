"""A one-line live status on a terminal, written with plain escape codes.

Rendering through rich costs ~10 ms a refresh, which in a load generator's event loop
delays requests and distorts the very latency being measured; a carriage return and a
short string cost microseconds. Off when stderr is not a terminal.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


class StatusLine:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self._shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + text[: width - 1] + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *_: object) -> None:
        self.clear()
