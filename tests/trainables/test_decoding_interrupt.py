"""Ctrl-C while a dataset decodes ends the decoding at once (``trainables.data.threads``).

``ThreadPoolExecutor.map`` queued every image up front: on Ctrl-C the call waited while the
workers took each cancelled image off the queue (100,000 images: 6-9 s here, a real dataset far
longer), and an interrupt landing inside ``submit`` left the queue's lock taken, so that the
process hung at exit. The test runs the decoding in a process of its own, as the CLI does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainables.data.threads import run_on_threads

SCRIPT = r"""
import os, signal, sys, threading, time
from trainables.data import arrays
from trainables.data.market import read_market_split

images = read_market_split(sys.argv[1], "train")
records = [images[i % len(images)] for i in range(100_000)]  # seconds of decoding
decoded = [0]
real = arrays._decode_image

def decode(path, height, width):
    decoded[0] += 1
    return real(path, height, width)

arrays._decode_image = decode
pressed = []

def press_ctrl_c():
    while decoded[0] < int(sys.argv[2]):
        time.sleep(0.002)
    pressed.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=press_ctrl_c, daemon=True).start()
try:
    arrays.load_split(records, 64, 32, num_threads=2)
except KeyboardInterrupt:
    waited, at_return = time.monotonic() - pressed[0], decoded[0]
    time.sleep(0.5)
    print(waited, at_return, decoded[0], flush=True)
    sys.exit(130)
print("decoded everything before the interrupt")
"""


@pytest.mark.parametrize("after", [1, 2000])  # early: while the first items start; later: in full flow
def test_ctrl_c_during_decoding_returns_at_once_and_the_process_exits(tiny_market, after):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_market), str(after)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 130, result.stdout + result.stderr[-2000:]
    waited, at_return, later = result.stdout.split()
    assert float(waited) < 3.0  # before: 6-9 s idle, or a hang at exit
    assert int(at_return) < 50_000
    assert int(later) - int(at_return) <= 2  # each thread finished only the image it was on


def test_results_come_in_order_and_an_error_in_a_worker_is_raised():
    assert run_on_threads(lambda i: i * i, 1000, threads=3) == [i * i for i in range(1000)]
    seen = []
    assert run_on_threads(lambda i: i, 0, on_progress=seen.append) == [] and seen == []

    def fails(i: int) -> int:
        if i == 500:
            raise ValueError("item 500 is broken")
        return i

    with pytest.raises(ValueError, match="item 500 is broken"):
        run_on_threads(fails, 1000, threads=2)
    progress: list[int] = []
    run_on_threads(lambda i: i, 100, threads=2, on_progress=progress.append)
    assert progress[-1] == 100 and progress == sorted(progress)
