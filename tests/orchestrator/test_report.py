"""The study report: the table's numbers against an independent computation from the Parquet
files, every format on disk, LaTeX that compiles, and the ``summarize``/``compact`` commands."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.cli import run_orchestrator

from orchestrator.report import artifact_dir, parse_formats, write_study_report
from storage import ResultStore
from tests.orchestrator.fake_study import write_fake_study

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["rank1", "mAP", "weakest_q_mAP", "weakest_g_mAP", "avg_q_mAP", "avg_g_mAP"]


def independent_table(results: Path, study: str) -> pd.DataFrame:
    """The ablation numbers computed straight from the Parquet files with pandas, without the
    project: latest row per config, completed trials only, mean and sample std over seeds."""
    files = sorted((results / "trials" / study).glob("*.parquet"))
    trials = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if "source_part" in trials.columns:  # after a compaction, take each source part's rows once
        trials = trials.drop_duplicates(["source_part", "config_hash"])
    latest = trials.sort_values("finished_at").drop_duplicates("config_hash", keep="last")
    done = latest[latest["status"] == "completed"]
    grouped = done.groupby("variant")[METRICS]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
    reference = "full" if "full" in table.index else "baseline"
    for metric in METRICS:
        table[f"{metric}_delta"] = table[f"{metric}_mean"] - table.loc[reference, f"{metric}_mean"]
        table.loc[reference, f"{metric}_delta"] = float("nan")
    table["seeds"] = done.groupby("variant").size()
    table["failed"] = latest[latest["status"] == "failed"].groupby("variant").size().reindex(table.index).fillna(0).astype(int)
    return table


@pytest.fixture
def fake_store(tmp_path) -> tuple[ResultStore, Path]:
    results = tmp_path / "results"
    store = ResultStore(str(results))
    write_fake_study(store, "fake")
    return store, results


def test_the_table_equals_an_independent_pandas_computation_from_the_parquet_rows(fake_store, tmp_path):
    store, results = fake_store
    written = write_study_report("fake", store, tmp_path / "report", formats=["csv", "md"], figures=False)
    assert [p.name for p in written] == ["ablation.csv", "ablation.md"]
    ours = pd.read_csv(tmp_path / "report" / "ablation.csv").set_index("variant")
    expected = independent_table(results, "fake")
    assert list(ours.index) == ["baseline", "+apra", "+gem"]  # the study's plan order
    assert sorted(ours.index) == sorted(expected.index)
    for column in expected.columns:
        pd.testing.assert_series_equal(ours[column].reindex(expected.index), expected[column], check_names=False, check_dtype=False, rtol=1e-12)
    # The forced rerun's newer result is the one counted; the failed seed is not.
    assert ours.loc["+apra", "seeds"] == 3 and ours.loc["+gem", "failed"] == 1

    markdown = (tmp_path / "report" / "ablation.md").read_text()
    gem = expected.loc["+gem"]
    cell = f"**{100 * gem['mAP_mean']:.1f} ± {100 * gem['mAP_std']:.1f} ({100 * gem['mAP_delta']:+.1f})**"
    assert cell in markdown  # +gem is the best variant of the fake study


def test_compaction_changes_no_number(fake_store, tmp_path):
    store, results = fake_store
    before = write_study_report("fake", store, tmp_path / "before", formats=["csv", "latex"], figures=False)
    store.compact("fake")
    assert len(list((results / "trials" / "fake").glob("*.parquet"))) == 1
    after = write_study_report("fake", store, tmp_path / "after", formats=["csv", "latex"], figures=False)
    for old, new in zip(before, after):
        assert old.read_text() == new.read_text()
    ours = pd.read_csv(tmp_path / "after" / "ablation.csv").set_index("variant")
    expected = independent_table(results, "fake")
    pd.testing.assert_series_equal(ours["mAP_mean"].reindex(expected.index), expected["mAP_mean"], check_names=False)


def test_report_writes_every_format_and_the_figures(fake_store, tmp_path):
    store, _ = fake_store
    out = tmp_path / "report"
    written = write_study_report("fake", store, out)
    names = sorted(p.relative_to(out).as_posix() for p in written)
    assert names == [
        "ablation.csv", "ablation.html", "ablation.md", "ablation.tex",
        "figures/camera_bars.png", "figures/camera_heatmap.png", "figures/learning_curves.png",
    ]
    assert all(p.stat().st_size > 0 for p in written)
    assert artifact_dir(out / "ablation.md", out) is None
    assert artifact_dir(out / "figures" / "camera_bars.png", out) == "figures"
    assert write_study_report("no-such-study", store, tmp_path / "empty") == []


def test_formats_parse_from_repeats_and_comma_lists():
    assert parse_formats(["md,latex", "csv", "md"]) == ["md", "latex", "csv"]
    assert parse_formats(["all"]) == ["md", "latex", "csv", "html"]
    assert parse_formats(["tex"]) == ["latex"]
    with pytest.raises(ValueError, match="unknown format 'pdf'; formats: md, latex, csv, html"):
        parse_formats(["pdf"])


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (apt-get install texlive-latex-recommended)")
@pytest.mark.parametrize("parts", [(), ("GeM", "soft_margin")])
def test_latex_compiles_with_booktabs(tmp_path, parts):
    store = ResultStore(str(tmp_path / "results"))
    write_fake_study(store, "fake_study", leave_one_out_parts=parts)
    (table,) = write_study_report("fake_study", store, tmp_path, formats=["latex"], figures=False)
    document = tmp_path / "paper.tex"
    document.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amssymb}\n"
        f"\\begin{{document}}\n\\input{{{table.name}}}\n\\end{{document}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_orchestrator(*args, cwd=cwd, timeout=300)


def test_summarize_command_prints_and_writes_the_chosen_formats(fake_store, tmp_path):
    store, results = fake_store
    printed = run_cli("summarize", "fake", "--store", str(results), "--format", "csv", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    rows = list(csv.DictReader(printed.stdout.strip().splitlines()))
    assert [r["variant"] for r in rows] == ["baseline", "+apra", "+gem"]

    out = tmp_path / "out"
    written = run_cli("summarize", "fake", "--store", str(results), "--format", "latex,md", "-f", "html", "--out", str(out), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ablation.html", "ablation.md", "ablation.tex", "figures"]
    assert len(written.stdout.strip().splitlines()) == 6  # 3 tables + 3 figures

    bad = run_cli("summarize", "fake", "--store", str(results), "--format", "pdf", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown format 'pdf'" in bad.stderr


def test_compact_command_merges_and_keeps_the_table(fake_store, tmp_path):
    store, results = fake_store
    before = run_cli("summarize", "fake", "--store", str(results), cwd=tmp_path)
    compacted = run_cli("compact", "fake", "--store", str(results), cwd=tmp_path)
    assert compacted.returncode == 0, compacted.stderr
    assert "trials: 10 files merged into 1 (10 rows)" in compacted.stdout
    assert "cameras: 9 files merged into 1 (108 rows)" in compacted.stdout
    again = run_cli("compact", "fake", "--store", str(results), cwd=tmp_path)
    assert "trials: nothing to merge (10 rows)" in again.stdout
    after = run_cli("summarize", "fake", "--store", str(results), cwd=tmp_path)
    assert after.stdout == before.stdout
    missing = run_cli("compact", "nothing", "--store", str(results), cwd=tmp_path)
    assert missing.returncode == 2 and "no results for study 'nothing'" in missing.stderr
