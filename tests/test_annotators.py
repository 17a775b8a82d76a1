"""Several annotators on one project: overlap, one label per image by majority, review and change, agreement."""
import sqlite3

import numpy as np
import pytest

from alplug.project.agreement import agreement, fleiss_kappa
from alplug.project.learn import overlap_needs
from alplug.project.server import create_app
from alplug.project.store import ProjectStore

from project_helpers import invoke, make_project


@pytest.fixture
def store(tmp_path):
    project, truth = make_project(tmp_path)
    s = ProjectStore(project)
    yield s
    s.close()


def queue(store, ids, needed):
    store.new_batch(ids, "test", 0, None, 0.0, needed=needed)


def current(store):
    return {row[0]: row[2] for row in store.current_labels()}


def test_an_overlapping_image_goes_to_each_annotator_once_and_leaves_the_queue_after_k(store):
    a, b, c = store.pool()[:3]
    queue(store, [a, b, c], needed=[2, 1, 1])
    leased = store.lease("tab-ann", n=3, who="ann")
    assert [it.image_id for it in leased] == [a, b, c]
    assert store.label_from_tab(a, "zero", who="ann", client="tab-ann") is None
    # waiting for a second annotator: not for ann again, even from another of her tabs
    assert a not in [it.image_id for it in store.lease("tab-ann-2", n=3, who="ann")]
    assert store.label_from_tab(a, "one", who="ann", client="tab-ann-2").startswith("you labeled this image")
    assert store.pending_count() == 3
    store.release("tab-ann-2")
    store.release("tab-ann")
    assert a in [it.image_id for it in store.lease("tab-bob", n=3, who="bob")]
    assert store.label_from_tab(a, "one", who="bob", client="tab-bob") is None
    assert store.pending_count() == 2  # two annotators: a is done
    assert store.label_from_tab(b, "zero", who="bob", client="tab-bob") is None
    assert store.pending_count() == 1  # one annotator was enough for b


def test_the_label_for_training_is_the_majority_then_the_latest(store):
    ids = store.pool()[:2]
    x, y = ids
    queue(store, ids, needed=[3, 2])
    for who, label in (("ann", "zero"), ("bob", "one"), ("cy", "one")):
        store.lease(f"t-{who}", n=2, who=who)
        assert store.label_from_tab(x, label, who=who, client=f"t-{who}") is None
    assert current(store)[x] == "one"  # two against one
    for who, label in (("ann", "two"), ("bob", "zero")):
        store.lease(f"t-{who}", n=2, who=who)
        assert store.label_from_tab(y, label, who=who, client=f"t-{who}") is None
    assert current(store)[y] == "zero"  # a tie: the latest vote
    # ann changes her label of y in the review list: her vote is now her latest label; the old row stays
    assert [r["image_id"] for r in store.recent("t-ann")] == [y, x]
    assert store.relabel(y, "zero", client="t-ann") is None
    assert current(store)[y] == "zero"
    assert store.relabel(x, "two", client="t-ann") is None and current(store)[x] == "one"  # still bob and cy
    n_rows = store.db.execute("SELECT count(*) FROM labels").fetchone()[0]
    assert n_rows == 7  # 5 labels, 2 changes: nothing overwritten


def test_only_the_tabs_own_recent_labels_can_be_changed(store):
    ids = store.pool()[:25]
    queue(store, ids, needed=[1] * 25)
    store.lease("mine", n=12, who="ann")
    for i in ids[:21]:
        store.lease("mine", n=1, keep=(), who="ann")
        assert store.label_from_tab(i, "zero", who="ann", client="mine") is None
    recent = store.recent("mine")
    assert len(recent) == ProjectStore.REVIEW == 20 and recent[0]["image_id"] == ids[20]
    assert store.relabel(ids[0], "one", client="mine") == "only this tab's last labels can be changed here"
    assert store.relabel(ids[5], "one", client="other tab") == "only this tab's last labels can be changed here"
    assert store.relabel(ids[5], "one", client="mine") is None
    assert current(store)[ids[5]] == "one"
    assert store.recent("mine")[0]["image_id"] == ids[5]  # the change is the tab's newest label


def test_undo_on_an_overlapping_image_gives_it_back_to_the_same_tab(store):
    a = store.pool()[0]
    queue(store, [a], needed=[2])
    store.lease("t1", who="ann")
    store.label_from_tab(a, "zero", who="ann", client="t1")
    item, message = store.undo("t1")
    assert item.image_id == a and message is None
    assert [it.image_id for it in store.lease("t1", who="ann")] == [a]
    assert store.label_from_tab(a, "one", who="ann", client="t1") is None  # ann may label it again after undo


def test_agreement_matches_cohen_and_a_worked_fleiss_example():
    from sklearn.metrics import cohen_kappa_score

    ann = {1: {"a": "x", "b": "x"}, 2: {"a": "y", "b": "x"}, 3: {"a": "y", "b": "y"}, 4: {"a": "x", "b": "x"},
           5: {"a": "x"}}
    result = agreement(ann, ["x", "y"], {i: f"img{i}.png" for i in ann})
    (pair,) = result["pairs"]
    assert pair["shared"] == 4 and pair["agreed"] == 3
    assert pair["kappa"] == pytest.approx(cohen_kappa_score(["x", "y", "y", "x"], ["x", "x", "y", "x"]))
    assert result["disagreements"] == [{"image_id": 2, "path": "img2.png", "annotators": 2,
                                        "labels": {"a": "y", "b": "x"}}]
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(np.array([[2, 0], [1, 2]])) is None  # raters per image differ


def test_overlap_needs_marks_a_seeded_share():
    needs = overlap_needs(10, (3, 0.2), seed=7)
    assert sorted(needs) == [1] * 8 + [3] * 2 and needs == overlap_needs(10, (3, 0.2), seed=7)
    assert overlap_needs(10, (1, 0.5), seed=7) == [1] * 10 and overlap_needs(3, (2, 0.01), seed=0).count(2) == 1


def test_a_project_of_the_first_schema_is_migrated_with_its_labels(tmp_path):
    project, truth = make_project(tmp_path)
    s = ProjectStore(project)
    a = s.pool()[0]
    s.add_label(a, "one", who="ann", source="import")
    s.close()
    db = sqlite3.connect(project / "project.sqlite")  # back to schema 1, as an earlier alplug wrote it
    db.executescript("""
        DROP VIEW current_labels; DROP INDEX labels_by_image_who; ALTER TABLE queue DROP COLUMN needed;
        CREATE VIEW current_labels AS SELECT l.image_id, l.label, l.who, l.at, l.source FROM labels l
            WHERE l.undone_at IS NULL AND l.id = (SELECT max(id) FROM labels WHERE image_id = l.image_id
            AND undone_at IS NULL);
        UPDATE meta SET value = '1' WHERE key = 'schema_version';""")
    db.close()
    s = ProjectStore(project)
    assert s._meta("schema_version") == "2" and current(s) == {a: "one"}
    queue(s, s.pool()[:1], needed=[2])  # the new column works
    assert s.db.execute("SELECT needed FROM queue").fetchone() == (2,)


def test_project_status_shows_agreement_and_disagreements(tmp_path):
    project, truth = make_project(tmp_path)
    s = ProjectStore(project)
    ids = s.pool()[:3]
    paths = {i: p for p, i in s.image_ids_by_path().items()}
    for who, labels in (("ann", ["zero", "one", "two"]), ("bob", ["zero", "one", "one"])):
        for i, label in zip(ids, labels):
            s.add_label(i, label, who=who, source="import")
    s.close()
    result = invoke("project", "status", project)
    assert result.exit_code == 0, result.output
    assert "agreement: 2 annotators, 3 image(s) labeled by more than one" in result.output
    assert "ann - bob: Cohen's kappa" in result.output and "on 3 shared image(s), 2 agreed" in result.output
    assert f"disagree: {paths[ids[2]]}: ann: two, bob: one" in result.output


def test_the_page_api_takes_the_tabs_annotator_and_serves_review_and_agreement(tmp_path):
    project, truth = make_project(tmp_path)
    s = ProjectStore(project)
    ids = s.pool()[:4]
    s.new_batch(ids, "test", 0, None, 0.0, needed=[2, 1, 1, 1])
    s.close()
    app = create_app(project, batch_size=4, annotator="server-default", log=lambda *_: None)
    http = app.test_client()
    assert http.post("/api/lease", json={"client": "t", "who": "bad\x1bname"}).status_code == 400
    assert http.post("/api/lease", json={"client": "t", "who": "x" * 101}).status_code == 400
    leased = http.post("/api/lease", json={"client": "t", "who": "ann", "n": 2}).get_json()["items"]
    first = leased[0]["image_id"]
    assert http.post("/api/label", json={"client": "t", "who": "ann", "image_id": first, "label": "zero"}).status_code == 200
    # a tab that names nobody labels as the server's --annotator
    assert http.post("/api/label", json={"client": "u", "image_id": ids[2], "label": "one"}).status_code == 200
    rows = dict(sqlite3.connect(project / "project.sqlite").execute("SELECT image_id, who FROM labels"))
    assert rows == {first: "ann", ids[2]: "server-default"}
    recent = http.post("/api/recent", json={"client": "t"}).get_json()["labels"]
    assert [r["image_id"] for r in recent] == [first]
    assert http.post("/api/relabel", json={"client": "u", "image_id": first, "label": "two"}).status_code == 409
    assert http.post("/api/relabel", json={"client": "t", "image_id": first, "label": "nine"}).status_code == 400
    changed = http.post("/api/relabel", json={"client": "t", "image_id": first, "label": "two"})
    assert changed.status_code == 200 and changed.get_json()["labels"][0]["label"] == "two"
    bob = http.post("/api/lease", json={"client": "b", "who": "bob", "n": 4}).get_json()["items"]
    assert first in [it["image_id"] for it in bob]  # needs a second annotator
    http.post("/api/label", json={"client": "b", "who": "bob", "image_id": first, "label": "one"})
    report = http.get("/api/agreement").get_json()
    assert report["annotators"] == ["ann", "bob", "server-default"] and report["shared_images"] == 1
    assert [p["shared"] for p in report["pairs"]] == [1, 0, 0]  # ann-bob, ann-server-default, bob-server-default
    assert report["disagreements"][0]["labels"] == {"ann": "two", "bob": "one"}
