"""Learning-rate schedule: linear warm-up, then step decay.

Generalises Robust-ReID eq. 1 (``lr = base * t / 10`` for ``t <= 10``, then decays by 10x at
fixed epochs) and the Bag of Tricks warm-up: over the first ``warmup_epochs`` epochs the rate
rises linearly from ``base * warmup_factor`` (epoch 1) to ``base`` (epoch ``warmup_epochs``);
after each epoch in ``steps`` it is multiplied by ``gamma``. With ``warmup_epochs=10,
warmup_factor=0.1, steps=(150, 225), gamma=0.1`` this is exactly eq. 1.
"""

from __future__ import annotations


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
