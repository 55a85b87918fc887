"""A study's progress as the driver prints it: one line per trial and epoch, and the time left.

torchreid and fast-reid print the loss, the speed and the time left as they train; a study
does the same per trial (``epoch 3/15: loss 2.31, 812 img/s, trial ~40 s left, study ~3 min
left``). Trials that finish epochs in a blink would flood the terminal, so a trial prints an
ordinary epoch at most once per ``min_interval`` seconds; its evaluation epochs and its last
epoch always print.

The time left is work left over speed, both counted in epochs, so it moves smoothly from line
to line (the former estimate, mean trial duration x trials left, stood still for the whole of
the first trial and then jumped):

* a trial's seconds per epoch: wall-clock time since it started (or resumed) over the epochs
  it has reported since, evaluation and checkpoints included;
* the study's seconds per epoch: the same pooled over every trial seen, divided by the number
  of trials that run side by side (the most seen running at once);
* the study's time left: the epochs left of the running trials plus those of the trials not
  started, at that pace, and never less than the slowest running trial's own time left.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from search_spaces.metrics import EVALUATION_MARKER, IMAGES_PER_SECOND, LOSS, MAP, RANK1

PROGRESS_SECONDS_ENV = "REID_ORCH_PROGRESS_SECONDS"
DEFAULT_MIN_INTERVAL = 10.0


def format_duration(seconds: float) -> str:
    """A duration as people read it: seconds under 90 s, minutes under 90 min, else hours."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def min_interval_from_env() -> float:
    """Seconds between two ordinary epoch lines of one trial (``REID_ORCH_PROGRESS_SECONDS``;
    0 prints every epoch)."""
    try:
        return max(0.0, float(os.environ.get(PROGRESS_SECONDS_ENV, DEFAULT_MIN_INTERVAL)))
    except ValueError:
        return DEFAULT_MIN_INTERVAL


@dataclass
class _Trial:
    epochs: int  # the trial's total
    started: float  # when this launch started (or resumed) it
    first_epoch: int  # the epoch it started after (0, or its checkpoint's)
    epoch: int = 0  # the last epoch reported
    reported_at: float | None = None
    printed_at: float | None = None
    done: bool = False

    @property
    def epochs_run(self) -> int:
        return max(0, self.epoch - self.first_epoch)

    def seconds(self, now: float) -> float:
        return (self.reported_at if self.reported_at is not None else now) - self.started

    def seconds_per_epoch(self) -> float | None:
        return self.seconds(0.0) / self.epochs_run if self.epochs_run and self.reported_at is not None else None


class StudyProgress:
    """Per-trial epoch lines and the study's time left; ``clock`` is injectable for tests."""

    def __init__(
        self,
        total_trials: int,
        pending_epochs: Callable[[], float] | None = None,
        *,
        min_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total_trials = total_trials
        # Epochs of the trials not started yet (None: as many per trial as the started ones).
        self.pending_epochs = pending_epochs
        self.min_interval = min_interval_from_env() if min_interval is None else min_interval
        self.clock = clock
        self.trials: dict[str, _Trial] = {}
        self.most_running = 1

    # -- what the recorder tells it -----------------------------------------------------------
    def start(self, key: str, epochs: int, from_epoch: int = 0) -> None:
        """Trial ``key`` (of ``epochs`` epochs) starts now, after ``from_epoch`` (a resume)."""
        trial = self.trials.get(key)
        if trial is None or trial.done:
            self.trials[key] = _Trial(epochs=epochs, started=self.clock(), first_epoch=from_epoch, epoch=from_epoch)
        self.most_running = max(self.most_running, self.running)

    def restart(self, key: str, from_epoch: int) -> None:
        """Tune starts the trial again (after a failure) from ``from_epoch``."""
        trial = self.trials.get(key)
        if trial is not None:
            trial.started, trial.first_epoch, trial.epoch, trial.reported_at = self.clock(), from_epoch, from_epoch, None

    def finish(self, key: str) -> None:
        trial = self.trials.get(key)
        if trial is not None:
            trial.done = True

    def epoch_line(self, key: str, label: str, epoch: int, metrics: Mapping[str, float]) -> str | None:
        """Record epoch ``epoch`` of trial ``key``; the line to print, or None while the trial
        printed less than ``min_interval`` seconds ago (evaluation and last epochs always print)."""
        trial = self.trials.get(key)
        if trial is None:
            self.start(key, epoch)
            trial = self.trials[key]
        now = self.clock()
        if epoch <= trial.epoch:  # a retried trial reports its re-run epochs again: time it anew
            trial.started, trial.first_epoch = now, epoch
        trial.epoch, trial.reported_at = epoch, now
        evaluated = EVALUATION_MARKER in metrics
        due = trial.printed_at is None or now - trial.printed_at >= self.min_interval
        if not (evaluated or epoch >= trial.epochs or due):
            return None
        trial.printed_at = now
        parts = [f"loss {metrics.get(LOSS, float('nan')):.3f}", f"{metrics.get(IMAGES_PER_SECOND, 0):.0f} img/s"]
        if evaluated:
            parts.append(f"rank-1 {100 * metrics.get(RANK1, float('nan')):.1f}% mAP {100 * metrics.get(MAP, float('nan')):.1f}%")
        left = self.trial_seconds_left(key)
        if left is not None and epoch < trial.epochs:
            parts.append(f"trial ~{format_duration(left)} left")
        study_left = self.seconds_left()
        if study_left is not None:
            parts.append(f"study ~{format_duration(study_left)} left")
        return f"  {label} epoch {epoch}/{trial.epochs}: " + ", ".join(parts)

    # -- estimates ----------------------------------------------------------------------------
    @property
    def running(self) -> int:
        return sum(not t.done for t in self.trials.values())

    def trial_seconds_left(self, key: str) -> float | None:
        trial = self.trials[key]
        pace = trial.seconds_per_epoch()
        return None if pace is None else pace * max(0, trial.epochs - trial.epoch)

    def seconds_per_epoch(self) -> float | None:
        """Pooled wall-clock seconds per epoch of one trial, over every trial seen."""
        seconds = sum(t.seconds(0.0) for t in self.trials.values() if t.epochs_run and t.reported_at is not None)
        epochs = sum(t.epochs_run for t in self.trials.values() if t.reported_at is not None)
        return seconds / epochs if epochs else None

    def seconds_left(self) -> float | None:
        """The study's time left (module docstring); None before any trial reported an epoch."""
        pace = self.seconds_per_epoch()
        if pace is None:
            return None
        live = [t for t in self.trials.values() if not t.done]
        not_started = max(0, self.total_trials - len(self.trials))
        if self.pending_epochs is not None:
            pending = self.pending_epochs()
        else:
            known = [t.epochs for t in self.trials.values()]
            pending = not_started * (sum(known) / len(known)) if known else 0.0
        epochs_left = sum(max(0, t.epochs - t.epoch) for t in live) + pending
        slowest = max((self.trial_seconds_left(key) or 0.0 for key, t in self.trials.items() if not t.done), default=0.0)
        return max(slowest, epochs_left * pace / max(1, self.most_running))


_COUNT = re.compile(r"^(?P<what>.*?)(?P<done>\d+)/(?P<total>\d+) (?P<noun>\w+)$")


class CountedProgress:
    """A ``progress`` callback for long steps that report ``decoded 80/800 images`` per split:
    the counts of the splits are added up and printed as one line when the step ends
    (:meth:`summary`); a step that runs long prints its running count at most once per
    ``min_interval`` seconds. Other messages pass through."""

    def __init__(self, echo: Callable[[str], None], *, min_interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.echo = echo
        self.min_interval = min_interval
        self.clock = clock
        self.started = self.printed = clock()
        self.counts: dict[tuple[str, str], list[int]] = {}  # (what, noun) -> [done in finished splits, done, total]

    def __call__(self, message: str) -> None:
        match = _COUNT.match(message)
        if match is None:
            self.echo(f"  {message}")
            return
        key = (match["what"], match["noun"])
        done, total = int(match["done"]), int(match["total"])
        count = self.counts.setdefault(key, [0, 0, 0])
        if done <= count[1] or total != count[2]:  # the next split
            count[0] += count[1]
        count[1], count[2] = done, total
        now = self.clock()
        if now - self.printed >= self.min_interval:
            self.printed = now
            self.echo(f"  {self._counts()} ...")

    def _counts(self) -> str:
        return ", ".join(f"{what}{finished + done} {noun}" for (what, noun), (finished, done, _) in self.counts.items())

    def summary(self) -> str:
        """What the step did and how long it took, e.g. ``decoded 1680 images in 2.1 s``."""
        return f"{self._counts() or 'done'} in {self.clock() - self.started:.1f} s"
