"""Run a function over many items on a few threads, so that Ctrl-C ends it at once.

Decoding a dataset (OpenCV releases the GIL) used ``ThreadPoolExecutor.map``, which queues every
item up front. A KeyboardInterrupt then either waited while the workers took each cancelled item
off the queue (100,000 images: seconds; a real dataset: far longer), or, landing while the main
thread held the queue's lock inside ``submit``, left it taken: the workers blocked on it for
ever and the interpreter hung at exit. Here the calling thread holds no lock at all: it polls
(``time.sleep``, where an interrupt is harmless) while the workers take indices from a shared
counter; on any exception it tells them to stop after the item each is on, waits for that
(milliseconds) and raises.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.02
STOP_WAIT_SECONDS = 2.0  # the longest one item may take to finish after Ctrl-C


def default_threads() -> int:
    return min(8, os.cpu_count() or 1)


def run_on_threads(
    work: Callable[[int], T], n: int, threads: int | None = None, on_progress: Callable[[int], None] | None = None
) -> list[T]:
    """``[work(0), ..., work(n - 1)]`` computed on ``threads`` daemon threads. ``on_progress(done)``
    is called on the calling thread as items finish (at most every poll, and once at the end).
    An exception in ``work`` is raised here after the other threads stop."""
    results: list = [None] * n
    indices = itertools.count()  # next() on it is atomic under the GIL
    stop = threading.Event()
    count = max(1, min(threads or default_threads(), n or 1))
    finished = [0] * count  # items done by each worker: each slot has one writer
    running = [True] * count
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        try:
            for index in indices:
                if index >= n or stop.is_set():
                    return
                results[index] = work(index)
                finished[slot] += 1
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread
            errors.append(err)
            stop.set()
        finally:
            running[slot] = False

    reported = 0
    try:
        for slot in range(count):
            threading.Thread(target=worker, args=(slot,), name=f"run-on-threads-{slot}", daemon=True).start()
        while any(running):
            time.sleep(POLL_SECONDS)
            done = sum(finished)
            if on_progress is not None and done != reported:
                reported = done
                on_progress(done)
    except BaseException:
        # The workers stop after the item each is on (milliseconds): wait that long, so that a
        # process exiting now does not pull native code (OpenCV) from under a running thread.
        stop.set()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while any(running) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS / 4)
        raise
    if errors:
        raise errors[0]
    if on_progress is not None and sum(finished) != reported:
        on_progress(sum(finished))
    return results


def every_tenth(n: int, report: Callable[[str], None] | None, text: Callable[[int], str]) -> Callable[[int], None] | None:
    """An ``on_progress`` that reports ``text(done)`` about every 10% of ``n`` items and at the end."""
    if report is None:
        return None
    step = max(1, n // 10)
    next_at = [step]

    def on_progress(done: int) -> None:
        if done >= next_at[0] or done == n:
            report(text(done))
            next_at[0] = (done // step + 1) * step

    return on_progress
