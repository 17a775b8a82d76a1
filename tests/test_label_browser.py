"""A real browser labels a batch on the `alplug label` page: headless Chromium driven by Playwright.

Debian's `chromium` is used (`.ci/run` installs it and sets ALPLUG_REQUIRE_BROWSER=1, so CI cannot skip
this); elsewhere the test is skipped when no Chromium is found.
"""
import os
import shutil
import sqlite3

import pytest

from project_helpers import LabelServer, invoke, make_project
from data_formats import write_unlabeled_folder

KEYS = {"zero": "1", "one": "2", "two": "3"}  # the first three keys, in class order


def chromium() -> str | None:
    return os.environ.get("ALPLUG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    if chromium() is None:
        if os.environ.get("ALPLUG_REQUIRE_BROWSER") == "1":
            pytest.fail("ALPLUG_REQUIRE_BROWSER=1 but no chromium found (apt-get install chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def shown(page) -> list[str]:
    """paths of the images the page shows, once it shows at least one"""
    page.wait_for_selector("#images figure img", timeout=120_000)
    return page.eval_on_selector_all("#images figure img", "imgs => imgs.map(i => i.alt)")


def open_as(browser, url: str, who: str):
    """A new tab (its own browser profile) that answers the page's "who is labeling?" once."""
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_selector("#whoinput", state="visible")
    page.fill("#whoinput", who)
    page.keyboard.press("Enter")
    page.wait_for_function("w => document.querySelector('#who').textContent === w", arg=who)
    return page


def wait_until_shown_changes(page, before: str):
    page.wait_for_function("b => { const i = document.querySelector('#images figure img'); return i && i.alt !== b; }",
                           arg=before, timeout=120_000)


def test_browser_labels_a_batch_by_click_and_key_and_gets_the_next_one(tmp_path, browser):
    project, truth = make_project(tmp_path)
    server = LabelServer(project, "--port", 0, "--annotator", "tester")
    try:
        page = open_as(browser, server.url, "tester")
        assert page.locator("button.class").all_inner_texts() == ["zero1", "one2", "two3"]
        labeled = []
        # three by clicking the class buttons
        for _ in range(3):
            path = shown(page)[0]
            page.click(f"button.class[data-label={truth[path]}]")
            labeled.append(path)
            wait_until_shown_changes(page, path)
        # a wrong key, undone with Backspace: the same image comes back, then the right key
        path = shown(page)[0]
        wrong = next(c for c in KEYS if c != truth[path])
        page.keyboard.press(KEYS[wrong])
        wait_until_shown_changes(page, path)
        page.keyboard.press("Backspace")
        page.wait_for_function("p => document.querySelector('#images figure img')?.alt === p", arg=path)
        # three by keyboard (the undone image first)
        for _ in range(3):
            path = shown(page)[0]
            page.keyboard.press(KEYS[truth[path]])
            labeled.append(path)
            wait_until_shown_changes(page, path)
        # batch 1 (random) is done: the server retrains in the background and queues batch 2
        page.wait_for_function("document.querySelector('#progress').textContent.includes('batch 2')",
                               timeout=180_000)
        assert "model val. accuracy" in page.inner_text("#progress")
        assert page.inner_text("#progress").startswith("labeled 6")
        first_of_batch_2 = shown(page)[0]
        assert first_of_batch_2 not in labeled

        # a second tab never gets the image the first one shows
        other = open_as(browser, server.url, "tester")
        assert shown(other)[0] != first_of_batch_2
        # the grid view shows the rest of the batch, none of it held by the other two tabs
        grid = open_as(browser, server.url + "?view=grid", "tester")
        cells = shown(grid)
        assert len(cells) == 4 and not set(cells) & {first_of_batch_2, shown(other)[0]}
        grid.click("#images figure:nth-child(2)")
        grid.keyboard.press(KEYS[truth[cells[1]]])
        grid.wait_for_function("n => document.querySelectorAll('#images figure').length === n", arg=3)
        labeled.append(cells[1])
    finally:
        server.stop()

    db = sqlite3.connect(project / "project.sqlite")
    rows = db.execute("SELECT i.path, c.label, c.who, c.source FROM current_labels c "
                      "JOIN images i ON i.id = c.image_id").fetchall()
    assert {r[0]: r[1] for r in rows} == {p: truth[p] for p in labeled}  # every label right, the undone one gone
    assert {(r[2], r[3]) for r in rows} == {("tester", "web")}
    assert db.execute("SELECT count(*) FROM labels WHERE undone_at IS NOT NULL").fetchone()[0] == 1
    batches = db.execute("SELECT how, trained_on FROM batches ORDER BY id").fetchall()
    assert batches[0] == ("random (too few labels to train)", 0) and batches[1][0] == "margin" and batches[1][1] > 0


def test_two_annotators_with_overlap_digit_keys_agreement_and_a_changed_label(tmp_path, browser):
    names = {"zero": "0", "one": "1", "two": "2"}
    truth = {p: names[c] for p, c in write_unlabeled_folder(tmp_path / "images", per_class=8).items()}
    project = tmp_path / "digits"
    result = invoke("project", "init", project, "--images", tmp_path / "images", "--classes", "0,1,2",
                    "--image-size", "32", "--epochs", "1", "--per-round", "3", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    # every image of every batch goes to two annotators
    server = LabelServer(project, "--port", 0, "--overlap", 2, "--overlap-share", 1.0)
    try:
        ann = open_as(browser, server.url, "ann")
        # digit classes: the key is the digit itself, never the class's position
        assert ann.locator("button.class").all_inner_texts() == ["00", "11", "22"]
        batch = []
        for i in range(3):
            path = shown(ann)[0]
            key = truth[path] if i != 1 else str((int(truth[path]) + 1) % 3)  # ann gets the second one wrong
            ann.keyboard.press(key)
            batch.append(path)
            if i < 2:
                wait_until_shown_changes(ann, path)
        ann.wait_for_function("() => document.querySelectorAll('#images figure').length === 0")
        bob = open_as(browser, server.url, "bob")
        for _ in range(3):  # the same three images come to bob
            path = shown(bob)[0]
            assert path in batch
            bob.keyboard.press(truth[path])
            bob.wait_for_function("p => document.querySelector('#images figure img')?.alt !== p", arg=path)
        # ann's agreement panel: one pair, three shared images, two agreed, the disagreement listed
        ann.click("#agreementbutton")
        ann.wait_for_selector("#agreement tr.pair")
        assert ann.inner_text("#agreement tr.pair").split("\t")[:3] == ["ann – bob", "3", "2"]
        assert batch[1] in ann.inner_text("#disagreements")
        # ann changes her wrong label in the review list; the disagreement goes away
        ann.click("#reviewbutton")
        ann.wait_for_selector(f"#reviewlist figure img[alt='{batch[1]}']")
        ann.select_option(f"#reviewlist figure:has(img[alt='{batch[1]}']) select", truth[batch[1]])
        ann.wait_for_function("() => document.querySelector('#message').textContent.startsWith('changed')")
        ann.click("#agreementbutton")
        ann.click("#agreementbutton")
        ann.wait_for_function("() => document.querySelector('#agreement').textContent.includes('no disagreements')")
    finally:
        server.stop()
    db = sqlite3.connect(project / "project.sqlite")
    rows = db.execute("SELECT i.path, l.label, l.who FROM labels l JOIN images i ON i.id = l.image_id "
                      "ORDER BY l.id").fetchall()
    assert len(rows) == 7 and {w for _, _, w in rows} == {"ann", "bob"}  # 3 + 3 labels and the change, all kept
    assert (batch[1], str((int(truth[batch[1]]) + 1) % 3), "ann") in rows
    current = dict(db.execute("SELECT i.path, c.label FROM current_labels c JOIN images i ON i.id = c.image_id"))
    assert current == {p: truth[p] for p in batch}
