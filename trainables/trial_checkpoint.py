"""Checkpoints of a trial while it trains, so a trial whose worker dies resumes where it stood.

Every ``every`` epochs the trainable writes :meth:`Trainer.state_dict` (model, optimizer, the
last epoch and its report, the augmenter's and the global random generators, each hook's state:
the SWA/SWAG averager, a center loss; the sampler's position is the epoch itself) into a folder
that it hands to Ray Tune with that epoch's report (``tune.report(metrics, checkpoint=...)``).
Tune copies it to the study's storage and, when the trial fails (its node lost, its worker
killed), starts the trial again -- on any node -- with ``tune.get_checkpoint()`` set; the new
trainer loads the state and trains on from the next epoch, reporting what the uninterrupted
trial would have (``tests/trainables/test_engine.py``). At most ``every`` epochs are re-run.

The same folder resumes a trial whose driver died (``orchestrator resume``, see
:mod:`orchestrator.resume_points`): beside the state it holds the trial's reports so far
(``history.json``, readable without torch), from which the new driver rebuilds the curve rows of
the epochs before it.

Nothing here imports Ray: the folder is the contract, so a checkpoint can be inspected or
loaded without a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainables.engine import Trainer

STATE_FILE = "trainer.pt"
HISTORY_FILE = "history.json"
CONFIG_HASH_KEY = "config_hash"  # in history.json: the planned trial the checkpoint belongs to


def checkpoint_due(epoch: int, every: int, total_epochs: int) -> bool:
    """Whether the report of ``epoch`` carries a checkpoint: every ``every`` epochs (0: never),
    but not after the last epoch (the trial is done; its results are in the report)."""
    return every > 0 and epoch % every == 0 and epoch < total_epochs


def save_trainer(trainer: Trainer, folder: str | Path, config_hash: str | None = None) -> Path:
    """Write the trainer's state into ``folder``; returns the file. Call it between epochs.

    ``config_hash`` (a planned trial's) goes into ``history.json``: the checkpoint then names its
    trial itself. Tune's ``params.json`` reaches the storage only when the driver syncs its
    files, so a driver killed soon after a trial's first checkpoint leaves a checkpoint without
    one, which a relaunch could not match to its trial."""
    path = Path(folder) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(trainer.state_dict(), tmp)
    tmp.replace(path)  # a folder never holds half a state
    history: dict[str, Any] = {"epoch": trainer.epoch, "reports": trainer.history}
    if config_hash is not None:
        history[CONFIG_HASH_KEY] = config_hash
    (Path(folder) / HISTORY_FILE).write_text(json.dumps(history), encoding="utf-8")
    return path


def parse_history(text: str) -> tuple[int, list[dict[str, Any]]]:
    """``(epoch, reports)`` of a checkpoint's ``history.json``: the epoch it stands at and the
    trial's report of every epoch up to it."""
    data = json.loads(text)
    reports = [dict(report) for report in data["reports"]]
    return int(data["epoch"]), reports


def history_config_hash(text: str) -> str | None:
    """The planned config hash a checkpoint's ``history.json`` names; None in checkpoints
    written before it was recorded, and in a search sample's."""
    value = json.loads(text).get(CONFIG_HASH_KEY)
    return value if isinstance(value, str) else None


def load_trainer(trainer: Trainer, folder: str | Path) -> int:
    """Continue ``trainer`` (built from the same config) from the state in ``folder``; returns
    the epoch it stood at, so training goes on from the next one."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trial state in the checkpoint {folder} (expected {STATE_FILE})")
    # Our own file: it holds numpy and Python random states besides tensors. Loaded on the CPU
    # (random states must stay there); the model and optimizer copy theirs to their device,
    # hooks' tensors (the SWA averages) are moved there, as a trial on another node may have
    # another device than the one that saved it.
    state = torch.load(path, map_location="cpu", weights_only=False)
    state["hooks"] = _to_device(state["hooks"], trainer.device)
    trainer.load_state_dict(state)
    return trainer.epoch


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    return value
