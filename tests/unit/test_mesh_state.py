"""The run directory's bookkeeping and what tells a mesh is (half) up, without a mesh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from loadgen.interrupts import Terminated, install
from loadgen.mesh.runtime.process import signals_held


# -- a moment Ctrl-C must not cut ------------------------------------------------------------------
@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_in_a_held_moment_is_acted_on_after_it(signum, raised):
    previous = signal.getsignal(signal.SIGTERM)
    install()  # as the CLI does: SIGTERM raises Terminated
    finished = False
    try:
        with pytest.raises(raised), signals_held():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            os.kill(os.getpid(), signum)
            time.sleep(0.1)
            finished = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished
    # A part started in the held moment still stops on SIGTERM (it did not inherit a blocked mask).
    child.terminate()
    assert child.wait(timeout=5) == -signal.SIGTERM
