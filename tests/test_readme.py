"""The README's examples run as written: every ```bash block is extracted and run by bash in a
folder laid out as the README assumes (the repository's ``examples/``, the commands of the
installed ``.venv/bin`` on the PATH, a finished quickstart study in ``studies/quickstart``).

The quickstart study is written straight into a result store (no training: it stands for the
one ``bash scripts/quickstart`` leaves). The blocks that install and run the test suite or the
quickstart are not run here (the first is this suite; the second is a full launch), and the
blocks that train (a launch, ``python -m trainables``) run in the slow suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.study_files import record_launch
from orchestrator.tracking import default_tracking_uri
from storage import ResultStore
from tests.cli import orchestrator_env
from tests.orchestrator.fake_study import write_fake_study

ROOT = Path(__file__).resolve().parents[1]
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)


def bash_blocks() -> list[str]:
    return BASH_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def kind(block: str) -> str:
    if "bash scripts/" in block:
        return "install"
    if "orchestrator launch" in block or "python -m trainables" in block:
        return "trains"
    return "reads"


@pytest.fixture
def workspace(tmp_path) -> Path:
    """The README's working folder after the quickstart."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    study_dir = tmp_path / "studies" / "quickstart"
    store = ResultStore(str(study_dir / "results"))
    write_fake_study(store, "quickstart", variants=("baseline", "+random_erasing"), failed=(), rerun=None)
    spec_text = (ROOT / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    record_launch(study_dir, spec_text, store_uri=store.uri, tracking_uri=default_tracking_uri(study_dir), address=None)
    return tmp_path


def run_block(block: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}:{orchestrator_env()['PATH']}"  # .venv/bin first, as after `source .venv/bin/activate`
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=orchestrator_env(PATH=path, **env),
    )


def test_only_the_install_and_quickstart_scripts_are_left_out():
    assert [b.strip() for b in bash_blocks() if kind(b) == "install"] == ["bash scripts/test", "bash scripts/quickstart"]
    assert any(kind(b) == "reads" for b in bash_blocks()) and any(kind(b) == "trains" for b in bash_blocks())


def test_the_readmes_examples_that_read_a_study_run_as_written(workspace):
    for block in (b for b in bash_blocks() if kind(b) == "reads"):
        result = run_block(block, workspace)
        assert result.returncode == 0, f"{block}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if "duckdb" in block:
            # The query's percent: the fake study's mean mAP of the baseline, from the store itself.
            rows = [
                r
                for r in ResultStore(str(workspace / "studies" / "quickstart" / "results")).read_rows("trials", "quickstart")
                if r["variant"] == "baseline"
            ]
            expected = round(100 * sum(r["mAP"] for r in rows) / len(rows), 1)
            assert re.search(rf"baseline\s*│\s*3\s*│\s*{expected}\b", result.stdout), result.stdout
    assert (workspace / "quickstart-report" / "ablation.html").is_file()


@pytest.mark.slow
def test_the_readmes_examples_that_train_run_as_written(workspace, tmp_path_factory):
    cache = tmp_path_factory.mktemp("dataset-cache")  # the synthetic dataset is generated here (~15 s)
    for block in (b for b in bash_blocks() if kind(b) == "trains"):
        result = run_block(block, workspace, REID_ORCH_CACHE=str(cache))
        assert result.returncode == 0, f"{block}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (workspace / "studies" / "smoke" / "spec.yaml").is_file()
