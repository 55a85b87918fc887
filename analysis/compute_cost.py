"""What a study's rows cost: GPU-hours, or CPU-hours where no GPU was used.

Every trial row records its compute (``wall_seconds`` over all its attempts, times the GPUs
and CPUs it held: ``gpu_seconds``, ``cpu_seconds``; :mod:`orchestrator.recorder`). A table row
(a variant) costs the sum over every trial recorded for it -- failed attempts and forced reruns
included, since they were paid for -- and the study the sum over its rows. Rows written before
compute was recorded have none and are counted as such (``unrecorded``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from search_spaces.metrics import CPU_SECONDS, GPU_SECONDS


@dataclass(frozen=True)
class Compute:
    """Hours of GPU and CPU over ``trials`` recorded trials; ``unrecorded`` trials had none."""

    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    trials: int = 0
    unrecorded: int = 0

    def __add__(self, other: "Compute") -> "Compute":
        return Compute(
            self.gpu_hours + other.gpu_hours,
            self.cpu_hours + other.cpu_hours,
            self.trials + other.trials,
            self.unrecorded + other.unrecorded,
        )

    @property
    def on_gpu(self) -> bool:
        return self.gpu_hours > 0

    def text(self) -> str:
        """``1.3 GPU-h``, or ``0.42 CPU-h`` where no GPU was used; ``-`` when nothing was recorded."""
        if not self.trials:
            return "-"
        return f"{hours(self.gpu_hours)} GPU-h" if self.on_gpu else f"{hours(self.cpu_hours)} CPU-h"


def hours(value: float) -> str:
    """Hours with the precision a budget is read at."""
    if value >= 10:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _seconds(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def trial_compute(row: Mapping[str, Any]) -> Compute:
    """One trial row's compute."""
    cpu, gpu = _seconds(row, CPU_SECONDS), _seconds(row, GPU_SECONDS)
    if cpu is None and gpu is None:
        return Compute(unrecorded=1)
    return Compute((gpu or 0.0) / 3600, (cpu or 0.0) / 3600, trials=1)


def compute_by_variant(rows: Iterable[Mapping[str, Any]]) -> dict[str, Compute]:
    """variant -> the compute of every trial row recorded for it."""
    out: dict[str, Compute] = {}
    for row in rows:
        variant = str(row.get("variant"))
        out[variant] = out.get(variant, Compute()) + trial_compute(row)
    return out


def study_compute(rows: Iterable[Mapping[str, Any]]) -> Compute:
    """The whole study's compute."""
    total = Compute()
    for row in rows:
        total = total + trial_compute(row)
    return total


def compute_note(rows: list[Mapping[str, Any]]) -> str | None:
    """The table's footnote on compute, or None when no row recorded any."""
    total = study_compute(rows)
    if not total.trials:
        return None
    what = "GPU-hours" if total.on_gpu else "CPU-hours (no GPU was used)"
    text = (
        f"Compute: {total.text()} in all, {what}: each trial's wall time, every attempt, times the "
        f"{'GPUs' if total.on_gpu else 'CPUs'} it held, summed over {total.trials} trials (failed ones included)"
    )
    if total.unrecorded:
        text += f"; {total.unrecorded} trials recorded before compute was, not counted"
    return text + "."
