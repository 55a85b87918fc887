"""Learning-rate schedules: linear warm-up then step decay, and the cyclic cosine of SWA/SWAG.

Generalises Robust-ReID eq. 1 (``lr = base * t / 10`` for ``t <= 10``, then decays by 10x at
fixed epochs) and the Bag of Tricks warm-up: over the first ``warmup_epochs`` epochs the rate
rises linearly from ``base * warmup_factor`` (epoch 1) to ``base`` (epoch ``warmup_epochs``);
after each epoch in ``steps`` it is multiplied by ``gamma``. With ``warmup_epochs=10,
warmup_factor=0.1, steps=(150, 225), gamma=0.1`` this is exactly eq. 1.
"""

from __future__ import annotations

import math


def learning_rate(
    epoch: int,
    *,
    base_lr: float,
    warmup_epochs: int,
    warmup_factor: float,
    steps: tuple[int, ...],
    gamma: float,
) -> float:
    """Learning rate for 1-based ``epoch``."""
    if warmup_epochs > 1 and epoch <= warmup_epochs:
        fraction = (epoch - 1) / (warmup_epochs - 1)
        return base_lr * (warmup_factor + (1.0 - warmup_factor) * fraction)
    decays = sum(1 for step in steps if epoch > step)
    return base_lr * gamma**decays


def cyclic_cosine_lr(epoch: int, *, peak_lr: float, cycle_epochs: int, decay: float) -> float:
    """Learning rate for 1-based ``epoch`` of the SWA/SWAG phase (Robust-ReID section 3.1:
    "cosine annealing learning rate scheduler with cycles = 15 of 35 epochs and cycle decay
    factor of 0.7 after each cycle").

    Cycle ``c = (epoch - 1) // cycle_epochs`` (0-based) starts at ``peak_lr * decay**c`` and
    anneals along a cosine towards 0: at position ``t = (epoch - 1) % cycle_epochs`` the rate is
    ``peak_lr * decay**c * (1 + cos(pi * t / cycle_epochs)) / 2``. The weights are averaged at
    the end of each cycle, i.e. after epochs where :func:`is_cycle_end` holds.
    """
    if epoch < 1 or cycle_epochs < 1:
        raise ValueError(f"epoch and cycle_epochs must be >= 1, got {epoch} and {cycle_epochs}")
    cycle, position = divmod(epoch - 1, cycle_epochs)
    return peak_lr * decay**cycle * 0.5 * (1.0 + math.cos(math.pi * position / cycle_epochs))


def is_cycle_end(epoch: int, cycle_epochs: int) -> bool:
    """Whether 1-based SWA-phase ``epoch`` is the last of its cycle."""
    return epoch % cycle_epochs == 0
