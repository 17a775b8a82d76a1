import json
import os
import re
import threading

import pytest

from alplug.config import RunConfig
from alplug.errors import UsageError
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


# ---- round records --------------------------------------------------------------------------------------------

def _record(**changes):
    from alplug.records import RoundRecord

    values = dict(round=1, labels=15, queried=5, train_seconds=0.4, query_seconds=0.1, train_loss=2.3, val1_acc=0.3,
                  val1_loss=1.9, val2_acc=0.5, val2_loss=1.7, queried_ids=[4, 9], queried_classes=[1, 0],
                  strategy="=margin", test_acc=0.45, stop={"kappa": 0.8, "uncertainty": None})
    return RoundRecord(**{**values, **changes})


def test_a_round_record_goes_through_state_json_and_into_history_csv_unchanged():
    from alplug.records import RoundRecord, history_csv

    record = _record()
    assert RoundRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    # history.csv keeps the columns and cells it had when rows were dicts
    assert history_csv([record]).splitlines() == [
        "round,labels,queried,train_seconds,query_seconds,train_loss,val1_acc,val1_loss,val2_acc,val2_loss,"
        "queried_ids,queried_classes,strategy,test_acc,stop_kappa,stop_uncertainty",
        "1,15,5,0.4,0.1,2.3,0.3,1.9,0.5,1.7,4 9,1 0,'=margin,0.45,0.8,"]
    assert record.numbers() == {"labels": 15.0, "queried": 5.0, "train_seconds": 0.4, "query_seconds": 0.1,
                                "train_loss": 2.3, "val1_acc": 0.3, "val1_loss": 1.9, "val2_acc": 0.5,
                                "val2_loss": 1.7, "test_acc": 0.45, "stop_kappa": 0.8}


@pytest.mark.parametrize("change,message", [
    ({"labels": True}, "labels = True, not a whole number"),
    ({"round": -1}, "round = -1, not a whole number"),
    ({"val2_acc": 1.5}, "val2_acc = 1.5, not an accuracy"),
    ({"test_acc": "0.9"}, "test_acc = '0.9', not a number"),
    ({"queried_ids": [1, -2]}, "queried_ids that are not a list"),
    ({"queried_classes": "1 2"}, "queried_classes that are not a list"),
    ({"strategy": "x" * 1001}, "strategy that is not a short text"),
    ({"stop_kappa": [1]}, "stop_kappa = [1], not a number"),
    ({"val2_acc": None}, "val2_acc = None, not a number"),
])
def test_a_round_record_from_a_file_is_checked(change, message):
    from alplug.records import RoundRecord

    with pytest.raises(ValueError, match=re.escape(message)):
        RoundRecord.from_dict({**_record().to_dict(), **change})
    row = _record().to_dict()
    del row["val2_acc"]
    with pytest.raises(ValueError, match="has no val2_acc"):
        RoundRecord.from_dict(row)
    # an older alplug's record: the fields it did not write take their defaults
    old = RoundRecord.from_dict({"round": 0, "labels": 10, "val2_acc": 0.2, "unknown": 1})
    assert old.test_acc is None and old.queried_ids == [] and old.stop == {"kappa": None, "uncertainty": None}


def test_a_run_result_from_a_file_is_checked():
    from alplug.records import RunResult

    result = RunResult(test_accuracy=0.9, classes=["a", "b"], labels=20, split_sizes={"pool": 100})
    assert RunResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    for change, message in (({"test_accuracy": 1.5}, "not an accuracy"), ({"classes": ["a"]}, "fewer than two"),
                            ({"classes": "ab"}, "not a list of short texts"), ({"labels": -1}, "whole number"),
                            ({"split_sizes": {"pool": "x"}}, "split_sizes"), ({"config": []}, "not an object"),
                            ({"stop_reason": 3}, "not a short text")):
        with pytest.raises(ValueError, match=message):
            RunResult.from_dict({**result.to_dict(), **change})
    with pytest.raises(ValueError, match="has no test_accuracy"):
        RunResult.from_dict({"classes": ["a", "b"]})


def test_a_damaged_result_of_a_finished_run_is_a_one_line_error(tmp_path):
    run = RunDirectory.create(tmp_path / "run", RunConfig())
    (run.path / "result.json").write_text('{"test_accuracy": "high"}')
    with pytest.raises(UsageError, match="result.json cannot be read .*test_accuracy"):
        run.read_result()
