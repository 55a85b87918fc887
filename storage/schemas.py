"""Names and versions of the result tables.

``trials``  one row per finished trial: study, trial_id, config_hash, variant, changes (JSON),
            seed, status (completed | pruned | failed), error, every config field as a
            ``cfg.<dotted path>`` column (the ablation axes among them), the final metrics
            (rank1, rank5, rank10, rank20, rank50 up to max_rank, mAP, mINP,
            num_valid_queries, lowest/avg/std/spread camera q_mAP, g_mAP, rank1), timings
            (started_at, finished_at, train_seconds, eval_seconds, epochs_done, epochs_rerun:
            epochs trained twice after a trial resumed from its checkpoint), compute
            (wall_seconds over every attempt, the cpus and gpus it held, cpu_seconds and
            gpu_seconds: wall seconds times those), identity_version
            (the rule its config_hash was computed by; absent means 1, see
            ``search_spaces/identity.py``) and config_json (the whole resolved config).
``cameras`` one row per trial x camera x metric: study, trial_id, config_hash, variant, seed,
            epoch, camera, metric (q_mAP | g_mAP | rank1), value.
``curves``  one row per trial x reported epoch: study, trial_id, config_hash, variant, seed,
            epoch, loss terms, lr, images_per_second, and the evaluation metrics on
            evaluation epochs (null elsewhere).

Evaluation targets (``eval.targets``, cross-dataset evaluation after training) add no table:
a target labelled ``duke`` adds ``trials`` columns ``duke/<metric>`` for each final metric
above (``duke/rank1``, ``duke/mAP``, ``duke/mINP``, ``duke/num_valid_queries``,
``duke/lowest_q_mAP``, ``duke/lowest_q_mAP_camera``, ``duke/avg_g_mAP``, ...), ``cameras`` rows
whose metric is ``duke/q_mAP`` | ``duke/g_mAP`` | ``duke/rank1`` (camera: the target's own camera
id), and the same ``duke/*`` columns on the last epoch's ``curves`` row (earlier evaluation
epochs do not evaluate targets). A metric column without ``/`` is always the trial's own
dataset's (see :mod:`search_spaces.metrics`).

Every row carries ``schema_version``; rows read through :class:`ResultStore` also carry
``source_part``, the part file a row was first written to (compaction keeps it, so a row is
never read twice). Adding a column is backwards compatible (readers unify
schemas); renaming or retyping one bumps the version.

Version 2 (2026-12): a trial's own lowest camera is ``lowest_<m>`` / ``lowest_<m>_camera``;
version 1 rows called it ``weakest_<m>``, a name now kept for the study's weakest camera, a
table column computed from ``cameras`` (no reader uses the old columns).
"""

SCHEMA_VERSION = 2
TABLES = ("trials", "cameras", "curves")
CONFIG_PREFIX = "cfg."
