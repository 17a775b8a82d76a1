"""The labeling server: leases, conflicts, undo, security, and surviving a kill."""
import json
import os
import sqlite3
import threading
import urllib.error
import urllib.request

import pytest

from alplug.project import ProjectStore
from alplug.project.server import create_app
from project_helpers import LabelServer, client_for, invoke, make_project, post, project_with_a_batch


@pytest.fixture
def project(tmp_path):
    return project_with_a_batch(tmp_path)


def test_two_tabs_never_get_the_same_image_and_never_lose_labels(project):
    project, truth = project
    client = client_for(project)
    a = post(client, "/api/lease", client="tab-a", n=3).get_json()["items"]
    b = post(client, "/api/lease", client="tab-b", n=3).get_json()["items"]
    assert len(a) == len(b) == 3 and not {i["image_id"] for i in a} & {i["image_id"] for i in b}
    assert post(client, "/api/lease", client="tab-c", n=3).get_json()["items"] == []  # all six are held
    # a tab asking again gets its own images back, not the other tab's
    again = post(client, "/api/lease", client="tab-a", n=3).get_json()["items"]
    assert {i["image_id"] for i in again} == {i["image_id"] for i in a}
    for item in a:
        assert post(client, "/api/label", client="tab-a", image_id=item["image_id"], label=truth[item["path"]]).status_code == 200
    # tab b submitting an image tab a already labeled (e.g. after a lease expired) is refused, a's label kept
    r = post(client, "/api/label", client="tab-b", image_id=a[0]["image_id"], label="zero")
    assert r.status_code == 409 and "another tab" in r.get_json()["message"]
    labels = dict(sqlite3.connect(project / "project.sqlite").execute("SELECT image_id, label FROM current_labels"))
    assert labels == {i["image_id"]: truth[i["path"]] for i in a}


def test_concurrent_tabs_label_every_image_exactly_once(project):
    project, truth = project
    app = create_app(project, batch_size=6, annotator="ann")
    done = {}

    def tab(name):
        c = app.test_client()
        while True:
            items = post(c, "/api/lease", client=name, n=1).get_json()["items"]
            if not items:
                return
            item = items[0]
            r = post(c, "/api/label", client=name, image_id=item["image_id"], label=truth[item["path"]])
            assert r.status_code == 200
            done.setdefault(item["image_id"], []).append(name)

    threads = [threading.Thread(target=tab, args=(f"tab{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(done) == 6 and all(len(v) == 1 for v in done.values())
    n = sqlite3.connect(project / "project.sqlite").execute("SELECT count(*) FROM labels").fetchone()[0]
    assert n == 6


def test_undo_takes_back_only_this_tabs_last_label_and_skip(project):
    project, truth = project
    client = client_for(project)
    a = post(client, "/api/lease", client="a", n=2).get_json()["items"]
    b = post(client, "/api/lease", client="b", n=1).get_json()["items"]
    post(client, "/api/label", client="a", image_id=a[0]["image_id"], label="zero")
    post(client, "/api/label", client="b", image_id=b[0]["image_id"], label="one")
    post(client, "/api/skip", client="a", image_id=a[1]["image_id"])
    # a's last action was the skip: undo brings that image back, then a's label
    assert post(client, "/api/undo", client="a").get_json()["item"]["image_id"] == a[1]["image_id"]
    assert post(client, "/api/undo", client="a").get_json()["item"]["image_id"] == a[0]["image_id"]
    assert post(client, "/api/undo", client="a").get_json()["item"] is None
    labels = dict(sqlite3.connect(project / "project.sqlite").execute("SELECT image_id, label FROM current_labels"))
    assert labels == {b[0]["image_id"]: "one"}  # b's label survives a's undos
    undone = sqlite3.connect(project / "project.sqlite").execute(
        "SELECT count(*) FROM labels WHERE undone_at IS NOT NULL").fetchone()[0]
    assert undone == 1  # kept as history, not deleted


def test_labels_are_validated_against_the_class_list(project):
    project, _ = project
    client = client_for(project)
    item = post(client, "/api/lease", client="a", n=1).get_json()["items"][0]
    assert post(client, "/api/label", client="a", image_id=item["image_id"], label="cat").status_code == 400
    assert post(client, "/api/label", client="a", image_id=item["image_id"], label=["zero"]).status_code == 400
    assert post(client, "/api/label", client="a", image_id=10**6, label="zero").status_code == 400
    assert client.post("/api/label", data="not json").status_code == 400
    assert sqlite3.connect(project / "project.sqlite").execute("SELECT count(*) FROM labels").fetchone()[0] == 0


def test_hints_are_off_by_default(project):
    project, _ = project
    store = ProjectStore(project)
    store.db.execute("UPDATE queue SET hint_label = 'one', hint_confidence = 0.8")
    store.close()
    assert "hint" not in post(client_for(project), "/api/lease", client="a", n=1).get_json()["items"][0]
    item = post(client_for(project, hint=True), "/api/lease", client="b", n=1).get_json()["items"][0]
    assert item["hint"] == "one" and item["confidence"] == 0.8


def test_only_registered_images_inside_the_folder_are_served(tmp_path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    truth_dir = tmp_path / "images"
    truth_dir.mkdir()
    os.symlink(outside, truth_dir / "link_out.png")  # present at init: never registered
    project, truth = make_project(tmp_path)
    client = client_for(project)
    path = sorted(truth)[0]
    assert client.get(f"/images/{path}").status_code == 200
    for attack in ["/images/../secret.png", "/images/%2e%2e/secret.png", "/images/batch0/../../secret.png",
                   f"/images/{outside}", "/images//etc/passwd", "/images/link_out.png", "/images/broken.png",
                   "/images/../proj/project.sqlite"]:
        r = client.get(attack, follow_redirects=True)
        assert r.status_code in (403, 404), attack
        assert b"secret" not in r.data
    # a registered image replaced by a symlink out of the folder afterwards
    victim = tmp_path / "images" / path
    victim.unlink()
    os.symlink(outside, victim)
    assert client.get(f"/images/{path}").status_code == 403


def test_token_is_required_off_loopback_and_host_is_checked_on_it(project):
    project, _ = project
    guarded = client_for(project, token="s3cret")
    assert guarded.get("/").status_code == 403
    assert post(guarded, "/api/lease", client="a", n=1).status_code == 403
    assert guarded.get("/?token=wrong").status_code == 403
    assert guarded.get("/?token=s3cret").status_code == 200  # sets the cookie the page's requests carry
    assert post(guarded, "/api/lease", client="a", n=1).status_code == 200
    local = client_for(project)
    assert local.get("/", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert local.get("/", headers={"Host": "evil.example:8000"}).status_code == 403  # DNS rebinding
    forged = local.post("/api/lease", json={"client": "x", "n": 1}, headers={"Origin": "http://evil.example"})
    assert forged.status_code == 403  # another site's page posting
    same = local.post("/api/lease", json={"client": "x", "n": 1}, headers={"Origin": "http://localhost"})
    assert same.status_code == 200


def _api(url, path, payload):
    request = urllib.request.Request(url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def test_killed_server_loses_no_label_and_the_queue_continues(project):
    project, truth = project
    server = LabelServer(project, "--port", 0)
    try:
        items = _api(server.url, "api/lease", {"client": "a", "n": 6})["items"]
        for item in items[:4]:
            _api(server.url, "api/label", {"client": "a", "image_id": item["image_id"], "label": truth[item["path"]]})
    finally:
        server.kill()  # SIGKILL mid-batch: no shutdown code runs
    labels = dict(sqlite3.connect(project / "project.sqlite").execute("SELECT image_id, label FROM current_labels"))
    assert labels == {i["image_id"]: truth[i["path"]] for i in items[:4]}
    server = LabelServer(project, "--port", 0)
    try:
        state = _api(server.url, "api/lease", {"client": "new-tab", "n": 6})
        assert {i["image_id"] for i in state["items"]} == {i["image_id"] for i in items[4:]}  # the rest of the batch
        assert state["progress"]["labeled"] == 4 and state["progress"]["remaining_in_batch"] == 2
    finally:
        server.stop()


def test_label_command_errors(tmp_path, project):
    project, _ = project
    result = invoke("label", tmp_path / "nothing")
    assert result.exit_code == 2 and "not an alplug labeling project" in result.output
    result = invoke("label", project, "--port", 70000)
    assert result.exit_code == 2 and "--port 70000" in result.output


def test_off_loopback_server_prints_a_token_and_requires_it(project):
    project, _ = project
    server = LabelServer(project, "--host", "0.0.0.0", "--port", 0)
    try:
        assert server.token and len(server.token) >= 20
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 403
        with urllib.request.urlopen(f"{url}?token={server.token}", timeout=10) as r:
            assert r.status == 200
    finally:
        server.stop()


def test_a_failed_retraining_is_shown_and_retried_and_the_page_keeps_answering(tmp_path, monkeypatch):
    import time

    import torch
    import torchvision

    import alplug.project.server as server_module

    weights = tmp_path / "w.pt"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    project, truth = make_project(tmp_path, 8, "--weights", weights)
    client = client_for(project)
    first = post(client, "/api/lease", client="a", n=6).get_json()  # starts the random first batch
    deadline = time.time() + 30
    while not first["items"] and time.time() < deadline:
        time.sleep(0.2)
        first = post(client, "/api/lease", client="a", n=6).get_json()
    weights.unlink()  # the weights file goes away before the first model is trained
    for item in first["items"]:
        assert post(client, "/api/label", client="a", image_id=item["image_id"], label=truth[item["path"]]).status_code == 200
    deadline, state = time.time() + 120, {}
    while time.time() < deadline:
        state = post(client, "/api/lease", client="a", n=1).get_json()
        if state["error"]:
            break
        time.sleep(0.5)
    assert "does not exist" in state["error"] and state["items"] == []
    assert client.get("/api/status").status_code == 200  # still answering
    # the weights come back: the next poll after RETRY_SECONDS retrains and queues batch 2
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    monkeypatch.setattr(server_module, "RETRY_SECONDS", 0)
    deadline = time.time() + 120
    while time.time() < deadline:
        state = post(client, "/api/lease", client="a", n=1).get_json()
        if state["items"]:
            break
        time.sleep(0.5)
    assert state["items"] and state["progress"]["batch"] == 2 and state["error"] is None


def test_images_deleted_since_init_are_left_out(project):
    project, truth = project
    store = ProjectStore(project)
    gone = sorted(truth)[0]
    (store.images_dir / gone).unlink()
    from alplug.project.learn import next_batch

    next_batch(store, 6)
    assert gone not in store.readable_images()[1]
    assert (gone, "missing since init") in store.unreadable_images()
    store.close()


def test_the_page_keeps_answering_while_the_model_retrains(project):
    import time

    project, truth = project
    server = LabelServer(project, "--port", 0)
    try:
        items = _api(server.url, "api/lease", {"client": "a", "n": 6})["items"]
        for item in items:  # the last label ends batch 1 and starts the retraining thread
            _api(server.url, "api/label", {"client": "a", "image_id": item["image_id"], "label": truth[item["path"]]})
        seen_training, slowest = False, 0.0
        deadline = time.time() + 120
        while time.time() < deadline:
            t0 = time.perf_counter()
            state = _api(server.url, "api/lease", {"client": "a", "n": 1})
            slowest = max(slowest, time.perf_counter() - t0)
            seen_training |= state["training"]
            if state["items"]:
                break
            time.sleep(0.2)
        assert seen_training and state["items"] and state["progress"]["batch"] == 2
        assert slowest < 2.0, f"a request took {slowest:.1f} s during retraining"
    finally:
        server.stop()
