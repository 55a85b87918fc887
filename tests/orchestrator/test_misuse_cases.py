"""A careless user's cases: each ends within seconds in one line naming the cause and the fix,
exit status 2 for input (nothing written) and 1 for a fault while running."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from tests.orchestrator.test_bad_inputs import assert_nothing_launched, dataset_spec

SYNTHETIC = "baseline:\n  dataset: {name: synthetic, height: 64, width: 32}\n  train: {epochs: 1}\n"


def invoke(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()], result.stdout


@pytest.mark.parametrize("command", ["validate", "plan", "launch"])
@pytest.mark.parametrize("length", [240, 300])
def test_a_study_name_too_long_for_file_names_is_refused_before_anything_is_written(command, length, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(f"study: {{name: {'a' * length}}}\n{SYNTHETIC}", encoding="utf-8")
    code, lines, _ = invoke(command, str(tmp_path / "spec.yaml"))
    assert code == 2 and len(lines) == 1, lines
    assert (
        f"spec.yaml:1: study.name: a study name has at most 100 characters (file and folder names are built from it), got {length}"
        in lines[0]
    )
    assert not (tmp_path / "studies").exists()


def test_a_study_name_of_100_characters_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(f"study: {{name: {'a' * 100}}}\n{SYNTHETIC}", encoding="utf-8")
    assert invoke("plan", str(tmp_path / "spec.yaml"))[0] == 0


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_listener():
    """Accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize(
    ("listener", "reason"), [("web_server", "it answered '"), ("silent_listener", "no answer to gRPC's greeting within")]
)
def test_an_address_where_another_service_listens_fails_within_seconds(listener, reason, request, tiny_market, tmp_path, monkeypatch):
    port = request.getfixturevalue(listener)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(dataset_spec(tiny_market), encoding="utf-8")
    started = time.monotonic()
    code, lines, _ = invoke("launch", str(tmp_path / "spec.yaml"), "--address", f"127.0.0.1:{port}")
    assert time.monotonic() - started < 30  # ray.init would wait for ever
    assert code == 2 and len(lines) == 1, lines
    assert f"--address 127.0.0.1:{port}: another service listens there, not Ray ({reason}" in lines[0]
    assert "`ray start --head` prints it" in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()


def test_the_address_probe_accepts_what_speaks_http2_as_ray_does(monkeypatch):
    """Ray's GCS is a gRPC server: it answers the HTTP/2 client preface with a SETTINGS frame."""
    from orchestrator.tune_runner import HTTP2_PREFACE, check_ray_address

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    heard: list[bytes] = []

    def answer() -> None:
        connection, _ = server.accept()
        heard.append(connection.recv(len(HTTP2_PREFACE)))
        connection.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
        connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")
    finally:
        thread.join(5)
        server.close()
    assert heard == [HTTP2_PREFACE]


def test_validate_refuses_gpus_this_machine_lacks_unless_a_cluster_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever the machine has
    (tmp_path / "spec.yaml").write_text(f"study: {{name: s}}\n{SYNTHETIC}resources: {{gpus_per_trial: 4}}\n", encoding="utf-8")
    code, lines, _ = invoke("validate", str(tmp_path / "spec.yaml"))
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:5: resources.gpus_per_trial: a trial asks for 1 CPU and 4 GPU, more than this machine has" in lines[0]
    assert "--address" in lines[0]
    code, _, out = invoke("validate", str(tmp_path / "spec.yaml"), "--address", "10.0.0.1:6379")
    assert code == 0 and "OK" in out


def test_a_batch_wider_than_the_training_identities_is_refused_by_validate(tiny_market, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The synthetic set trains on 100 identities; a variant asks for 120.
    text = f"study: {{name: s}}\n{SYNTHETIC}ablation:\n  variants:\n    - {{name: wide, set: {{train.ids_per_batch: 120}}}}\n"
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    code, lines, _ = invoke("validate", str(tmp_path / "spec.yaml"))
    assert code == 2 and len(lines) == 1, lines
    assert "spec.yaml:7: ablation.variants[0].set['train.ids_per_batch']: a batch takes 120 identities" in lines[0]
    assert "training split of dataset 'synthetic' has 100: lower train.ids_per_batch to at most 100" in lines[0]
    # The tiny Market copy has 12 training identities; the default batch takes 16.
    (tmp_path / "spec.yaml").write_text(
        f"study: {{name: s}}\nbaseline:\n  dataset: {{name: market1501, root: '{tiny_market}'}}\n", encoding="utf-8"
    )
    code, lines, _ = invoke("launch", str(tmp_path / "spec.yaml"))
    assert code == 2 and len(lines) == 1, lines
    assert "baseline.train.ids_per_batch: a batch takes 16 identities" in lines[0] and "has 12" in lines[0]
    assert_nothing_launched(tmp_path)
    assert not (tmp_path / "studies").exists()


def test_data_check_names_images_that_are_dangling_or_looping_links(tiny_market, tmp_path):
    import shutil

    root = tmp_path / "market"
    shutil.copytree(tiny_market, root)
    train = root / "bounding_box_train"
    (train / "0001_c1s1_999999_00.jpg").symlink_to(tmp_path / "gone.jpg")
    (train / "0002_c2s1_999998_00.jpg").symlink_to(train / "0002_c2s1_999998_00.jpg")
    code, lines, out = invoke("data", "check", "--dataset", "market1501", "--root", str(root), "--no-decode")
    assert code == 2 and len(lines) == 1, lines
    assert f"error: {train}: 2 image(s) are symbolic links to no file: " in lines[0]
    assert f"0001_c1s1_999999_00.jpg -> {tmp_path / 'gone.jpg'} (missing)" in lines[0]
    assert "0002_c2s1_999998_00.jpg (a loop of links)" in lines[0]
    assert "OK" not in out


def test_summarize_into_a_reader_that_left_stops_quietly(tmp_path):
    """``orchestrator summarize STUDY | head``: the reader closes the pipe before the table is written."""
    import subprocess

    from storage import ResultStore
    from tests.cli import EXE, orchestrator_env
    from tests.orchestrator.fake_study import write_fake_study

    store = ResultStore(str(tmp_path / "store"))
    write_fake_study(store)
    process = subprocess.Popen(
        [str(EXE), "summarize", "fake", "--store", store.uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=orchestrator_env(),
    )
    process.stdout.close()  # the reader is gone before the first line
    _, err = process.communicate(timeout=120)
    assert err.decode() == ""
    assert process.returncode == 141  # 128 + SIGPIPE, as a shell reports a tool the pipe ended
