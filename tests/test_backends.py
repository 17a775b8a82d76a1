"""compare on Ray and Dask clusters started inside the tests, and the errors around them."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_compare import STUDY, invoke, rows

WORKER_LINE = re.compile(r"\] (\S+): finished \(on (\S+):(\d+)\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finished_on(output: str) -> dict[str, int]:
    """run name -> pid of the process that ran it, from compare's progress lines"""
    return {name: int(pid) for name, _, pid in WORKER_LINE.findall(output)}


def compare_on(out: Path, *backend_args):
    """The study every cluster test runs: random and margin, one seed, one torch thread per run."""
    result = invoke("compare", "--query", "random,margin", "--seeds", 1, "--out", out, *STUDY, *backend_args,
                    "--threads", 1)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def local_study(tmp_path_factory) -> Path:
    """The same study on this machine, once for every cluster test to compare with."""
    local = tmp_path_factory.mktemp("local") / "study"
    compare_on(local)
    return local


def check_study(out: Path, output: str, worker_pids: set[int], local: Path):
    ran = finished_on(output)
    assert sorted(ran) == ["margin-s0", "random-s0"], output
    assert set(ran.values()) <= worker_pids and os.getpid() not in ran.values()  # the cluster ran them
    for name in ran:
        assert json.loads((out / "runs" / name / "result.json").read_text())["labels"] == 20
    assert (out / "report" / "report.html").is_file()
    # the cluster changes where runs execute, not what they do: same as on this machine (same threads)
    for name in ran:
        drop = ("train_seconds", "query_seconds")
        a = [{k: v for k, v in r.items() if k not in drop} for r in rows(out / "runs" / name)]
        b = [{k: v for k, v in r.items() if k not in drop} for r in rows(local / "runs" / name)]
        assert [r["queried_ids"] for r in a] == [r["queried_ids"] for r in b]


@pytest.fixture
def dask_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield cluster.scheduler_address, set(client.run(os.getpid).values())


def test_compare_on_a_dask_cluster(tmp_path, dask_cluster, local_study):
    address, pids = dask_cluster
    out = tmp_path / "dask"
    output = compare_on(out, "--backend", "dask", "--scheduler", address)
    assert "on Dask scheduler" in output
    check_study(out, output, pids, local_study)


@pytest.fixture
def ray_cluster(monkeypatch):
    # token authentication is Ray's business; a throwaway test cluster goes without it
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # a short temp dir: Ray's unix sockets live under it, and socket paths are limited to 107 bytes
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    started = subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                              "--node-ip-address=127.0.0.1", f"--temp-dir={temp}"], env=env, capture_output=True,
                             text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}", temp
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def test_compare_on_a_ray_cluster(tmp_path, ray_cluster, local_study):
    address, temp = ray_cluster
    out = tmp_path / "ray"
    output = compare_on(out, "--backend", "ray", "--address", address)
    assert f"on Ray cluster {address}" in output
    # the cluster's raylet logs each worker process it starts under its pid
    worker_pids = {int(p.stem.rsplit("-", 1)[1]) for p in Path(temp).glob("session_*/logs/worker-*.out")}
    check_study(out, output, worker_pids, local_study)


@pytest.mark.parametrize("backend,option", [("ray", "--address"), ("dask", "--scheduler")])
def test_unreachable_cluster_fails_fast_with_one_line(tmp_path, backend, option):
    out = tmp_path / "s"
    start = time.perf_counter()
    result = invoke("compare", "--query", "random", "--seeds", 1, "--out", out, *STUDY,
                    "--backend", backend, option, f"127.0.0.1:{free_port()}")
    assert time.perf_counter() - start < 30  # the data check and imports included; no connection wait
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("alplug: error: cannot reach the"), result.output
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--address", "127.0.0.1:6379"], "--address goes with --backend ray"),
    (["--backend", "dask"], "--backend dask needs --scheduler"),
    (["--backend", "dask", "--scheduler", "tcp://:8786"], "has no host"),
])
def test_backend_usage_errors(tmp_path, args, message):
    result = invoke("compare", "--query", "random", "--seeds", 1, "--out", tmp_path / "s", *STUDY, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "s").exists()


def test_a_worker_that_cannot_see_the_study_directory_fails_that_run_clearly(tmp_path):
    from alplug.study import execute_run

    outcome = execute_run(str(tmp_path / "elsewhere"), "random", 0, {}, None)
    assert outcome.status == "failed" and "not visible on this worker" in outcome.error


def test_terminating_a_study_stops_its_workers(tmp_path):
    """``kill PID`` of ``alplug compare`` stops the runs in its worker processes, as Ctrl-C does; it used to end
    the main process alone, and the workers went on running (one held a pretraining's cache lock for minutes)."""
    psutil = pytest.importorskip("psutil")
    import signal

    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "alplug", "compare", "--query", "random", "--seeds", "2",
                             "--jobs", "2", "--threads", "1", "--n-start", "1", "--rounds", "3", "--epochs", "5000",
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "popen_loky" in " ".join(p.cmdline())]
            started = len(list(out.glob("runs/*/config.toml"))) == 2  # both runs are in their workers
            workers = workers if started else []
        assert len(workers) == 2, "the study's two workers never started their runs"
        assert proc.poll() is None, "the study ended before it was terminated"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "alplug compare: interrupted; the same command continues" in err, err
        assert "Traceback" not in err
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"{len(alive)} worker(s) still running after the study was terminated"
    finally:
        for p in workers:
            if p.is_running():
                p.kill()
        proc.kill()
        proc.wait()
