"""SIGTERM stops a command the way Ctrl-C does.

SIGTERM is what ``kill`` sends and what Kubernetes sends to a pod's main process before it
evicts the pod (then SIGKILL after the grace period, 30 s by default). Python's default ends
the process at once; ``ray.init`` replaces that in the driver with Ray's own handler
(``ray/_private/node.py``, ``_register_shutdown_hooks``): it drains the node for up to
``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S`` (30 s), kills every Ray process the driver started
while Tune is still using them and calls ``sys.exit(1)`` wherever the main thread is. The
launch then ended with Ray's crash dump (exit 134) and its MLflow runs FAILED.

Here the first SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main
thread, so every path that handles Ctrl-C handles it too (:func:`received_sigterm` tells the
two apart): runs marked KILLED, the study lock released, Ray shut down, one line, and exit
status 143 (128 + 15, what a shell reports for a process ended by SIGTERM). A second SIGTERM
ends the process at once (the signal's default action), for a user who does not want to wait
for the clean-up.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

TERMINATED_EXIT = 128 + int(signal.SIGTERM)  # 143


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (see :func:`received_sigterm`)."""


_state = {"active": False, "received": False}


def _on_sigterm(signum: int, frame: object) -> None:
    _state["received"] = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process at once
    raise Terminated()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread; the
    previous handler is put back afterwards."""
    if not _main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    _state.update(active=True, received=False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:  # ``received`` stays readable for the command's error handling, until the next one
        _state["active"] = False
        signal.signal(signal.SIGTERM, previous)


def received_sigterm() -> bool:
    """Whether the running (or just ended) command got SIGTERM. Ask this rather than test for
    :class:`Terminated`: Ray's compiled code turns an exception raised by a signal handler
    during one of its blocking calls into a plain ``KeyboardInterrupt``."""
    return _state["received"]


def take_back_sigterm() -> None:
    """After ``ray.init``, which installs Ray's handler in place of ours: ours again, unless no
    command set it or a first SIGTERM came already (the next one must end the process)."""
    if _main_thread() and _state["active"] and not _state["received"]:
        signal.signal(signal.SIGTERM, _on_sigterm)
