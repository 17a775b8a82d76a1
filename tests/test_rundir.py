import json
import os
import threading

import pytest

from alplug.config import RunConfig
from alplug.rundir import RunDirectory, RunState


def test_commit_puts_the_checkpoint_on_disk_before_state_json_names_it(tmp_path, monkeypatch):
    run = RunDirectory.create(tmp_path / "run", RunConfig())
    order = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        order.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        order.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)

    def save_checkpoint(prefix):  # like skorch's save_params: plain writes, no fsync
        prefix.parent.mkdir(exist_ok=True)
        (prefix.parent / f"{prefix.name}.params.pt").write_bytes(b"weights")

    state = RunState(round=3, labels=10)
    run.commit(state, save_checkpoint)
    run.wait_for_commit()
    params = str(run.path / "checkpoint" / "round-0003.params.pt")
    state_json = str(run.path / "state.json")
    assert ("fsync", params) in order
    assert order.index(("fsync", params)) < order.index(("replace", state_json))
    # the rename of state.json is made durable too (its directory is flushed after it)
    assert ("fsync", str(run.path)) in order[order.index(("replace", state_json)):]
    assert json.loads((run.path / "state.json").read_text())["checkpoint"] == "checkpoint/round-0003"


def test_background_commit_lands_on_wait_with_the_state_as_it_was(tmp_path):
    run = RunDirectory.create(tmp_path / "run", RunConfig())
    started, release = threading.Event(), threading.Event()

    def slow_checkpoint(prefix):
        started.set()
        release.wait(5)
        (prefix.parent / f"{prefix.name}.params.pt").write_bytes(b"weights")

    state = RunState(round=1, labels=10)
    run.commit(state, slow_checkpoint)
    assert started.wait(5)
    state.labels = 99  # the caller goes on; the commit keeps what it was given
    assert not (run.path / "state.json").exists()  # state.json only after the checkpoint
    release.set()
    run.wait_for_commit()
    assert json.loads((run.path / "state.json").read_text())["labels"] == 10
    assert (run.path / "checkpoint" / "round-0001.params.pt").read_bytes() == b"weights"


def test_background_commit_error_is_raised_by_wait_and_nothing_is_named(tmp_path):
    run = RunDirectory.create(tmp_path / "run", RunConfig())

    def failing_checkpoint(prefix):
        raise OSError("No space left on device")

    run.commit(RunState(round=1, labels=10), failing_checkpoint)
    with pytest.raises(OSError, match="No space left"):
        run.wait_for_commit()
    assert run.load_state() is None
    run.wait_for_commit()  # raised once, not again
