"""Trackers that stop answering (issue 28, findings 3, 6, 10, 13, 15): refused within seconds at the start, one
warning and training goes on mid-run, what was missed sent on --resume; every server on 127.0.0.1, every wait
bounded."""
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from alplug.cli import cli
from alplug.errors import UsageError
from alplug.tracking import TRACKING_FILE, parse_track

from conftest import QUICK

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def seconds_at_most(limit: float):
    started = time.monotonic()
    yield
    assert time.monotonic() - started < limit, f"took {time.monotonic() - started:.1f} s, more than {limit} s"


# ---- at the start: refused within seconds -------------------------------------------------------------------------

def test_a_server_that_accepts_and_never_answers_is_refused(monkeypatch):
    import alplug.tracking as tracking

    monkeypatch.setattr(tracking.destinations, "CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with seconds_at_most(5), pytest.raises(UsageError, match="no answer within 1 s"):
            parse_track([f"mlflow=http://127.0.0.1:{port}"])  # was: a run hung for over 300 s


def test_a_server_answering_503_is_refused_at_once():
    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with seconds_at_most(5), pytest.raises(UsageError, match="answers HTTP 503"):
            parse_track([f"mlflow=http://127.0.0.1:{server.server_address[1]}"])  # was: refused after 262 s
    finally:
        server.shutdown()
        server.server_close()


def test_an_sqlite_store_that_cannot_be_created_is_refused_at_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for uri in ("sqlite:////proc/x.db", f"sqlite:///{blocker}/x.db", f"sqlite:///{tmp_path}"):
        with seconds_at_most(5), pytest.raises(UsageError, match="cannot open an SQLite store there"):
            parse_track([f"mlflow={uri}"])  # /proc took 118 s of MLflow's retries
    parse_track([f"mlflow=sqlite:///{tmp_path}/new/x.db"])  # a store to be made in a folder to be made is fine
    assert not (tmp_path / "new").exists()


def test_bad_uris_are_one_line_and_passwords_are_never_shown():
    with pytest.raises(UsageError, match="not a valid URL") as bad:
        parse_track(["mlflow=http://[::1"])  # was a ValueError traceback
    assert "\n" not in str(bad.value)
    with pytest.raises(UsageError) as refused:
        parse_track([f"mlflow=http://bob:s3cret@127.0.0.1:{free_port()}"])
    assert "s3cret" not in str(refused.value) and "bob:***@127.0.0.1" in str(refused.value)
    result = invoke("run", "--track", "mlflow=http://bob:s3cret@[::1", *QUICK)
    assert result.exit_code == 2 and "s3cret" not in result.output and "Traceback" not in result.output


def test_a_tracking_file_with_a_count_that_is_not_a_count_records_nothing(tmp_path):
    from alplug.tracking import read_tracking

    for bad in ("x", -1, 1.5, True, [1]):
        (tmp_path / TRACKING_FILE).write_text(json.dumps({"mlflow": {"run_id": "abc", "rounds_sent": bad}}))
        assert read_tracking(tmp_path) == {}  # "x" made the resumed run fail with int("x")


# ---- mid-run: a real MLflow server killed after round 0 -----------------------------------------------------------

class MlflowServer:
    """``mlflow server`` on 127.0.0.1 in its own process group (its workers are killed with it)."""

    def __init__(self, store, port):
        self.store, self.port = store, port
        self.process = None

    def start(self):
        mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
        self.process = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", f"sqlite:///{self.store / 'server.db'}",
             "--default-artifact-root", str(self.store / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    parse_track([f"mlflow={self.uri}"])
                    return self
            except (OSError, UsageError):
                if self.process.poll() is not None:
                    raise AssertionError("mlflow server exited")
                time.sleep(0.5)
        raise AssertionError("mlflow server did not start in 90 s")

    @property
    def uri(self):
        return f"http://127.0.0.1:{self.port}"

    def kill(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def test_a_tracker_killed_mid_run_costs_one_warning_and_resume_sends_what_it_missed(tmp_path, monkeypatch):
    import alplug.loop as loop
    from mlflow.tracking import MlflowClient

    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)  # alplug's own bounds, not a developer's settings
    server = MlflowServer(tmp_path, free_port()).start()
    out = tmp_path / "run"
    commit = loop.ActiveLearningRun._commit

    def commit_then_kill_the_server(self, state, row):
        commit(self, state, row)
        if row.round == 0:
            server.kill()

    monkeypatch.setattr(loop.ActiveLearningRun, "_commit", commit_then_kill_the_server)
    try:
        with seconds_at_most(120):  # was 495 s of silence, then tracebacks
            result = invoke("run", "--out", out, "--track", f"mlflow={server.uri}", *QUICK)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if "warning: --track mlflow" in line]
        assert len(warnings) == 1 and "--resume" in warnings[0], result.output
        assert "Traceback" not in result.output and (out / "result.json").is_file()
        recorded = json.loads((out / TRACKING_FILE).read_text())["mlflow"]
        assert recorded.get("rounds_sent", 0) == 0 and not recorded.get("ended")  # the server died before round 0 was sent
        monkeypatch.setattr(loop.ActiveLearningRun, "_commit", commit)
        server.start()  # back, with its store
        resumed = invoke("run", "--resume", out, "--track", f"mlflow={server.uri}")
        assert resumed.exit_code == 0 and "warning" not in resumed.output, resumed.output
        client = MlflowClient(f"sqlite:///{tmp_path / 'server.db'}")
        run = client.get_run(recorded["run_id"])
        assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "round/val2_acc")]
        assert steps == [10, 15, 20]  # every round once, the missed ones sent on resume
        again = invoke("run", "--resume", out, "--track", f"mlflow={server.uri}")
        assert again.exit_code == 0
        assert [m.step for m in client.get_metric_history(run.info.run_id, "round/val2_acc")] == [10, 15, 20]
    finally:
        server.kill()


# ---- 10. TensorBoard after a kill at a round boundary ----------------------------------------------------------------

def test_tensorboard_shows_each_round_once_after_a_kill_between_sending_and_recording(tmp_path, monkeypatch):
    import alplug.tracking as tracking
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    write, writes = tracking.write_tracking, []

    def killed_after_round_1_was_sent(directory, records):
        writes.append(records)
        if records.get("tensorboard", {}).get("rounds_sent") == 2:
            raise KeyboardInterrupt  # the round's figures are in the event file, tracking.json does not say so
        write(directory, records)

    monkeypatch.setattr(tracking.runs, "write_tracking", killed_after_round_1_was_sent)
    assert invoke("run", "--out", out, "--track", "tensorboard", *QUICK).exit_code == 130
    monkeypatch.setattr(tracking.runs, "write_tracking", write)
    assert invoke("run", "--resume", out, "--track", "tensorboard").exit_code == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for tag in ("round/val2_acc", "round/labels", "queried_class/0"):
        steps = [e.step for e in events.Scalars(tag)]
        assert steps == sorted(set(steps)), (tag, steps)  # round 1 was there twice
    assert [e.step for e in events.Scalars("round/val2_acc")] == [10, 15, 20]


# ---- 15. an MLflow SQLite store keeps its artifacts beside it ---------------------------------------------------------

def test_artifacts_of_an_sqlite_store_go_beside_it_not_into_the_working_directory(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    work, stores = tmp_path / "work", tmp_path / "stores"
    work.mkdir()
    stores.mkdir()
    monkeypatch.chdir(work)
    result = invoke("run", "--out", tmp_path / "run", "--track", f"mlflow=sqlite:///{stores / 'm.db'}", *QUICK,
                    "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert list(work.iterdir()) == []  # model.pt and the rest went into ./mlruns
    client = MlflowClient(f"sqlite:///{stores / 'm.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("alplug").experiment_id])
    assert (stores / "mlartifacts").is_dir() and any((stores / "mlartifacts").rglob("model.pt"))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model.pt", "result.json"}


def test_a_password_in_the_tracking_uri_is_neither_shown_nor_written(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import alplug.tracking as tracking

    class Client:  # what MlflowTracker asks of MLflow's client, recorded
        def create_run(self, experiment_id, run_name, tags):
            return SimpleNamespace(info=SimpleNamespace(run_id="r1"))

        def log_batch(self, *args, **kwargs):
            pass

    uri = "https://bob:s3cret@mlflow.lab"
    monkeypatch.setattr(tracking.trackers, "mlflow_client", lambda spec, directory: (Client(), spec.where, "0"))
    tracker = tracking.MlflowTracker(tracking.TrackSpec("mlflow", uri), 1)
    record = tracker.open(tmp_path, {"query": "margin"}, None, "run", {})
    tracking.write_tracking(tmp_path, {"mlflow": record})
    assert "s3cret" not in tracker.where() and "bob:***@mlflow.lab" in tracker.where()
    assert "s3cret" not in (tmp_path / TRACKING_FILE).read_text()  # was written as given
