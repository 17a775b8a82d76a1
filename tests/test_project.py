"""Labeling projects from the command line: init, next, import, export, status."""
import csv
import io
import sqlite3

import pytest

from alplug.project.store import ProjectStore

from project_helpers import batch_rows, invoke, make_project, write_labels


def db(project):
    return sqlite3.connect(project / "project.sqlite")


def test_init_records_every_readable_image_and_reports_the_corrupt_one(tmp_path):
    project, truth = make_project(tmp_path)
    paths = {r[0]: r[1] for r in db(project).execute("SELECT path, readable FROM images")}
    assert {p for p, ok in paths.items() if ok} == set(truth)  # nested, mixed sizes, gray and RGB, PNG and JPEG
    assert paths["broken.png"] == 0
    result = invoke("project", "status", project)
    assert "24 unlabeled (0 of them waiting in the queue), 1 unreadable" in result.output and "zero 0, one 0, two 0" in result.output


@pytest.mark.parametrize("args,message", [
    (["--classes", "zero"], "at least two distinct"),
    (["--classes", "a,a"], "at least two distinct"),
    (["--classes", "a,b", "--query", "margn"], "did you mean 'margin'"),
    (["--classes", "a,b", "--model", "resnet19"], "did you mean 'resnet18'"),
    (["--classes", "a,b", "--images", "/no/such/folder"], "does not exist"),
    (["--classes", "a,b", "--weights", "/no/such/w.pt"], "does not exist"),
])
def test_bad_init_is_one_line_and_creates_nothing(tmp_path, args, message):
    (tmp_path / "images").mkdir()
    args = ["--images", tmp_path / "images"] + args if "--images" not in args else args
    result = invoke("project", "init", tmp_path / "proj", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "proj").exists()


def test_init_never_overwrites_a_project(tmp_path):
    project, _ = make_project(tmp_path)
    before = (project / "project.sqlite").read_bytes()
    result = invoke("project", "init", project, "--images", tmp_path / "images", "--classes", "x,y")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (project / "project.sqlite").read_bytes() == before


def test_next_import_export_cycle_trains_once_there_are_enough_labels(tmp_path):
    project, truth = make_project(tmp_path)
    # batch 1: too few labels to train, picked at random (the few-labels recipe a project takes by default)
    result = invoke("project", "next", project, "--out", tmp_path / "b1.csv")
    assert result.exit_code == 0 and "random (too few labels to train)" in result.output, result.output
    first = batch_rows(tmp_path / "b1.csv")
    assert len(first) == 6 and all(r["label"] == "" for r in first) and {r["path"] for r in first} <= set(truth)

    # label it, with one unknown path and one unknown class among the rows
    write_labels(tmp_path / "l1.csv", [(r["path"], truth[r["path"]]) for r in first]
                 + [("not/there.png", "one"), (first[0]["path"], "three"), ("broken.png", "two")])
    result = invoke("project", "import", project, tmp_path / "l1.csv", "--who", "ann")
    assert result.exit_code == 1, result.output
    assert "imported 6 label(s)" in result.output and "3 rejected" in result.output
    assert "not/there.png: not an image of this project" in result.output
    assert "unknown class 'three'" in result.output and "broken.png: unreadable image" in result.output

    # the queue of batch 1 is done; batch 2 is chosen by a trained model
    result = invoke("project", "next", project, "-n", 5, "--out", tmp_path / "b2.csv")
    assert result.exit_code == 0, result.output
    assert "by margin (trained on" in result.output and "validation accuracy" in result.output
    second = batch_rows(tmp_path / "b2.csv")
    assert len(second) == 5 and not {r["path"] for r in second} & {r["path"] for r in first}
    batches = db(project).execute("SELECT how, trained_on, val_accuracy FROM batches ORDER BY id").fetchall()
    assert batches[0][:2] == ("random (too few labels to train)", 0) and batches[1][0] == "margin" and batches[1][1] > 0
    assert batches[1][2] is not None
    hints = db(project).execute("SELECT hint_label, hint_confidence FROM queue WHERE batch_id = 2").fetchall()
    assert all(h in ("zero", "one", "two") and 0 < c <= 1 for h, c in hints)
    assert (project / "model.pt").is_file()

    # re-importing the same file changes nothing; export has every label with who and when
    result = invoke("project", "import", project, tmp_path / "l1.csv")
    assert "imported 0 label(s); 6 unchanged" in result.output
    result = invoke("project", "export", project)
    exported = list(csv.DictReader(io.StringIO(result.output)))
    assert {r["path"]: r["label"] for r in exported} == {r["path"]: truth[r["path"]] for r in first}
    assert {r["who"] for r in exported} == {"ann"} and all(r["at"].endswith("Z") for r in exported)

    # a new batch while one is waiting: the unlabeled ones go back to the pool
    result = invoke("project", "next", project, "-n", 4, "--out", tmp_path / "b3.csv")
    assert "5 unlabeled image(s) of the previous batch went back to the pool" in result.output
    assert db(project).execute("SELECT count(*) FROM queue WHERE status = 'pending'").fetchone()[0] == 4


def test_next_and_export_never_overwrite_a_file(tmp_path):
    project, _ = make_project(tmp_path)
    existing = tmp_path / "mine.csv"
    existing.write_text("precious")
    for args in (["next", project, "--out", existing], ["export", project, "--out", existing]):
        result = invoke("project", *args)
        assert result.exit_code == 2 and "already exists" in result.output
    assert existing.read_text() == "precious"
    assert db(project).execute("SELECT count(*) FROM batches").fetchone()[0] == 0


def test_import_needs_path_and_label_columns(tmp_path):
    project, _ = make_project(tmp_path)
    (tmp_path / "bad.csv").write_text("file,class\na.png,zero\n")
    result = invoke("project", "import", project, tmp_path / "bad.csv")
    assert result.exit_code == 2 and "columns path and label" in result.output


def test_commands_on_a_directory_that_is_not_a_project(tmp_path):
    result = invoke("project", "next", tmp_path)
    assert result.exit_code == 2 and "not an alplug labeling project" in result.output


def test_absolute_paths_inside_the_image_folder_are_accepted_on_import(tmp_path):
    project, truth = make_project(tmp_path)
    path = sorted(truth)[0]
    write_labels(tmp_path / "abs.csv", [(str((tmp_path / "images" / path).resolve()), truth[path])])
    result = invoke("project", "import", project, tmp_path / "abs.csv")
    assert result.exit_code == 0 and "imported 1 label(s)" in result.output, result.output


def write_three_patterns(root, copies=10, seed=0):
    """Three distinct patterns, each as ``copies`` slightly noisy images, plus three pure-noise outliers."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.zeros((3, 32, 32), dtype=float)
    base[0, 12:20, :] = 255          # a horizontal bar
    base[1, :, 12:20] = 255          # a vertical bar
    yy, xx = np.mgrid[:32, :32]
    base[2][(yy - 16) ** 2 + (xx - 16) ** 2 < 100] = 255  # a disc
    truth = {}
    root.mkdir(parents=True)
    for p in range(3):
        for i in range(copies):
            img = np.clip(base[p] + rng.normal(0, 12, (32, 32)), 0, 255).astype(np.uint8)
            Image.fromarray(img, mode="L").save(root / f"p{p}_{i:02d}.png")
            truth[f"p{p}_{i:02d}.png"] = p
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L").save(root / f"noise_{i}.png")
        truth[f"noise_{i}.png"] = "outlier"
    return truth


def test_a_project_takes_the_few_labels_recipe_and_random_first_picks_by_default(tmp_path):
    """What a project is for: few labels. Without --recipe it takes few-labels (a scattering trunk pretrained on the pool, frozen), and its
    first batches are random (docs/low-budget.md#first-picks-on-folders-unlike-digits); --recipe none opts out."""
    write_three_patterns(tmp_path / "images")
    result = invoke("project", "init", tmp_path / "proj", "--images", tmp_path / "images", "--classes", "a,b,c")
    assert result.exit_code == 0 and "--model scattering-conv:" in result.output and "--initial random:" in result.output, \
        result.output
    settings = ProjectStore(tmp_path / "proj").settings
    assert (settings.recipe, settings.model, settings.freeze_backbone, settings.initial) == \
        ("few-labels", "scattering-conv", True, "random")
    result = invoke("project", "next", tmp_path / "proj", "-n", 3, "--out", tmp_path / "b1.csv")
    assert result.exit_code == 0 and "random (too few labels to train)" in result.output, result.output
    result = invoke("project", "init", tmp_path / "plain", "--images", tmp_path / "images", "--classes", "a,b,c",
                    "--recipe", "none")
    settings = ProjectStore(tmp_path / "plain").settings
    assert result.exit_code == 0 and (settings.recipe, settings.model, settings.initial) == (None, "resnet18", None)


@pytest.mark.parametrize("initial", [None, "typiclust"])
def test_first_batch_of_an_unlabeled_folder_is_picked_by_typicality(tmp_path, initial):
    """Without a recipe no label is needed before the first batch, and by default it holds one typical image of
    each pattern (TypiClust over the untrained ResNet-18's embeddings)."""
    truth = write_three_patterns(tmp_path / "images")
    extra = ["--initial", initial] if initial else []
    result = invoke("project", "init", tmp_path / "proj", "--images", tmp_path / "images", "--classes", "a,b,c",
                    "--image-size", "32", "--recipe", "none", *extra)
    assert result.exit_code == 0, result.output
    result = invoke("project", "next", tmp_path / "proj", "-n", 3, "--out", tmp_path / "b1.csv")
    assert result.exit_code == 0 and "typiclust (too few labels to train)" in result.output, result.output
    picked = [truth[r["path"]] for r in batch_rows(tmp_path / "b1.csv")]
    assert sorted(picked) == [0, 1, 2]  # one per pattern, no outlier


def test_first_batch_can_still_be_random(tmp_path):
    write_three_patterns(tmp_path / "images")
    result = invoke("project", "init", tmp_path / "proj", "--images", tmp_path / "images", "--classes", "a,b,c",
                    "--image-size", "32", "--initial", "random")
    assert result.exit_code == 0, result.output
    result = invoke("project", "next", tmp_path / "proj", "-n", 3, "--out", tmp_path / "b1.csv")
    assert result.exit_code == 0 and "random (too few labels to train)" in result.output, result.output
    assert len(batch_rows(tmp_path / "b1.csv")) == 3


def test_a_schedule_in_a_project_records_the_stage_that_chose_the_batch(tmp_path):
    project, truth = make_project(tmp_path, 8, "--query", "random@100,margin")
    paths = sorted(truth)
    write_labels(tmp_path / "labels.csv", [(p, truth[p]) for p in paths[::2]])
    assert invoke("project", "import", project, tmp_path / "labels.csv").exit_code == 0
    result = invoke("project", "next", project, "-n", 3, "--out", tmp_path / "b.csv")
    assert result.exit_code == 0 and "by random (trained on" in result.output, result.output
    assert db(project).execute("SELECT how FROM batches").fetchall() == [("random",)]
