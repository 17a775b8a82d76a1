import json
import os

from alplug.config import RunConfig
from alplug.rundir import RunDirectory


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

    state = {"round": 3, "history": [], "labels": 10}
    run.commit(state, save_checkpoint)
    params = str(run.path / "checkpoint" / "round-0003.params.pt")
    state_json = str(run.path / "state.json")
    assert ("fsync", params) in order
    assert order.index(("fsync", params)) < order.index(("replace", state_json))
    # the rename of state.json is made durable too (its directory is flushed after it)
    assert ("fsync", str(run.path)) in order[order.index(("replace", state_json)):]
    assert json.loads((run.path / "state.json").read_text())["checkpoint"] == "checkpoint/round-0003"
