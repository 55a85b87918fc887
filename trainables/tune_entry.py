"""The Ray Tune function trainable: a thin shell around :func:`trainables.trial.run_trial`.

Tune passes ``{"trial": {"config": <TrialConfig as dict>, "hash": ...}, "runtime": {...}}``; the decoded datasets come
from the object store through ``tune.with_parameters`` so every trial on a node shares one
copy instead of decoding its own.
"""

from __future__ import annotations

import warnings
from typing import Any

from search_spaces.trial_config import TrialConfig
from trainables.data.datasets import ReIDData, dataset_key
from trainables.trial import RuntimeOptions, run_trial


def tune_trainable(config: dict[str, Any], datasets: dict[str, ReIDData] | None = None) -> None:
    from ray import tune

    trial_config = TrialConfig.model_validate(config["trial"]["config"])
    runtime = RuntimeOptions(**config.get("runtime", {}))
    data = (datasets or {}).get(dataset_key(trial_config.dataset))
    with warnings.catch_warnings():
        # Arrays from the object store are read-only views; trials never write to them.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        run_trial(trial_config, data, report=tune.report, runtime=runtime)
