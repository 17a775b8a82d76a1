"""--track: runs, studies and labeling projects in TensorBoard and MLflow, read back with each tool's own reader."""
import csv
import json

import pytest
from click.testing import CliRunner

from alplug.cli import cli
from alplug.errors import MissingDependencyError, UsageError
from alplug.tracking import TRACKING_FILE, TrackSpec, parse_track, read_tracking

from conftest import QUICK
from project_helpers import batch_rows, make_project, write_labels

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

BOTH = ["--track", "tensorboard", "--track", "mlflow"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def mlflow_runs(store_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("alplug")
    return client, client.search_runs([experiment.experiment_id])


def scalars(logdir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


# ---- settings ---------------------------------------------------------------------------------------------------

def test_track_values_are_checked_before_any_work(monkeypatch):
    assert parse_track(["tensorboard", "mlflow=sqlite:///x.db"]) == [
        TrackSpec("tensorboard"), TrackSpec("mlflow", "sqlite:///x.db")]
    for bad, words in ((["wandb"], "unknown tracker"), (["mlflow", "mlflow"], "given twice"),
                       (["tensorboard="], "nothing after '='"),
                       (["mlflow=http://127.0.0.1:9"], "cannot reach an MLflow server")):
        with pytest.raises(UsageError, match=words):
            parse_track(bad)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "alplug\[mlflow\]"'):
        parse_track(["mlflow"])


def test_a_bad_track_is_one_line_and_exit_2(tmp_path):
    result = invoke("run", "--out", tmp_path / "r", "--track", "wandb", *QUICK)
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "unknown tracker" in result.output
    assert not (tmp_path / "r").exists()


def test_a_damaged_tracking_file_records_nothing(tmp_path):
    for text in ("{", "[1]", json.dumps({"mlflow": {"run_id": ["x"]}}), json.dumps({"other": {}}),
                 json.dumps({"mlflow": {"run_id": "a" * 70_000}})):
        (tmp_path / TRACKING_FILE).write_text(text)
        assert read_tracking(tmp_path) == {}
    (tmp_path / TRACKING_FILE).write_text(json.dumps({"mlflow": {"run_id": "abc", "rounds_sent": 2}}))
    assert read_tracking(tmp_path) == {"mlflow": {"run_id": "abc", "rounds_sent": 2}}


# ---- a run, interrupted and resumed -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """A run tracked by both, stopped by Ctrl-C right after round 1 was committed (before it was sent), then
    resumed: the resumed run must send round 1 once and continue the same tracked runs."""
    import alplug.loop as loop

    out = tmp_path_factory.mktemp("tracked") / "run"
    commit = loop.ActiveLearningRun._commit

    def commit_then_interrupt(self, state, row):
        commit(self, state, row)
        if row.round == 1:
            raise KeyboardInterrupt

    loop.ActiveLearningRun._commit = commit_then_interrupt
    try:
        first = invoke("run", "--out", out, *BOTH, *QUICK, "--epochs", "2")
    finally:
        loop.ActiveLearningRun._commit = commit
    assert first.exit_code == 130, first.output
    _, runs = mlflow_runs(out)
    assert [r.info.status for r in runs] == ["KILLED"]
    second = invoke("run", "--resume", out, *BOTH)
    assert second.exit_code == 0, second.output
    return out


def test_a_resumed_run_is_one_tracked_run_with_every_round_once(resumed_run):
    out = resumed_run
    rows = history(out)
    assert [int(r["labels"]) for r in rows] == [10, 15, 20]
    client, runs = mlflow_runs(out)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    val2 = [(m.step, m.value) for m in client.get_metric_history(run_id, "round/val2_acc")]
    assert val2 == [(int(r["labels"]), pytest.approx(float(r["val2_acc"]))) for r in rows]
    tb = scalars(out / "tensorboard", "round/val2_acc")
    assert tb == [(int(r["labels"]), pytest.approx(float(r["val2_acc"]))) for r in rows]
    # skorch's epoch metrics: 3 rounds x 2 epochs, one step each, continuing across rounds and the resume
    assert sorted(m.step for m in client.get_metric_history(run_id, "train_loss")) == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in scalars(out / "tensorboard", "Loss/train_loss")] == [1, 2, 3, 4, 5, 6]


def test_a_tracked_run_has_its_settings_queried_classes_and_files(resumed_run):
    out = resumed_run
    client, (run,) = mlflow_runs(out)
    assert run.data.params["query"] == "margin" and run.data.params["epochs"] == "2"
    assert run.data.tags["alplug.strategy"] == "margin" and run.data.tags["alplug.seed"] == "0"
    rows = history(out)
    for row in rows[1:]:
        classes = [int(c) for c in row["queried_classes"].split()]
        step = int(row["labels"])
        sent = {c: [m.value for m in client.get_metric_history(run.info.run_id, f"queried_class/{c}")
                    if m.step == step] for c in range(10)}
        assert sent == {c: [float(classes.count(c))] for c in range(10)} and len(classes) == 5
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"result.json", "history.csv", "config.toml", "learning_curve.png", "model.pt"} <= artifacts
    assert run.data.metrics["test_accuracy"] == pytest.approx(json.loads((out / "result.json").read_text())
                                                              ["test_accuracy"])


# ---- a study ----------------------------------------------------------------------------------------------------

def test_a_study_is_a_parent_run_with_a_child_per_strategy_and_seed(tmp_path):
    out = tmp_path / "study"
    args = ["compare", "--query", "random,margin", "--seeds", 2, "--out", out, *BOTH, *QUICK, "--rounds", 1]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    client, runs = mlflow_runs(out)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted((r.data.tags["alplug.strategy"], r.data.tags["alplug.seed"]) for r in children) == [
        ("margin", "0"), ("margin", "1"), ("random", "0"), ("random", "1")]
    assert all(r.info.status == "FINISHED" and "round/val2_acc" in r.data.metrics for r in children)
    assert any(a.path == "report" for a in client.list_artifacts(parents[0].info.run_id))
    for name in ("random-s0", "random-s1", "margin-s0", "margin-s1"):
        rows = history(out / "runs" / name)
        assert scalars(out / "tensorboard" / name, "round/val2_acc") == [
            (int(r["labels"]), pytest.approx(float(r["val2_acc"]))) for r in rows]
    # running the study again resumes it: the same parent, no new runs
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    _, runs_again = mlflow_runs(out)
    assert sorted(r.info.run_id for r in runs_again) == sorted(r.info.run_id for r in runs)


# ---- a labeling project -----------------------------------------------------------------------------------------

def test_a_project_is_one_tracked_run_with_a_round_per_trained_batch(tmp_path):
    project, truth = make_project(tmp_path)
    result = invoke("project", "next", project, "--out", tmp_path / "b1.csv", *BOTH)
    assert result.exit_code == 0, result.output
    assert not (project / TRACKING_FILE).exists()  # nothing trained yet: nothing to track
    labeled = []
    for batch in (2, 3):
        rows = batch_rows(tmp_path / f"b{batch - 1}.csv")
        labeled += rows
        write_labels(tmp_path / f"l{batch}.csv", [(r["path"], truth[r["path"]]) for r in rows])
        assert invoke("project", "import", project, tmp_path / f"l{batch}.csv").exit_code == 0
        result = invoke("project", "next", project, "--out", tmp_path / f"b{batch}.csv", *BOTH)
        assert result.exit_code == 0 and "trained on" in result.output, result.output
    client, runs = mlflow_runs(project)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "project/labels")]
    assert steps == [6, 12]
    guessed = sum(runs[0].data.metrics[f"guessed_class/{c}"] for c in ("zero", "one", "two"))
    assert guessed == 6  # the last batch's six images, each guessed as one class
    assert [s for s, _ in scalars(project / "tensorboard", "project/labels")] == [6, 12]
    # epochs step on by batch: batch b's epoch e is step b x epochs + e (one epoch here; batch 1 trained none)
    assert [s for s, _ in scalars(project / "tensorboard", "Loss/train_loss")] == [3, 4]


def test_a_tracker_that_cannot_open_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory would go")
    result = invoke("run", "--out", tmp_path / "r", "--track", f"tensorboard={blocker}", *QUICK)
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith(
        f"alplug: error: --track tensorboard={blocker}: cannot open it"), result.output


# ---- a tracker added in one class --------------------------------------------------------------------------------

def test_a_tracker_added_in_one_class_tracks_a_run(tmp_path, request):
    """A Tracker subclass with a kind is all a new tracker is: --track takes it, and the run sends it every
    round's record, the files and the end."""
    from alplug import tracking

    request.addfinalizer(lambda: tracking.TRACKERS.pop("list", None))  # the class below registers itself there
    sent = []

    class ListTracker(tracking.Tracker):
        kind, module, where_metavar, where_help = "list", "json", "NAME", "a name"

        def open(self, directory, config, recorded, name, tags):
            sent.append(("open", config["query"], self.spec.where))
            return {"name": name}

        def where(self):
            return "tracking in a list"

        def callbacks(self):
            return []

        def log_metrics(self, metrics, step):
            sent.append((step, metrics))

        def save_files(self, paths):
            sent.append(("files", sorted(p.name for p in paths)))

        def close(self):
            sent.append("closed")

        def fail(self, interrupted):
            sent.append("failed")

    assert "list[=NAME]" in tracking.track_metavar()
    out = tmp_path / "run"
    result = invoke("run", "--out", out, "--track", "list=mine", *QUICK)
    assert result.exit_code == 0, result.output
    assert "tracking in a list" in result.output and sent[0] == ("open", "margin", "mine")
    rows = history(out)
    rounds = [m for m in sent if isinstance(m, tuple) and isinstance(m[0], int) and "round/round" in m[1]]
    assert [step for step, _ in rounds] == [int(r["labels"]) for r in rows]
    assert [m["round/val2_acc"] for _, m in rounds] == [float(r["val2_acc"]) for r in rows]
    assert ("files", sorted(tracking.RUN_FILES)) in sent and sent[-1] == "closed"
    assert read_tracking(out)["list"]["name"]
