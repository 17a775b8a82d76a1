"""Hostile and careless input at the command line: every case is a one-line error that writes nothing.

Regression tests for the findings of the hardening issue outside the labeling server
(test_label_security.py has those).
"""
import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alplug.cli import cli
from alplug.project import ProjectStore
from conftest import QUICK
from fake_plugins import install_fake_distribution
from project_helpers import make_project


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, code=2, *words, alone=True):
    """Exit ``code``, one error line and no traceback. ``alone``: that line is all the output (input checked
    before anything ran); otherwise it is the last line, after the rounds that ran."""
    out = result.output.strip()
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    last = out.splitlines()[-1]
    assert last.startswith("alplug: error:") and sum(line.startswith("alplug: error") for line in out.splitlines()) == 1
    if alone:
        assert "\n" not in out, out
    for word in words:
        assert word in last, (word, last)


def snapshot(path: Path) -> dict:
    """Every file under ``path`` with its contents' hash (and mode), to show that nothing was written."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
            for p in sorted(path.rglob("*")) if p.is_file()}


# ---- 9: settings from TOML files ----------------------------------------------------------------------------

BAD_TOML = {
    "augment-as-string": 'augment = "false"',
    "fractional-rounds": "rounds = 0.5",
    "rounds-as-string": 'rounds = "3"',
    "lr-as-word": 'lr = "fast"',
    "infinite-epochs": "epochs = inf",
    "fractional-batch": "batch_size = 2.5",
    "image-size-bool": "image_size = true",
    "dataset-number": "dataset = 5",
    "query-list": 'query = ["margin"]',
    "negative-seed": "seed = -1",
    "test-size-fraction-above-one": "test_size = 1.5",
    "nan-lr": "lr = nan",
    "nested-option": "[query_options]\nT = {a = 1}",
    "not-toml": "rounds = = 3",
    "unknown-key": "roundz = 3",
    "huge-image": "image_size = 1000000",
    "empty-query": 'query = ""',
}


@pytest.mark.parametrize("case", sorted(BAD_TOML))
def test_bad_settings_files_are_one_line_errors_and_nothing_is_written(tmp_path, case):
    config = tmp_path / "study.toml"
    config.write_text(BAD_TOML[case] + "\n")
    out = tmp_path / "run"
    assert_one_line_error(invoke("run", "--config", config, "--out", out))
    assert not out.exists()
    study = tmp_path / "study"
    assert_one_line_error(invoke("compare", "--config", config, "--out", study))
    assert not study.exists()


@pytest.mark.parametrize("content", [b"\xff\xfe rounds = 3", None])
def test_unreadable_settings_files(tmp_path, content):
    config = tmp_path / "study.toml"
    if content is None:
        config.mkdir()  # a directory given as the file
    else:
        config.write_bytes(content)
    assert_one_line_error(invoke("run", "--config", config, "--out", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# ---- 11: npz data sets ------------------------------------------------------------------------------------


def _npz_cases(tmp_path: Path) -> dict:
    X = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 4
    cases = {}
    obj = tmp_path / "object.npz"
    np.savez(obj, X=np.array([X[i] for i in range(40)] + [None], dtype=object)[:40], y=y)
    cases["object-arrays"] = obj
    nan = tmp_path / "nan.npz"
    np.savez(nan, X=X, y=np.where(np.arange(40) == 3, np.nan, y.astype(float)))
    cases["nan-labels"] = nan
    column = tmp_path / "column.npz"
    np.savez(column, X=X, y=y[:, None])
    cases["y-column"] = column
    frac = tmp_path / "fractional.npz"
    np.savez(frac, X=X, y=y + 0.5)
    cases["fractional-labels"] = frac
    folder = tmp_path / "short"
    folder.mkdir()
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    data = (folder / "X.npy").read_bytes()
    (folder / "X.npy").write_bytes(data[: len(data) // 2])  # the header promises more than the file holds
    cases["short-npy"] = folder
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not a zip at all")
    cases["not-a-zip"] = garbage
    return cases


@pytest.mark.parametrize("case", ["object-arrays", "nan-labels", "y-column", "fractional-labels", "short-npy",
                                  "not-a-zip"])
def test_bad_npz_data_sets_are_one_line_errors_and_nothing_is_written(tmp_path, case):
    path = _npz_cases(tmp_path)[case]
    out = tmp_path / "run"
    assert_one_line_error(invoke("run", *QUICK, "--dataset", f"npz:{path}", "--out", out))
    assert not out.exists()


# ---- 11, 13: damaged run directories ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run stopped after round 1 (of 2): resumable."""
    out = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("run", "--out", out, *QUICK, "--budget", "15", "--model", "squeezenet1_1")
    assert result.exit_code == 0, result.output
    state = json.loads((out / "state.json").read_text())
    state.pop("finished")  # as if it had been interrupted after round 1
    (out / "state.json").write_text(json.dumps(state))
    (out / "result.json").unlink()
    return out


def _edit_state(change):
    def damage(run: Path):
        state = json.loads((run / "state.json").read_text())
        change(state)
        (run / "state.json").write_text(json.dumps(state))
    return damage


DAMAGE = {
    "truncated": lambda run: (run / "state.json").write_text((run / "state.json").read_text()[:40]),
    "empty": lambda run: (run / "state.json").write_text(""),
    "a-list": lambda run: (run / "state.json").write_text("[1, 2]"),
    "checkpoint-missing": lambda run: [p.unlink() for p in (run / "checkpoint").glob("*.params.pt")],
    "negative-id": _edit_state(lambda s: s["queried"].__setitem__(0, -4)),
    "duplicate-id": _edit_state(lambda s: s["queried"].__setitem__(1, s["queried"][0])),
    "id-not-in-pool": _edit_state(lambda s: s["queried"].__setitem__(0, 10**9)),
    "a-billion-labels": _edit_state(lambda s: s.__setitem__("labels", 10**9)),
    "checkpoint-outside": _edit_state(lambda s: s.__setitem__("checkpoint", "../../../../etc/passwd")),
    "history-too-short": _edit_state(lambda s: s["history"].pop()),
    "round-as-string": _edit_state(lambda s: s.__setitem__("round", "1")),
    "ssl-backbone-a-list": _edit_state(lambda s: s.__setitem__("ssl_backbone", ["x"])),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_resuming_a_damaged_run_directory_is_a_one_line_error_that_changes_nothing(tmp_path, finished_run, case):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    DAMAGE[case](run)
    before = snapshot(run)
    assert_one_line_error(invoke("run", "--resume", run), 2, "cannot be resumed")
    assert snapshot(run) == before


def test_the_undamaged_copy_resumes(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    result = invoke("run", "--resume", run)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "result.json").read_text())["labels"] == 15


# ---- 11: weights files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["non-tensor", "non-string-key"])
def test_weights_that_are_not_a_state_dict_of_tensors(tmp_path, payload):
    import torch

    weights = tmp_path / "w.pt"
    state = {"features.0.weight": 3} if payload == "non-tensor" else {7: torch.zeros(1)}
    torch.save(state, weights)
    out = tmp_path / "run"
    assert_one_line_error(invoke("run", "--weights", weights, "--out", out, *QUICK), 2, "not a state dict")
    assert not out.exists()


# ---- 4, 11, 13: CSV files in and out --------------------------------------------------------------------------


def test_every_string_survives_neutralise_then_restore():
    from alplug.csvcells import neutralise, restore

    alphabet = ["", "'", "=", "+", "-", "@", "\t", "\r", "a", " "]
    for a in alphabet:
        for b in alphabet:
            for c in alphabet:
                s = a + b + c
                assert restore(neutralise(s)) == s
                assert not neutralise(s).startswith(("=", "+", "-", "@", "\t", "\r"))
    assert neutralise(-0.5) == -0.5 and neutralise(3) == 3  # numbers stay numbers


@pytest.fixture
def formula_project(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    names = ["=HYPERLINK(1).png", "+cmd.png", "-2+3.png", "@SUM(A1).png", "plain.png", "'=quoted.png"]
    for i, name in enumerate(names):
        Image.fromarray(np.full((16, 16), 20 * i, np.uint8)).save(images / name)
    project = tmp_path / "proj"
    assert invoke("project", "init", project, "--images", images, "--classes", "-1,+1").exit_code == 0
    return project, names


def test_exports_and_batch_files_neutralise_formulas_and_reimport_unchanged(tmp_path, formula_project):
    project, names = formula_project
    store = ProjectStore(project)
    for i, name in enumerate(names):
        store.add_label(store.image_id(name), "-1" if i % 2 else "+1", who='=HYPERLINK("http://evil")',
                        source="import")
    store.close()
    out = tmp_path / "labels.csv"
    assert invoke("project", "export", project, "--out", out).exit_code == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell
    assert {r[0] for r in rows[1:]} == {"'" + n if n[0] in "=+-@" or n.startswith("'=") else n for n in names}
    result = invoke("project", "import", project, out)
    assert result.exit_code == 0 and "imported 0 label(s); 6 unchanged" in result.output
    # the batch file `project next` writes, filled in and imported
    fresh = tmp_path / "fresh"
    shutil.copytree(project, fresh)
    with sqlite3.connect(fresh / "project.sqlite") as db:
        db.execute("DELETE FROM labels")
    batch = tmp_path / "batch.csv"
    assert invoke("project", "next", fresh, "-n", "6", "--out", batch).exit_code == 0
    rows = list(csv.reader(io.StringIO(batch.read_text())))
    assert all(not r[0].startswith(("=", "+", "-", "@")) for r in rows)
    filled = "".join(f"{r[0]},'+1\n" if i else "path,label\n" for i, r in enumerate(rows))
    batch.unlink()
    batch.write_text(filled)
    result = invoke("project", "import", fresh, batch)
    assert result.exit_code == 0 and "imported 6" in result.output, result.output
    store = ProjectStore(fresh)
    assert {row[1] for row in store.current_labels()} == set(names)
    assert {row[2] for row in store.current_labels()} == {"+1"}
    store.close()


BAD_CSV = {
    "latin-1": ("path,label\ncafé.png,one\n".encode("latin-1"), "not UTF-8"),
    "huge-field": (("path,label\n" + "a" * 200_000 + ",one\n").encode(), "not valid CSV"),
    "two-path-columns": (b"path,label,path\nx.png,one,y.png\n", "twice"),
    "no-label-column": (b"path,name\nx.png,one\n", "not at all"),
    "a-directory": (None, "is a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_imports_are_one_line_errors_that_import_nothing(tmp_path, case):
    project, _ = make_project(tmp_path, 2)
    data, words = BAD_CSV[case]
    path = tmp_path / "labels.csv"
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    assert_one_line_error(invoke("project", "import", project, path), 2, words)
    with sqlite3.connect(project / "project.sqlite") as db:
        assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


# ---- 5, 10, 11: plugins ---------------------------------------------------------------------------------------

HOSTILE_PLUGIN = """
    import numpy as np

    def margin(learner, X_pool, n_instances=1, *, random_state=None):
        \"\"\"Claims the built-in's name.\"\"\"
        raise RuntimeError("the impostor ran")

    def scribble(learner, X_pool, n_instances=1, *, random_state=None):
        \"\"\"Writes into the pool it was given.\"\"\"
        X_pool[:] = X_pool[0]
        return np.arange(n_instances), np.zeros(n_instances)

    def raiser(learner, X_pool, n_instances=1, *, random_state=None):
        \"\"\"Has a bug.\"\"\"
        raise ValueError("boom")

    def quitter(learner, X_pool, n_instances=1, *, random_state=None):
        \"\"\"Calls sys.exit(0).\"\"\"
        raise SystemExit(0)
"""


@pytest.fixture
def hostile_plugin(tmp_path, monkeypatch):
    entry_points = {n: f"fake_hostile:{n}" for n in ("margin", "scribble", "raiser", "quitter")}
    site = install_fake_distribution(tmp_path / "site", "alplug-fake-hostile", entry_points,
                                     {"fake_hostile": HOSTILE_PLUGIN})
    monkeypatch.syspath_prepend(str(site))  # found before alplug itself
    return site


def test_a_plugin_cannot_replace_a_built_in_strategy(tmp_path, hostile_plugin):
    from alplug.strategies.registry import PluginConflictWarning, available_strategies, get_strategy

    assert available_strategies()["margin"].distribution == "alplug"
    with pytest.warns(PluginConflictWarning, match="alplug-fake-hostile"):
        get_strategy("margin")
    listing = invoke("strategies").output
    margin_row = next(line for line in listing.splitlines() if line.startswith("margin "))
    assert "alplug " in margin_row and "fake-hostile" not in margin_row
    assert "CONFLICT" in listing and "alplug-fake-hostile 0.3.0" in listing
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *QUICK, "--rounds", "1")
    assert result.exit_code == 0, result.output  # the impostor would have raised
    sources = json.loads((out / "result.json").read_text())["strategy_sources"]
    assert sources == {"margin": f"alplug {__import__('alplug').__version__}"}


def test_a_strategy_that_writes_into_the_pool_corrupts_nothing(tmp_path, hostile_plugin):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *QUICK, "--query", "scribble")
    assert_one_line_error(result, 1, "scribble", "alplug-fake-hostile", "read-only", alone=False)
    state = json.loads((out / "state.json").read_text())
    assert state["round"] == 0 and state["queried"] == []  # round 0 committed, nothing labeled after it


@pytest.mark.parametrize("name, words", [("raiser", ["ValueError: boom"]), ("quitter", ["SystemExit"])])
def test_a_plugin_that_raises_or_exits_is_named_and_the_run_fails(tmp_path, hostile_plugin, name, words):
    result = invoke("run", "--out", tmp_path / "run", *QUICK, "--query", name)
    assert_one_line_error(result, 1, f"strategy {name!r} (alplug-fake-hostile 0.3.0) failed", *words, alone=False)


# ---- 7, 8: images that change or cannot be named -------------------------------------------------------------


def test_an_image_corrupted_after_init_is_left_out_and_training_goes_on(tmp_path):
    project, truth = make_project(tmp_path)
    store = ProjectStore(project)
    by_class = {}
    for path, name in sorted(truth.items()):
        by_class.setdefault(name, []).append(path)
    for name, paths in by_class.items():  # two labels per class: the next batch trains a model
        for path in paths[:2]:
            store.add_label(store.image_id(path), name, who="t", source="import")
    victim = by_class["one"][5]
    data = (store.images_dir / victim).read_bytes()
    (store.images_dir / victim).write_bytes(data[: len(data) // 3])  # truncated
    store.close()
    result = invoke("project", "next", project, "-n", "4")
    assert result.exit_code == 0, result.output
    assert victim in result.output and "can no longer be read" in result.output
    store = ProjectStore(project)
    problems = dict(store.unreadable_images())
    assert victim in problems and problems[victim]
    assert store.pending_count() == 4 and victim not in store.pending_paths(1)
    assert store.batches()[-1]["trained_on"] > 0  # a model was trained, without the image
    store.close()
    assert invoke("project", "status", project).exit_code == 0


def test_a_file_name_that_is_not_utf8_is_recorded_and_left_out(tmp_path):
    from data_formats import write_unlabeled_folder

    write_unlabeled_folder(tmp_path / "images", per_class=2, corrupt=False)
    png = next((tmp_path / "images").rglob("*.png")).read_bytes()
    with open(os.path.join(os.fsencode(tmp_path / "images"), b"caf\xe9.png"), "wb") as f:
        f.write(png)
    project = tmp_path / "proj"
    result = invoke("project", "init", project, "--images", tmp_path / "images", "--classes", "zero,one,two")
    assert result.exit_code == 0, result.output
    assert "(1 unreadable, left out)" in result.output
    store = ProjectStore(project)
    (path, why), = store.unreadable_images()
    assert path == "caf\\xe9.png" and "not valid UTF-8" in why
    store.close()


def test_a_failed_init_leaves_nothing_behind(tmp_path):
    from alplug.config import RunConfig

    project = tmp_path / "proj"
    rows = [("a.png", True, None, "L"), ("a.png", True, None, "L")]  # the database refuses the second
    with pytest.raises(sqlite3.IntegrityError):
        ProjectStore.create(project, tmp_path, ["a", "b"], RunConfig(), rows)
    assert not project.exists()
    ProjectStore.create(project, tmp_path, ["a", "b"], RunConfig(), rows[:1]).close()  # the same init again


# ---- 11, 13: writing ------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A tiny tmpfs of our own (root only), to fill up or mount read-only."""
    mounts = []

    def mount(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode:
            pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:  # lazily if a file is still open there, so no mount outlives the test
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_during_a_run_is_one_line_and_the_run_resumes(tmp_path, small_disk):
    disk = small_disk("4m")  # room for one SqueezeNet checkpoint, not for two
    out = disk / "run"
    result = invoke("run", "--out", out, *QUICK, "--model", "squeezenet1_1")
    assert_one_line_error(result, 1, "No space left on device", f"--resume {out}", alone=False)
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
    result = invoke("run", "--resume", out)  # from the last round that was committed whole
    assert result.exit_code == 0, result.output
    whole = tmp_path / "whole"
    assert invoke("run", "--out", whole, *QUICK, "--model", "squeezenet1_1").exit_code == 0
    drop = ("train_seconds", "query_seconds")
    rows = [[{k: v for k, v in r.items() if k not in drop} for r in json.loads((d / "state.json").read_text())["history"]]
            for d in (out, whole)]
    assert rows[0] == rows[1]  # the same history as a run that never met a full disk


def test_a_read_only_out_is_a_one_line_usage_error(tmp_path, small_disk):
    disk = small_disk("1m", read_only=True)
    assert_one_line_error(invoke("run", "--out", disk / "run", *QUICK), 2, "Read-only file system")


def test_an_export_on_a_full_disk_leaves_no_file_to_block_the_next_try(tmp_path, small_disk):
    project, _ = make_project(tmp_path, 4)
    store = ProjectStore(project)
    with store.transaction() as db:  # long names, as an alplug before names were bounded stored them
        for image_id, path in zip(*store.readable_images()):
            ProjectStore._insert_label(db, image_id, "zero", "x" * 2000, "import", None)
    store.close()
    disk = small_disk("64k")
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk, then free 8 KB: less than the export needs
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError:
            pass
        f.truncate(f.tell() - 8192)
    out = disk / "labels.csv"
    result = invoke("project", "export", project, "--out", out)
    assert_one_line_error(result, 1, "No space left on device")
    assert not out.exists() and [p.name for p in disk.iterdir()] == ["filler"]
    filler.unlink()
    assert invoke("project", "export", project, "--out", out).exit_code == 0  # the next try is not blocked
    assert out.read_text().startswith("path,label,who,at,source\n")


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    import subprocess
    import sys

    # A fresh process: the mode is read from the umask when alplug.userfiles is imported.
    script = ("import os, sys; os.umask(0o022); from pathlib import Path; from alplug.userfiles import atomic_write; "
              "d = Path(sys.argv[1]); atomic_write(d / 'a.txt', 'x'); atomic_write(d / 'b.txt', 'x', exclusive=True)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
