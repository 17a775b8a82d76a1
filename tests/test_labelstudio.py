"""Label Studio out (tasks with the model's guesses) and in (a JSON export with its annotators), checked with
Label Studio's own SDK."""
import json
import sqlite3

import pytest

from alplug.project.labelstudio import labeling_config

from project_helpers import batch_rows, invoke, make_project, write_labels

li_module = pytest.importorskip("label_studio_sdk.label_interface")


def interface(classes):
    return li_module.LabelInterface(labeling_config(classes))


def region(li, label) -> dict:
    """An annotation result entry as Label Studio's SDK builds it."""
    return json.loads(li.get_control("label").label([label]).to_json())


def test_the_labeling_config_parses_in_label_studio_with_every_class_escaped():
    classes = ["cat", 'a "quoted" <b> & c', "zwölf"]
    li = interface(classes)
    assert li.get_control("label").labels == classes
    assert li.validate_annotation({"result": [region(li, 'a "quoted" <b> & c')]})


@pytest.fixture
def trained_batch(tmp_path):
    """A project whose second batch was picked by a trained model, written as Label Studio tasks."""
    project, truth = make_project(tmp_path)
    assert invoke("project", "next", project, "--out", tmp_path / "b1.csv").exit_code == 0
    first = batch_rows(tmp_path / "b1.csv")
    write_labels(tmp_path / "l1.csv", [(r["path"], truth[r["path"]]) for r in first])
    assert invoke("project", "import", project, tmp_path / "l1.csv").exit_code == 0
    result = invoke("project", "next", project, "--format", "label-studio")
    assert result.exit_code == 0, result.output
    tasks_file = project / "batch-0002.json"
    assert str(tasks_file) in result.output and str(project / "label-studio.xml") in result.output
    return project, truth, json.loads(tasks_file.read_text())


def test_next_writes_tasks_with_the_models_guesses_that_label_studio_accepts(trained_batch):
    project, truth, tasks = trained_batch
    li = li_module.LabelInterface((project / "label-studio.xml").read_text())
    db = sqlite3.connect(project / "project.sqlite")
    queued = db.execute("SELECT i.path, q.hint_label, q.hint_confidence FROM queue q JOIN images i "
                        "ON i.id = q.image_id WHERE q.batch_id = 2 ORDER BY q.position").fetchall()
    assert len(tasks) == len(queued) == 6
    for task, (path, guess, confidence) in zip(tasks, queued):
        assert task["data"]["alplug_path"] == path and path in truth
        assert task["data"]["image"] == "/data/local-files/?d=" + "images/" + path.replace(" ", "%20")
        li.load_task(task)  # the config's $image is in the task's data
        (prediction,) = task["predictions"]
        assert li.validate_prediction(prediction)
        assert prediction["result"][0]["value"]["choices"] == [guess]
        assert prediction["score"] == pytest.approx(confidence, abs=5e-7)  # written to 6 decimals


def test_tasks_from_the_first_batches_have_no_predictions_and_image_url_is_a_prefix(tmp_path):
    project, truth = make_project(tmp_path)
    result = invoke("project", "next", project, "--format", "label-studio", "--out", tmp_path / "t.json",
                    "--image-url", "https://files.example/imgs/")
    assert result.exit_code == 0, result.output
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert len(tasks) == 6 and all("predictions" not in t for t in tasks)  # no model trained yet
    assert all(t["data"]["image"] == "https://files.example/imgs/" + t["data"]["alplug_path"] for t in tasks)
    bad = invoke("project", "next", project, "--image-url", "x")
    assert bad.exit_code == 2 and "--format label-studio" in bad.output


def _export(tasks, annotations_by_task):
    """A Label Studio JSON export of ``tasks``: ids, annotations with Label Studio's annotator fields."""
    out = []
    for i, (task, annotations) in enumerate(zip(tasks, annotations_by_task), start=1):
        out.append({"id": 100 + i, "data": task["data"], "annotations": annotations, "predictions": []})
    return out


def test_an_export_imports_with_its_annotators_and_bad_rows_by_line(trained_batch, tmp_path):
    project, truth, tasks = trained_batch
    li = interface(["zero", "one", "two"])
    paths = [t["data"]["alplug_path"] for t in tasks]

    def ann(label, who, at, **extra):
        return {"id": 1, "result": [region(li, label)], "created_username": f"{who}, 7", "was_cancelled": False,
                "created_at": at, "updated_at": at, **extra}

    other = {"zero": "one", "one": "two", "two": "zero"}
    annotations = [
        [ann(truth[paths[0]], "ann@lab.org", "2026-12-01T10:00:00Z")],
        # two annotators: the later one is the image's label
        [ann(other[truth[paths[1]]], "ann@lab.org", "2026-12-01T10:00:00Z"),
         ann(truth[paths[1]], "bob@lab.org", "2026-12-01T11:00:00Z")],
        [ann(truth[paths[2]], "bob@lab.org", "2026-12-01T10:05:00Z")],
        [{**ann(truth[paths[3]], "ann@lab.org", "2026-12-01T10:06:00Z"), "was_cancelled": True}],  # skipped
        # not a class of the project (the SDK refuses to build it: written as another config would have it)
        [{**ann("zero", "ann@lab.org", "2026-12-01T10:07:00Z"),
          "result": [{**region(li, "zero"), "value": {"choices": ["three"]}}]}],
        [{"id": 9, "result": [region(li, "zero"), region(li, "one")], "completed_by": 3}],  # two choices
    ]
    export = _export(tasks, annotations)
    export.append({"id": 200, "data": {"image": "/data/upload/1/5f3a-not-ours.png"}, "annotations": []})
    export.append({"id": 201, "data": {"image": "/data/local-files/?d=images/" + paths[4]},  # found by its URL
                   "annotations": [{"result": [region(li, truth[paths[4]])], "completed_by": {"id": 4, "email": "cy@lab.org"}}]})
    text = json.dumps(export, indent=2)
    (tmp_path / "export.json").write_text(text)
    lines = text.splitlines()

    def line_of(task_id):
        return next(i for i, line in enumerate(lines, start=1) if f'"id": {task_id},' in line) - 1

    result = invoke("project", "import", project, tmp_path / "export.json")
    assert result.exit_code == 1, result.output
    assert "imported 5 label(s); 0 unchanged, 1 without a label, 3 rejected" in result.output
    assert f"line {line_of(105)}: task 105: {paths[4]}: unknown class 'three'" in result.output
    assert f"line {line_of(106)}: task 106: {paths[5]}: it has 2 choices" in result.output
    assert f"line {line_of(200)}: task 200: '/data/upload/1/5f3a-not-ours.png': not an image of this project" \
        in result.output
    db = sqlite3.connect(project / "project.sqlite")
    rows = db.execute("SELECT i.path, l.label, l.who, l.source FROM labels l JOIN images i ON i.id = l.image_id "
                      "WHERE l.source = 'label-studio' ORDER BY l.id").fetchall()
    assert {(p, w) for p, _, w, _ in rows} == {(paths[0], "ann@lab.org"), (paths[1], "ann@lab.org"),
                                               (paths[1], "bob@lab.org"), (paths[2], "bob@lab.org"),
                                               (paths[4], "cy@lab.org")}
    current = dict(db.execute("SELECT i.path, c.label FROM current_labels c JOIN images i ON i.id = c.image_id"))
    assert all(current[p] == truth[p] for p in (paths[0], paths[1], paths[2], paths[4]))  # bob's later label wins
    # importing the same export again adds nothing; every label stays in the database
    again = invoke("project", "import", project, tmp_path / "export.json")
    assert "imported 0 label(s); 5 unchanged" in again.output
    assert db.execute("SELECT count(*) FROM labels WHERE source = 'label-studio'").fetchone()[0] == 5


@pytest.mark.parametrize("text, words", [
    ('{"id": 1}', "not a Label Studio JSON export"),
    ('[{"id": 1, "data": {}}, ', "not closed"),
    ('[\n{"id": 1, "data": {}},\n{"id": 2, "data": {"image": }}]', "line 3: not valid JSON"),
    ("[" + "[" * 100_000 + "]" * 100_000 + "]", "nested too deeply"),
])
def test_a_broken_export_is_one_line_and_exit_2(tmp_path, text, words):
    project, _ = make_project(tmp_path)
    (tmp_path / "e.json").write_text(text)
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert result.exit_code == 2 and words in result.output and result.output.count("\n") == 1, result.output


def test_hostile_annotation_fields_are_rejected_or_cleaned(tmp_path, monkeypatch):
    project, truth = make_project(tmp_path)
    path = sorted(truth)[0]
    export = [{"id": 1, "data": {"alplug_path": path}, "annotations": "not a list"},
              {"id": 2, "data": {"alplug_path": path}, "annotations": [{"result": [{"type": "choices",
                                                                                   "value": {"choices": [1]}}]}]},
              {"id": 3, "data": {"alplug_path": path}, "annotations": [
                  {"result": [{"type": "choices", "value": {"choices": [truth[path]]}}],
                   "created_username": "eve\x1b[31m\n" + "x" * 500}]},
              "not a task"]
    (tmp_path / "e.json").write_text(json.dumps(export))
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert "imported 1 label(s)" in result.output and "3 rejected" in result.output, result.output
    (who,) = sqlite3.connect(project / "project.sqlite").execute("SELECT who FROM labels").fetchone()
    assert who.startswith("eve[31m") and len(who) == 200 and who.isprintable()
    import alplug.project.labelstudio as ls

    monkeypatch.setattr(ls, "MAX_EXPORT_BYTES", 10)
    result = invoke("project", "import", project, tmp_path / "e.json")
    assert result.exit_code == 2 and "larger than" in result.output
