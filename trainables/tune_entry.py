"""The Ray Tune function trainable: a thin shell around :func:`trainables.trial.run_trial`.

Two shapes of Tune config arrive here:
- a planned trial: ``{"trial": {"config": <TrialConfig as dict>, "hash": ...}}``;
- a search sample: ``{"search": {<dotted axis>: value}}``, resolved against the study's recipe
  (passed with ``tune.with_parameters``) at the search seed.
The decoded datasets also come through ``tune.with_parameters``, so every trial on a node
shares one copy from the object store instead of decoding its own (the ``eval.targets``' query
and gallery among them); so do the study's plugins
(``{name: identity}``), loaded before the trial config is read.

Workers are reused from one trial to the next (``reuse_actors``: torch and timm are imported
once per worker, not once per trial); each trial starts by putting the process-wide state back
(:mod:`trainables.process_state`).

Every ``checkpoint_every`` epochs (0: never) a report carries the trainer's state as a Tune
checkpoint (:mod:`trainables.trial_checkpoint`); a trial that Tune starts again after a failure
-- its worker or its node lost -- loads the latest one and trains on from the next epoch. A
planned trial that an earlier launch left interrupted (its driver died) starts from that
launch's latest checkpoint, ``resume_from[hash]`` (:mod:`orchestrator.resume_points`).
"""

from __future__ import annotations

import tempfile
import warnings
from typing import Any, Sequence

from search_spaces import TrialConfig, resolve_sample
from search_spaces.metrics import EPOCH, NODE_ID
from search_spaces.plugins import load_recorded
from trainables import process_state
from trainables.data.datasets import ReIDData, dataset_key, load_targets
from trainables.engine import HookBase, Trainer
from trainables.trial import RuntimeOptions, build_trainer
from trainables.trial_checkpoint import checkpoint_due, load_trainer, save_trainer


def trial_config_from(config: dict[str, Any], recipe: dict[str, Any] | None, seed: int | None) -> TrialConfig:
    """The resolved trial config of a Tune config of either shape."""
    if "trial" in config:
        return TrialConfig.model_validate(config["trial"]["config"])
    if recipe is None or seed is None:
        raise ValueError("a search sample needs the study's recipe and seed")
    return resolve_sample(recipe, config["search"], seed).config


def tune_trainable(
    config: dict[str, Any],
    datasets: dict[str, ReIDData] | None = None,
    runtime: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    seed: int | None = None,
    plugins: dict[str, str] | None = None,
    checkpoint_every: int = 0,
    hooks: Sequence[HookBase] = (),
    resume_from: dict[str, str] | None = None,
    resume_on_s3: bool = False,
) -> None:
    """Train one Tune trial; ``hooks`` are called after the trial's own (tests plug faults in)."""
    import ray
    from ray import tune

    process_state.restore()  # as a fresh worker would start, whatever the previous trial left
    # The study's plugins first: their config sections must be registered before the trial
    # config is validated. On a cluster their files arrive in the runtime environment.
    load_recorded(plugins or {})

    node_id = ray.get_runtime_context().get_node_id()
    trainer: Trainer | None = None

    def report(metrics: dict[str, Any]) -> None:
        # The node travels with each result so the study records where every trial ran.
        result = {**metrics, NODE_ID: node_id}
        if trainer is None or not checkpoint_due(int(metrics[EPOCH]), checkpoint_every, trainer.plan.epochs):
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="reid-trial-") as folder:
            save_trainer(trainer, folder, config_hash=planned_hash)
            # Tune copies the folder to the study's storage before report returns.
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))

    planned_hash = config.get("trial", {}).get("hash")
    trial_config = trial_config_from(config, recipe, seed)
    data = (datasets or {}).get(dataset_key(trial_config.dataset, trial_config.augment))
    targets = load_targets(trial_config, datasets)  # eval.targets: the driver decoded them too
    with warnings.catch_warnings():
        # Arrays from the object store are read-only views; trials never write to them.
        warnings.filterwarnings("ignore", message=".*not writable.*")

        def build() -> Trainer:
            return build_trainer(trial_config, data, report=report, runtime=RuntimeOptions(**(runtime or {})), hooks=hooks, targets=targets)

        trainer = build()
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                load_trainer(trainer, folder)
        elif (earlier := (resume_from or {}).get(planned_hash or "")) is not None:
            if not resume_earlier(trainer, earlier, resume_on_s3):
                trainer = build()  # a state that failed to load may have been applied in part
        trainer.train()


def resume_earlier(trainer: Trainer, path: str, on_s3: bool) -> bool:
    """Load an earlier launch's checkpoint folder (``path`` in Tune's storage); on failure say
    so and return False: the trial then starts from epoch 1 rather than not at all."""
    from ray import tune

    filesystem = None
    if on_s3:
        from storage.result_store import s3_filesystem

        filesystem = s3_filesystem()
    try:
        with tune.Checkpoint(path, filesystem=filesystem).as_directory() as folder:
            epoch = load_trainer(trainer, folder)
    except Exception as err:  # noqa: BLE001 - any unreadable state: train from scratch instead
        print(f"cannot resume from {path} ({type(err).__name__}: {err}); starting from epoch 1", flush=True)
        return False
    print(f"resuming from {path}: epoch {epoch + 1} of {trainer.plan.epochs} next", flush=True)
    return True
