"""SIGTERM as a command sees it (:mod:`orchestrator.signals`), in a real process that signals
itself: the first one is an interruption the command handles, the second ends the process at
once. A real driver stopped by SIGTERM mid-trial is in tests/integration/test_interrupts.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from orchestrator.signals import sigterm_as_interrupt

SCRIPT = textwrap.dedent(
    """
    import os, signal, time
    from orchestrator.signals import Terminated, received_sigterm, sigterm_as_interrupt

    with sigterm_as_interrupt():
        print("received before:", received_sigterm(), flush=True)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        except Terminated:
            print("stopped like Ctrl-C:", isinstance(Terminated(), KeyboardInterrupt), received_sigterm(), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)  # the second one, during the clean-up
        time.sleep(30)
        print("still running", flush=True)
    """
)


def test_the_first_sigterm_interrupts_and_the_second_ends_the_process_at_once():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 25  # neither sleep ran out
    assert result.stdout.splitlines() == ["received before: False", "stopped like Ctrl-C: True True"], result.stderr
    assert result.returncode == -signal.SIGTERM  # ended by the signal itself


def test_the_previous_handler_is_back_after_a_command():
    def previous(signum, frame):  # pragma: no cover - never called
        pass

    before = signal.signal(signal.SIGTERM, previous)
    try:
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not previous
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, before)
