"""Regression tests for the second adversarial pass (issue 28): each failed on the code before its fix.

Sections are numbered as the findings: 1-2, 7 Label Studio and CSV imports; 4, 8, 9 several annotators;
5, 13 special files and what reaches the terminal; 6, 14 one-line errors; 11 the backbone cache; 12
--image-url. The tracker outages (3, 10, 15) are in test_tracker_outages.py.
"""
import json
import os
import signal
import sqlite3
from contextlib import contextmanager

import numpy as np
import pytest

from alplug.project.store import ProjectStore

from conftest import QUICK, write_finished_run
from project_helpers import invoke, make_project, write_labels


@contextmanager
def within(seconds: int):
    """Fail instead of hanging: what used to block forever (a FIFO) must answer well within ``seconds``."""
    def timeout(*_):
        raise AssertionError(f"still waiting after {seconds} s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line_error(result, code=2, words=""):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("alplug: error:") and words in lines[-1], result.output
    assert "Traceback" not in result.output


def labels_of(project, source=None):
    db = sqlite3.connect(project / "project.sqlite")
    where = f" WHERE source = '{source}'" if source else ""
    return db.execute(f"SELECT image_id, label, who FROM labels{where} ORDER BY id").fetchall()


def current(project) -> dict:
    s = ProjectStore(project)
    try:
        return {row[1]: row[2] for row in s.current_labels()}
    finally:
        s.close()


def ls_task(path, *annotations, task_id=1):
    """A Label Studio export task with (label, annotator, updated_at) annotations."""
    return {"id": task_id, "data": {"alplug_path": path},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": [label]}}],
                             "created_username": f"{who}, 7", "updated_at": at} for label, who, at in annotations]}


@pytest.fixture
def project(tmp_path):
    project, truth = make_project(tmp_path)
    return project, sorted(truth)


# ---- 1. a Label Studio re-import keeps the label Label Studio ends with -----------------------------------------

def test_label_studio_exports_imported_in_turn_end_at_the_latest_label(tmp_path, project):
    project, paths = project
    path = paths[0]
    for n, (label, at) in enumerate((("zero", "2026-01-01T10:00:00Z"), ("one", "2026-01-02T10:00:00Z"),
                                     ("zero", "2026-01-03T10:00:00Z")), 1):
        (tmp_path / f"e{n}.json").write_text(json.dumps([ls_task(path, (label, "alice", at))]))
        result = invoke("project", "import", project, tmp_path / f"e{n}.json")
        assert result.exit_code == 0 and "imported 1 label(s)" in result.output, result.output
    assert current(project)[path] == "zero"  # was "one", with "1 unchanged" for the third export
    again = invoke("project", "import", project, tmp_path / "e3.json")
    assert "imported 0 label(s); 1 unchanged" in again.output


def test_one_export_holding_an_annotators_changes_ends_at_the_newest(tmp_path, project):
    project, paths = project
    export = [ls_task(paths[0], ("zero", "alice", "2026-01-01T10:00:00Z"), ("one", "alice", "2026-01-02T10:00:00Z"),
                      ("zero", "alice", "2026-01-03T10:00:00Z"))]
    (tmp_path / "e.json").write_text(json.dumps(export))
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert "imported 1 label(s); 0 unchanged, 2 superseded by a later annotation" in result.output, result.output
    assert current(project)[paths[0]] == "zero"


# ---- 2. imports in linear time, with progress, and bounded memory ---------------------------------------------------

class CountingText(str):
    """A str that adds up how many characters ``count`` scans."""

    scanned = 0

    def count(self, sub, start=0, end=None):
        end = len(self) if end is None else end
        CountingText.scanned += max(0, end - start)
        return super().count(sub, start, end)


def test_reading_an_export_scans_its_text_once():
    from alplug.project.labelstudio import _tasks_with_lines

    text = CountingText("[\n" + ",\n".join(json.dumps({"id": i, "data": {}}) for i in range(2000)) + "\n]")
    CountingText.scanned = 0
    lines = [line for line, _ in _tasks_with_lines(text, "e.json")]
    assert lines == list(range(2, 2002))
    assert CountingText.scanned <= len(text)  # was the sum over tasks of each one's offset: 2000 x a half file


def test_finding_an_image_by_its_file_name_does_not_walk_every_image(tmp_path):
    from alplug.project.labelstudio import _PathFinder

    class Paths(dict):
        walked = 0

        def __iter__(self):
            Paths.walked += len(self)
            return super().__iter__()

    known = Paths({f"d{i}/img{i}.png": i for i in range(500)})
    find = _PathFinder(known, tmp_path / "images")
    assert [find({"image": f"http://x/other/img{i}.png"}) for i in range(500)] == list(known)
    assert Paths.walked <= 2 * len(known)  # was 500 x 500: a scan of every image per task


def test_a_long_import_says_how_far_it_got(tmp_path, project, monkeypatch):
    import alplug.project.labelstudio as ls

    project, paths = project
    monkeypatch.setattr(ls, "PROGRESS_EVERY", 2)
    export = [ls_task(p, ("zero", "alice", "2026-01-01T10:00:00Z"), task_id=i) for i, p in enumerate(paths[:5])]
    (tmp_path / "e.json").write_text(json.dumps(export))
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert result.exit_code == 0 and "read 2 tasks" in result.output and "read 4 tasks" in result.output


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_link_to_dev_zero_is_refused_at_once(tmp_path, project, suffix):
    project, _ = project
    (tmp_path / f"zero{suffix}").symlink_to("/dev/zero")
    with within(10):
        one_line_error(invoke("project", "import", project, tmp_path / f"zero{suffix}"), 2, "is a device")


# ---- 5. special files never hang ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_fifo_to_import_is_refused_at_once(tmp_path, project, suffix):
    project, _ = project
    os.mkfifo(tmp_path / f"pipe{suffix}")
    with within(10):
        one_line_error(invoke("project", "import", project, tmp_path / f"pipe{suffix}"), 2, "FIFO")


def test_a_fifo_tracking_file_records_nothing(tmp_path):
    from alplug.tracking import TRACKING_FILE, read_tracking

    os.mkfifo(tmp_path / TRACKING_FILE)
    with within(10):
        assert read_tracking(tmp_path) == {}


def test_a_fifo_state_file_is_a_damaged_run(tmp_path):
    from alplug.rundir import RunDirectory

    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "run" / "state.json")
    run = RunDirectory.__new__(RunDirectory)
    run.path = tmp_path / "run"
    with within(10), pytest.raises(Exception, match="cannot be resumed: state.json cannot be read .*FIFO"):
        run.load_state()


def test_a_fifo_settings_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "s.toml")
    with within(10):
        one_line_error(invoke("run", "--config", tmp_path / "s.toml", "--out", tmp_path / "r"), 2, "FIFO")
    assert not (tmp_path / "r").exists()


# ---- 6 and 7. one-line errors, whole imports -----------------------------------------------------------------------

def test_an_export_number_beyond_pythons_digits_is_one_line(tmp_path, project):
    project, _ = project
    (tmp_path / "e.json").write_text('[\n{"id": ' + "9" * 5000 + ', "data": {}}]')
    one_line_error(invoke("project", "import", project, tmp_path / "e.json"), 2, "line 2: not valid JSON")


@pytest.mark.parametrize("value", [["a.png"], {"a": 1}, 3])
def test_an_alplug_path_that_is_not_a_string_is_rejected_by_line(tmp_path, project, value):
    project, _ = project
    (tmp_path / "e.json").write_text(json.dumps([{"id": 1, "data": {"alplug_path": value},
                                                  "annotations": []}]))
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert result.exit_code == 1 and "1 rejected" in result.output and "not an image of this project" in \
        result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_an_import_into_a_locked_project_is_one_line_and_imports_nothing(tmp_path, project, monkeypatch, kind):
    import alplug.project.store as store_module

    project, paths = project
    if kind == "csv":
        write_labels(tmp_path / "l.csv", [(p, "zero") for p in paths])
    else:
        (tmp_path / "l.json").write_text(json.dumps([ls_task(p, ("zero", "a", "2026-01-01T00:00:00Z"), task_id=i)
                                                     for i, p in enumerate(paths)]))
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(project / "project.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        one_line_error(invoke("project", "import", project, tmp_path / f"l.{kind}"), 2, "another alplug command")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert labels_of(project) == []


def test_an_import_that_fails_part_way_leaves_nothing(tmp_path, project, monkeypatch):
    project, paths = project
    write_labels(tmp_path / "l.csv", [(p, "zero") for p in paths])
    real, calls = ProjectStore._insert_label, []

    def fail_third(db, *args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # a Ctrl-C (or a kill) in the middle
        real(db, *args)

    monkeypatch.setattr(ProjectStore, "_insert_label", staticmethod(fail_third))
    result = invoke("project", "import", project, tmp_path / "l.csv")
    assert result.exit_code != 0 and len(calls) == 3
    assert labels_of(project) == []  # was the first two


def test_a_npz_with_zero_size_images_is_one_line(tmp_path):
    for name, shape in (("no-pixels", (20, 0, 8)), ("no-images", (0, 8, 8))):
        np.savez(tmp_path / f"{name}.npz", X=np.zeros(shape, dtype=np.uint8), y=np.arange(shape[0]) % 2)
        result = invoke("run", *QUICK, "--dataset", f"npz:{tmp_path / name}.npz", "--out", tmp_path / "r")
        one_line_error(result, 2, "at least one image of at least one pixel")
    assert not (tmp_path / "r").exists()


def test_a_compressed_npz_that_would_not_fit_memory_is_refused_before_loading(tmp_path, monkeypatch):
    import alplug.data.sources as sources

    np.savez_compressed(tmp_path / "bomb.npz", X=np.zeros((200, 32, 32), dtype=np.uint8), y=np.arange(200) % 2)
    assert (tmp_path / "bomb.npz").stat().st_size < 10_000  # 200 KiB in memory from a few compressed bytes
    monkeypatch.setattr(sources, "MAX_NPZ_LOADED_BYTES", 100_000)
    loaded = []
    monkeypatch.setattr(sources, "_npz_images", lambda *a: loaded.append(a) or a[1])
    result = invoke("run", *QUICK, "--dataset", f"npz:{tmp_path / 'bomb.npz'}", "--out", tmp_path / "r")
    one_line_error(result, 2, "is compressed and would take")
    assert loaded == []  # refused from the header, before the array was decompressed


# ---- 8. agreement with many annotators is bounded -----------------------------------------------------------------

def test_agreement_among_two_hundred_annotators_is_bounded(tmp_path, project):
    from alplug.project.agreement import MAX_PAIR_ANNOTATORS, agreement

    project, paths = project
    s = ProjectStore(project)
    ids = s.pool()[:3]
    s.add_labels([(i, ("zero", "one")[(k + j) % 2], f"annotator-{k:03d}") for k in range(200)
                  for j, i in enumerate(ids)], source="label-studio")
    result = agreement(s.annotations(), s.classes, {})
    s.close()
    assert len(result["annotators"]) == 200 and result["pairs_among"] == MAX_PAIR_ANNOTATORS
    assert len(result["pairs"]) == MAX_PAIR_ANNOTATORS * (MAX_PAIR_ANNOTATORS - 1) // 2  # was 19,900
    assert all(len(d["labels"]) <= 10 and d["annotators"] == 200 for d in result["disagreements"])
    status = invoke("project", "status", project)
    assert status.exit_code == 0 and len(status.output.splitlines()) < 60, status.output  # was 19,905 lines
    assert "pairs among the 20 annotators with the most labels" in status.output


# ---- 9. annotator names -------------------------------------------------------------------------------------------

def test_one_tab_casts_one_vote_whatever_names_it_gives(project):
    project, _ = project
    s = ProjectStore(project)
    image = s.pool()[0]
    s.new_batch([image], "test", 0, None, 0.0, needed=[3])
    assert s.label_from_tab(image, "zero", who="alice", client="tab") is None
    assert s.label_from_tab(image, "zero", who="bob", client="tab") is not None  # was accepted: two votes
    assert s.label_from_tab(image, "one", who="bob", client="tab-2") is None
    s.close()
    assert sorted(who for _, _, who in labels_of(project)) == ["alice", "bob"]


def test_names_of_control_characters_only_are_no_names(tmp_path, project):
    project, paths = project
    export = [{"id": 1, "data": {"alplug_path": paths[0]}, "annotations": [
        {"result": [{"type": "choices", "value": {"choices": ["zero"]}}], "created_username": "\x01\x1b\x7f"}]}]
    (tmp_path / "e.json").write_text(json.dumps(export))
    assert invoke("project", "import", project, tmp_path / "e.json", "--who", "importer").exit_code == 0
    assert labels_of(project) == [(ProjectStore(project).image_id(paths[0]), "zero", "importer")]  # was ""
    write_labels(tmp_path / "l.csv", [(paths[1], "one")])
    for who in ("  ", "\x1b[31m"):
        one_line_error(invoke("project", "import", project, tmp_path / "l.csv", "--who", who), 2, "annotator name")


# ---- 4. --overlap with fewer annotators than asked ------------------------------------------------------------------

def test_images_waiting_for_other_annotators_are_said_and_a_lower_overlap_releases_them(project, monkeypatch):
    import alplug.project.server as server

    project, _ = project
    s = ProjectStore(project)
    images = s.pool()[:3]
    s.new_batch(images, "test", 0, None, 0.0, needed=[2, 2, 1])
    for image in images:
        assert s.label_from_tab(image, "zero", who="alice", client="t") is None
    assert s.progress()["waiting_for_others"] == 2 and s.pending_count() == 2
    s.close()
    status = invoke("project", "status", project)
    assert "2 queued image(s) have a label and wait for more annotators" in status.output
    assert "--overlap 1" in status.output
    served = []
    monkeypatch.setattr(server, "serve", lambda *a, **kw: served.append(kw["overlap"]))
    result = invoke("label", project)  # without --overlap: they keep waiting
    assert result.exit_code == 0 and ProjectStore(project).pending_count() == 2
    result = invoke("label", project, "--overlap", "1")
    assert result.exit_code == 0 and "2 queued image(s) waited for more than 1 annotator(s)" in result.output
    assert ProjectStore(project).pending_count() == 0 and served == [(1, 0.2), (1, 0.2)]


def test_the_page_says_how_many_images_wait_for_other_annotators(project):
    from project_helpers import client_for, post

    project, _ = project
    s = ProjectStore(project)
    image = s.pool()[0]
    s.new_batch([image], "test", 0, None, 0.0, needed=[2])
    s.close()
    http = client_for(project)
    post(http, "/api/lease", client="t", who="alice", n=1)
    assert post(http, "/api/label", client="t", who="alice", image_id=image, label="zero").status_code == 200
    state = post(http, "/api/lease", client="t", who="alice", n=1).get_json()
    assert state["items"] == [] and state["progress"]["waiting_for_others"] == 1
    from importlib import resources

    page = resources.files("alplug.project").joinpath("label.html").read_text()
    assert "wait for other annotators" in page and "waiting_for_others" in page


# ---- 11. the backbone cache -----------------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """pretrained_backbone on a tiny stand-in for pretraining: (call, directory, calls)."""
    import torch

    import alplug.ssl as ssl

    calls = []

    def pretrain(settings, images, ids, **kw):
        calls.append(settings)
        module = torch.nn.Module()
        module.backbone = torch.nn.Linear(2, 2)
        return module

    monkeypatch.setattr(ssl, "pretrain", pretrain)
    settings = ssl.PretrainSettings(method="simclr", epochs=1, model="resnet18", in_channels=1, image_size=8,
                                    weights=None, hflip=False, seed=0)
    images = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    directory = tmp_path / "cache"

    def call():
        return ssl.pretrained_backbone(settings, images, np.arange(4), directory=directory, echo=lambda *_: None)

    return call, directory, calls


def test_a_poisoned_cached_backbone_is_refused(cache):
    import torch

    from alplug.models.contract import load_backbone_file
    from alplug.ssl import CachedBackboneError

    call, directory, calls = cache
    first = call()
    target = torch.nn.Linear(2, 2)
    load_backbone_file(target, first.path)  # the file as written loads
    torch.save({"backbone.weight": torch.full((2, 2), 9.0), "backbone.bias": torch.zeros(2)}, first.path)
    with pytest.raises(CachedBackboneError, match="digest differs"):
        call()  # was reused silently
    with pytest.raises(CachedBackboneError, match="digest differs"):
        load_backbone_file(target, first.path)
    assert len(calls) == 1


def test_a_backbone_cached_without_a_digest_gets_one(cache):
    call, directory, calls = cache
    first = call()
    sidecar = first.path.with_suffix(".json")
    values = json.loads(sidecar.read_text())
    digest = values.pop("digest")
    sidecar.write_text(json.dumps(values))  # as an alplug before digests wrote it
    assert call().reused and json.loads(sidecar.read_text())["digest"] == digest and len(calls) == 1


@pytest.mark.parametrize("replacement", ["fifo", "folder"])
def test_a_cached_backbone_replaced_by_a_special_file_is_one_line_before_pretraining(cache, replacement):
    from alplug.ssl import CachedBackboneError

    call, directory, calls = cache
    path = call().path
    path.unlink()
    os.mkfifo(path) if replacement == "fifo" else path.mkdir()
    with within(10), pytest.raises(CachedBackboneError, match=f"cached backbone {path}"):
        call()
    assert len(calls) == 1  # was: pretrained again, then failed naming a temporary file


@pytest.mark.parametrize("replacement", ["symlink", "fifo"])
def test_the_cache_lock_follows_no_link_and_waits_on_no_fifo(cache, tmp_path, replacement):
    from alplug.ssl import CachedBackboneError

    call, directory, calls = cache
    key = call().key
    lock = directory / f".{key}.lock"
    lock.unlink()
    target = tmp_path / "elsewhere"
    lock.symlink_to(target) if replacement == "symlink" else os.mkfifo(lock)
    with within(10), pytest.raises(CachedBackboneError, match="lock file"):
        call()
    assert not target.exists()  # was created through the link


# ---- 12. --image-url ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, words", [("javascript:alert(1)/", "give an http:// or https:// URL"),
                                        ("data:image/png;base64,/", "give an http:// or https:// URL"),
                                        ("images/", "give an http:// or https:// URL"),
                                        ("http://files.lab/images", "end it with /"),
                                        ("http://files.lab/im ages/", "spaces")])
def test_a_bad_image_url_is_refused_before_any_work(tmp_path, project, url, words):
    project, _ = project
    result = invoke("project", "next", project, "--format", "label-studio", "--image-url", url,
                    "--out", tmp_path / "t.json")
    one_line_error(result, 2, words)
    assert not (tmp_path / "t.json").exists()


def test_good_image_urls_pass():
    from alplug.project.labelstudio import check_image_url

    for url in ("http://files.lab/images/", "https://x.org/a/", "/data/local-files/?d="):
        assert check_image_url(url) == url


# ---- 13. what reaches the terminal -----------------------------------------------------------------------------------

def test_terminal_escapes_in_an_imported_csv_are_printed_escaped(tmp_path, project):
    project, _ = project
    write_labels(tmp_path / "l.csv", [("\x1b]0;owned\x07evil.png", "zero"), ("a.png", "\x1b[2Jzero")])
    result = invoke("project", "import", project, tmp_path / "l.csv")
    assert result.exit_code == 1 and "\x1b" not in result.output and "\\x1b" in result.output, result.output


# ---- 14. misleading or silent ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_weights_that_are_a_fifo_or_a_folder_are_named_as_such(tmp_path, kind):
    from alplug.models import ModelWeightsError, build_on_meta_device

    weights = tmp_path / "w.pt"
    os.mkfifo(weights) if kind == "fifo" else weights.mkdir()
    with within(10), pytest.raises(ModelWeightsError, match="FIFO" if kind == "fifo" else "directory"):
        build_on_meta_device("resnet18", weights=str(weights))  # was "does not exist"


def test_features_from_the_parts_after_the_last_weights_is_refused(tmp_path):
    for part in ("fc", "avgpool"):
        result = invoke("run", "--features-from", part, "--out", tmp_path / "r", *QUICK)
        one_line_error(result, 2, "its last part with weights is layer4")
    assert not (tmp_path / "r").exists()


def test_settings_that_do_nothing_are_noted():
    from alplug.checks import idle_settings
    from alplug.config import RunConfig

    assert idle_settings(RunConfig(ssl_epochs=200)) == ["--ssl-epochs 200 has no effect without --ssl"]
    assert idle_settings(RunConfig(ssl="simclr", ssl_epochs=200)) == []
    assert idle_settings(RunConfig(semi_threshold=0.5)) == ["--semi-threshold has no effect without --semi"]
    assert idle_settings(RunConfig()) == []


def test_an_initial_pick_by_an_untrained_models_predictions_is_noted(digits):
    from alplug.config import RunConfig
    from alplug.round_steps import estimator_for, pick_without_labels

    notes = []
    estimator = estimator_for(RunConfig(epochs=1, model="squeezenet1_1"), digits.channels, digits.n_classes,
                              digits.X, image_size=32)
    pool = np.arange(200)
    pick_without_labels(estimator, "margin", pool, 5, seed=0, echo=notes.append)
    assert len(notes) == 1 and "trained on no label" in notes[0]
    pick_without_labels(estimator, "random", pool, 5, seed=0, echo=notes.append)
    assert len(notes) == 1  # random reads no prediction


# ---- 6. reports and recipes on damaged study directories ---------------------------------------------------------

def rounds(val2: float, query: str, test: float) -> list[dict]:
    """Two rounds' records of a finished run."""
    return [dict(round=0, labels=10, train_seconds=0.1, train_loss=2.4, val1_acc=0.3, val1_loss=2.1, val2_acc=0.22,
                 val2_loss=2.1, strategy="random per class", test_acc=0.3, stop={"kappa": None, "uncertainty": 0.7}),
            dict(round=1, labels=15, queried=5, train_seconds=0.4, query_seconds=0.7, train_loss=2.3, val1_acc=0.34,
                 val1_loss=1.9, val2_acc=val2, val2_loss=1.7, queried_ids=[598, 1626, 419, 1088, 979],
                 queried_classes=[6, 1, 5, 7, 2], strategy=query, test_acc=test,
                 stop={"kappa": 0.1, "uncertainty": 0.7})]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A study's directory as `alplug compare` leaves it (two strategies, two seeds), written directly."""
    from alplug.config import RunConfig
    from alplug.study import Study

    path = tmp_path_factory.mktemp("study") / "s"
    study = Study(path, ["random", "margin"], [0, 1], RunConfig(rounds=1, epochs=1))
    study.prepare()
    for run in study.runs:
        test = 0.4 + 0.05 * run.seed + (0.02 if run.query == "margin" else 0)
        write_finished_run(study.run_dir(run), rounds(0.45 + 0.01 * run.seed, run.query, test),
                           {"test_accuracy": test, "classes": [str(c) for c in range(10)],
                            "split_sizes": {"pool": 1587}})
    return path


DAMAGE = {
    "study.toml-fifo": lambda d: ((d / "study.toml").unlink(), os.mkfifo(d / "study.toml")),
    "study.toml-types": lambda d: (d / "study.toml").write_text('queries = 3\nseeds = "x"\n[base]\n'),
    "result-not-an-object": lambda d: (d / "runs/margin-s0/result.json").write_text("[1]"),
    "result-a-folder": lambda d: ((d / "runs/margin-s0/result.json").unlink(),
                                  (d / "runs/margin-s0/result.json").mkdir()),
    "state-missing": lambda d: (d / "runs/margin-s0/state.json").unlink(),
    "records-not-numbers": lambda d: (d / "runs/margin-s0/state.json").write_text(
        (d / "runs/margin-s0/state.json").read_text().replace('"labels": 15', '"labels": "fifteen"')),
    "records-not-accuracies": lambda d: (d / "runs/margin-s0/state.json").write_text(
        (d / "runs/margin-s0/state.json").read_text().replace('"val2_acc": 0.22', '"val2_acc": 22')),
    "records-a-list": lambda d: (d / "runs/margin-s0/state.json").write_text("[[]]"),
    "state-dev-zero": lambda d: ((d / "runs/margin-s0/state.json").unlink(),
                                 (d / "runs/margin-s0/state.json").symlink_to("/dev/zero")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_report_on_a_damaged_study_is_one_line(tmp_path, finished_study, damage):
    import shutil

    study = tmp_path / "s"
    shutil.copytree(finished_study, study)
    DAMAGE[damage](study)
    with within(30):
        one_line_error(invoke("report", study), 2, "damaged")
    assert not (study / "report").exists()


def test_recipes_name_the_damaged_study(tmp_path, finished_study):
    import shutil

    study = tmp_path / "s"
    shutil.copytree(finished_study, study)
    DAMAGE["records-not-numbers"](study)
    one_line_error(invoke("recipes", finished_study, study), 2, f"run {study / 'runs' / 'margin-s0'} is damaged")
    assert invoke("recipes", finished_study, finished_study).exit_code == 0
