"""The study report: the table's numbers against an independent computation from the Parquet
files, every format on disk, LaTeX that compiles, and the ``summarize``/``compact`` commands."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from tests.cli import run_orchestrator

from analysis.report import artifact_dir, parse_formats, write_study_report
from storage import ResultStore
from tests.orchestrator.fake_study import write_fake_study

ROOT = Path(__file__).resolve().parents[2]
METRICS = ["rank1", "mAP", "weakest_q_mAP", "weakest_g_mAP", "avg_q_mAP", "avg_g_mAP"]


def independent_table(results: Path, study: str) -> pd.DataFrame:
    """The ablation numbers computed straight from the Parquet files with pandas, without the
    project: latest row per config, completed trials only, mean and sample std over seeds, the
    mean paired difference to the reference over shared seeds; weakest-camera columns read at
    the camera with the lowest mean q-mAP over every completed trial of the study."""

    def read(table: str) -> pd.DataFrame:
        frame = pd.concat([pd.read_parquet(f) for f in sorted((results / table / study).glob("*.parquet"))], ignore_index=True)
        if "source_part" in frame.columns:  # after a compaction, take each source part's rows once
            frame = frame.drop_duplicates(["source_part", *(c for c in ("config_hash", "camera", "metric") if c in frame.columns)])
        return frame

    trials = read("trials")
    latest = trials.sort_values("finished_at").drop_duplicates("config_hash", keep="last")
    done = latest[latest["status"] == "completed"].copy()
    reference = "full" if "full" in set(done["variant"]) else "baseline"
    cameras = read("cameras").drop_duplicates(["config_hash", "camera", "metric"], keep="last")
    cameras = cameras[cameras["config_hash"].isin(done["config_hash"])]
    weakest = cameras[cameras["metric"] == "q_mAP"].groupby("camera")["value"].mean().idxmin()
    for column, metric in (("weakest_q_mAP", "q_mAP"), ("weakest_g_mAP", "g_mAP")):
        values = cameras[cameras["metric"] == metric].set_index(["config_hash", "camera"])["value"]
        done[column] = [values[(h, weakest)] for h in done["config_hash"]]
    grouped = done.groupby("variant")[METRICS]
    table = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).fillna(0.0).add_suffix("_std"))
    by_seed = done.set_index(["variant", "seed"])
    for metric in METRICS:
        base = by_seed.loc[reference, metric]
        table[f"{metric}_delta"] = [
            float("nan") if variant == reference else (by_seed.loc[variant, metric] - base).dropna().mean() for variant in table.index
        ]
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
        pd.testing.assert_series_equal(
            ours[column].reindex(expected.index), expected[column], check_names=False, check_dtype=False, rtol=1e-12
        )
    # The forced rerun's newer result is the one counted; the failed seed is not.
    assert ours.loc["+apra", "seeds"] == 3 and ours.loc["+gem", "failed"] == 1

    markdown = (tmp_path / "report" / "ablation.md").read_text()
    gem = expected.loc["+gem"]
    # The interval: scipy's paired t over the two seeds +gem shares with the baseline.
    trials = pd.DataFrame(store.read_rows("trials", "fake")).sort_values("finished_at").drop_duplicates("config_hash", keep="last")
    mAP = trials[trials["status"] == "completed"].pivot(index="seed", columns="variant", values="mAP").dropna()
    interval = scipy_stats.ttest_rel(mAP["+gem"], mAP["baseline"]).confidence_interval()
    cell = f"{100 * gem['mAP_mean']:.1f} ± {100 * gem['mAP_std']:.1f} ({100 * gem['mAP_delta']:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}])"
    # +gem has the best mAP of the fake study but only 2 seeds paired: no test, so no bold.
    assert f"| {cell} |" in markdown and f"**{cell}" not in markdown


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
        "ablation.csv",
        "ablation.html",
        "ablation.md",
        "ablation.tex",
        "figures/camera_bars.png",
        "figures/camera_effects.png",
        "figures/camera_heatmap.png",
        "figures/learning_curves.png",
    ]
    assert all(p.stat().st_size > 0 for p in written)
    # One self-contained page: every figure embedded as a data URI, nothing fetched from elsewhere.
    import base64
    import re

    page = (out / "ablation.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 4 and all(src.startswith("data:image/png;base64,") for src in sources)
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in sources}
    assert embedded == {p.read_bytes() for p in written if p.suffix == ".png"}
    assert "href=" not in page and "<link" not in page and "Per-camera effects" in page
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
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
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
    assert len(written.stdout.strip().splitlines()) == 7  # 3 tables + 4 figures

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


SPEC_WITH_REFERENCE = """\
study: {name: fake}
baseline:
  dataset: {name: synthetic}
report:
  metrics: [rank1, mAP]
  reference:
    source: APRA (Ang et al.), Table 2
    dataset: market1501
    protocol: single query
    rows:
      baseline: {mAP: 85.1, rank1: 94.2}
      +apra: {mAP: 86.3}
"""


def test_summarize_reads_the_report_block_from_the_study_folders_spec_copy(tmp_path):
    study_dir = tmp_path / "studies" / "fake"
    write_fake_study(ResultStore(str(study_dir / "results")), "fake")
    (study_dir / "spec.yaml").write_text(SPEC_WITH_REFERENCE, encoding="utf-8")
    printed = run_cli("summarize", "fake", "--reference", "--seeds-needed", "2", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    out = printed.stdout
    assert out.splitlines()[0] == "| variant | seeds | rank-1 | mAP |"  # the spec's columns
    assert "Reproduction of APRA (Ang et al.), Table 2 on market1501, judged on effects (single query)" in out
    assert "warning: dataset: the paper reports market1501, this study ran on synthetic" in printed.stderr
    # The seeds-needed estimate equals the planning computed here from the table's own numbers.
    from analysis.report import study_summary
    from analysis.settings import ReportSettings
    from analysis.stats import pooled_sd, sd_upper_bound, seeds_for_power

    summary = study_summary("fake", ResultStore(str(study_dir / "results")), ReportSettings(metrics=("rank1", "mAP")))
    sd, df = pooled_sd(summary.effects("mAP"))
    expected = seeds_for_power(0.02, sd_upper_bound(sd, df))
    assert f"| mAP | {100 * sd:.1f} | {df} | {100 * sd_upper_bound(sd, df):.1f} | {expected} |" in out

    table = run_cli("summarize", "fake", "--reference", "--format", "csv", cwd=tmp_path)
    rows = {r["variant"]: r for r in csv.DictReader(table.stdout.strip().splitlines())}
    assert float(rows["+apra"]["mAP_paper"]) == 86.3 and rows["+gem"]["mAP_paper"] == ""
    assert float(rows["+apra"]["mAP_paper_effect"]) == pytest.approx(86.3 - 85.1)

    (study_dir / "spec.yaml").write_text("study: {name: fake}\n", encoding="utf-8")
    missing = run_cli("summarize", "fake", "--reference", cwd=tmp_path)
    assert missing.returncode == 2 and "no report.reference block in" in missing.stderr and not missing.stdout
    (study_dir / "spec.yaml").write_text("study: {name: fake}\nreport:\n  metrics: [rank1, top5]\n", encoding="utf-8")
    bad = run_cli("summarize", "fake", cwd=tmp_path)
    assert bad.returncode == 2 and "spec.yaml:3: report.metrics: unknown metric 'top5'" in bad.stderr


def test_summarize_bootstrap_through_the_command_line(tmp_path):
    # Six seeds: the bootstrap interval replaces Student's from five shared seeds up.
    study_dir = tmp_path / "studies" / "boot"
    store = ResultStore(str(study_dir / "results"))
    write_fake_study(store, "boot", seeds=(0, 1, 2, 3, 4, 5), failed=(), rerun=None)
    printed = run_cli("summarize", "boot", "--bootstrap", "--format", "csv,md", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    csv_text, markdown = printed.stdout.split("\n| variant", 1)
    rows = {r["variant"]: r for r in csv.DictReader(csv_text.strip().splitlines())}
    trials = pd.DataFrame(store.read_rows("trials", "boot"))
    mAP = trials.pivot(index="seed", columns="variant", values="mAP")
    differences = list(mAP["+apra"] - mAP["baseline"])
    from analysis.stats import bootstrap_interval

    low, high = bootstrap_interval(differences)
    t_interval = scipy_stats.ttest_rel(mAP["+apra"], mAP["baseline"]).confidence_interval()
    assert (float(rows["+apra"]["mAP_low"]), float(rows["+apra"]["mAP_high"])) == pytest.approx((low, high))
    assert (low, high) != pytest.approx((t_interval.low, t_interval.high))
    assert "percentile bootstrap from 5 shared seeds up" in markdown
