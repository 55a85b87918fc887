"""Progress lines: one per trial and epoch (throttled when trials are fast), and a time left
that follows the work left instead of jumping when a trial finishes."""

from __future__ import annotations

import re
from types import SimpleNamespace


from orchestrator.progress import StudyProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def report(loss: float = 1.0, evaluated: bool = False) -> dict[str, float]:
    metrics = {"loss": loss, "images_per_second": 800.0}
    if evaluated:
        metrics.update(rank1=0.612, mAP=0.403)
    return metrics


def test_fast_trials_print_at_most_one_line_per_interval_but_every_evaluation_and_the_last_epoch():
    clock = Clock()
    progress = StudyProgress(1, min_interval=5.0, clock=clock)
    progress.start("t", epochs=20)
    printed = []
    for epoch in range(1, 21):
        clock.now = float(epoch)  # one epoch a second
        line = progress.epoch_line("t", "a seed=0", epoch, report(evaluated=epoch == 10))
        if line is not None:
            printed.append(epoch)
    # The first epoch, then every 5 s, the evaluation (epoch 10) and the last.
    assert printed == [1, 6, 10, 15, 20]


def test_a_line_names_loss_speed_the_trial_and_study_time_left_and_evaluation_metrics():
    clock = Clock()
    progress = StudyProgress(2, min_interval=0.0, clock=clock)
    progress.start("t", epochs=10)
    clock.now = 4.0
    line = progress.epoch_line("t", "+erasing seed=1", 2, report(loss=2.3456, evaluated=True))
    # 2 s an epoch: this trial has 8 epochs (16 s) left; the study also the other trial's 10.
    assert line == "  +erasing seed=1 epoch 2/10: loss 2.346, 800 img/s, rank-1 61.2% mAP 40.3%, trial ~16 s left, study ~36 s left"
    clock.now = 6.0
    assert "rank-1" not in progress.epoch_line("t", "+erasing seed=1", 3, report())


def test_the_study_time_left_follows_the_work_left_without_jumps():
    # Four trials of 10 epochs, two at a time, 3 s an epoch: trials 1-2 end at 30 s, 3-4 at 60 s.
    clock = Clock()
    progress = StudyProgress(4, min_interval=0.0, clock=clock)
    estimates = []
    for first in (0, 2):
        start = clock.now
        for key in (first, first + 1):
            progress.start(str(key), epochs=10)
        for epoch in range(1, 11):
            clock.now = start + 3.0 * epoch
            for key in (first, first + 1):
                line = progress.epoch_line(str(key), f"t{key}", epoch, report())
                estimates.append((clock.now, parse_study_left(line)))
        for key in (first, first + 1):
            progress.finish(str(key))
    # Right to within one epoch (3 s: the other trial's report of the same epoch is due), from
    # the first epoch on (the old estimate, mean trial duration x trials left, had nothing to say
    # for the first 30 s, then jumped), and never going up.
    for now, left in estimates:
        assert 60.0 - now <= left <= 60.0 - now + 3.0, (now, left)
    assert all(later <= earlier for (_, earlier), (_, later) in zip(estimates, estimates[1:]))


def test_the_last_running_trial_sets_the_time_left():
    clock = Clock()
    progress = StudyProgress(2, min_interval=0.0, clock=clock)
    progress.start("fast", epochs=2)
    progress.start("slow", epochs=9)
    clock.now = 2.0
    progress.epoch_line("fast", "fast", 2, report())
    progress.finish("fast")
    clock.now = 10.0
    line = progress.epoch_line("slow", "slow", 1, report())
    # The pooled pace (12 s over 3 epochs) would say 8 x 4 / 2 = 16 s; the slow trial itself needs 80 s.
    assert line.endswith("trial ~80 s left, study ~80 s left")


def test_a_retried_trial_is_timed_from_its_restart():
    clock = Clock()
    progress = StudyProgress(1, min_interval=0.0, clock=clock)
    progress.start("t", epochs=10)
    for epoch in (1, 2, 3, 4):
        clock.now = float(epoch)
        progress.epoch_line("t", "t", epoch, report())
    clock.now = 100.0  # the node was lost; Tune starts the trial again from its checkpoint at epoch 2
    progress.restart("t", from_epoch=2)
    clock.now = 102.0
    line = progress.epoch_line("t", "t", 3, report())
    assert "trial ~14 s left" in line  # 2 s for the re-run epoch, 7 epochs left


def parse_study_left(line: str) -> float:
    match = re.search(r"study ~(\d+) s left", line)
    assert match, line
    return float(match.group(1))


def test_the_recorder_prints_a_line_per_epoch(tmp_path, monkeypatch):
    """The recorder, fed Tune's callbacks with real MLflow and Parquet stores, prints a line per
    epoch (not only at evaluation epochs) and the time left in its start and finish lines."""
    from orchestrator.recorder import StudyRecorder
    from orchestrator.tracking import StudyTracker
    from search_spaces import AblationSpec, Recipe, expand
    from storage import ResultStore

    monkeypatch.setenv("REID_ORCH_PROGRESS_SECONDS", "0")
    recipe = Recipe.model_validate({"train": {"epochs": 3, "lr_steps": [], "warmup_epochs": 0, "eval_every": 3}})
    trials = expand(recipe, AblationSpec(design="list", variants=[{"name": "a"}, {"name": "b", "set": {"model.neck": "l2norm"}}]))
    tracker = StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "s", artifact_location=(tmp_path / "art").as_uri())
    tracker.start_study(params={}, tags={})
    lines: list[str] = []
    recorder = StudyRecorder(
        study="s",
        trials=trials,
        variant_order=["a", "b"],
        axes=[],
        store=ResultStore(str(tmp_path / "store")),
        tracker=tracker,
        echo=lines.append,
    )
    tune_trial = SimpleNamespace(trial_id="t0", config={"trial": {"hash": trials[0].config_hash}})
    recorder.on_trial_start(0, [], tune_trial)
    for epoch in (1, 2, 3):
        metrics = {"epoch": epoch, **report(loss=3.0 / epoch, evaluated=epoch == 3), "epoch_seconds": 0.1}
        recorder.on_trial_result(0, [], tune_trial, {**metrics, "training_iteration": epoch})
    recorder.on_trial_complete(0, [], tune_trial)
    epoch_lines = [line for line in lines if " epoch " in line]
    assert [line.split(":")[0].rsplit(" ", 1)[1] for line in epoch_lines] == ["1/3", "2/3", "3/3"]
    assert "loss 3.000, 800 img/s" in epoch_lines[0] and "study ~" in epoch_lines[0]
    assert "rank-1 61.2% mAP 40.3%" in epoch_lines[2]
    # The finish line: one of two trials done, the other's 3 epochs left at this one's pace.
    assert re.match(r"\[1/2 done, ~\d+ s left\] finished a seed=0", lines[-1]), lines[-1]


def test_decoding_a_dataset_prints_one_line(tiny_market):
    """The driver decodes the three splits of a real dataset folder: one line for all of them
    (it printed one per 10% of each split, 30 in all), naming every image decoded."""
    from orchestrator.launch import _decode_datasets
    from search_spaces import AblationSpec, Recipe, expand

    recipe = Recipe.model_validate({"dataset": {"name": "market1501", "root": str(tiny_market), "height": 64, "width": 32}})
    trials = expand(recipe, AblationSpec(design="list", variants=[{"name": "a"}]))
    lines: list[str] = []
    datasets = _decode_datasets(trials, lines.append)
    (data,) = datasets.values()
    images = len(data.train.images) + len(data.query.images) + len(data.gallery.images)
    assert len(lines) == 2 and lines[0].startswith("decoding dataset "), lines
    assert re.match(rf"  decoded {images} images in \d+\.\d s: {len(data.train.images)} train \(12 ids\), ", lines[1]), lines[1]


def test_a_long_step_prints_its_running_count_at_most_once_per_interval():
    from orchestrator.progress import CountedProgress

    clock = Clock()
    lines: list[str] = []
    progress = CountedProgress(lines.append, min_interval=30.0, clock=clock)
    for split_total in (1000, 500):  # two splits, each reporting every 10%
        for done in range(split_total // 10, split_total + 1, split_total // 10):
            clock.now += 4.0  # 4 s apart: a line at 32 s (800 of the first split) and 64 s (300 of the second)
            progress(f"decoded {done}/{split_total} images")
    progress("inpainting 3 backgrounds")  # other messages pass through
    assert lines == ["  decoded 800 images ...", "  decoded 1300 images ...", "  inpainting 3 backgrounds"]
    assert progress.summary() == "decoded 1500 images in 80.0 s"
