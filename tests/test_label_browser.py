"""A real browser labels a batch on the `alplug label` page: headless Chromium driven by Playwright.

Debian's `chromium` is used (`.ci/run` installs it and sets ALPLUG_REQUIRE_BROWSER=1, so CI cannot skip
this); elsewhere the test is skipped when no Chromium is found.
"""
import os
import shutil
import sqlite3

import pytest

from project_helpers import LabelServer, make_project

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


def wait_until_shown_changes(page, before: str):
    page.wait_for_function("b => { const i = document.querySelector('#images figure img'); return i && i.alt !== b; }",
                           arg=before, timeout=120_000)


def test_browser_labels_a_batch_by_click_and_key_and_gets_the_next_one(tmp_path, browser):
    project, truth = make_project(tmp_path)
    server = LabelServer(project, "--port", 0, "--annotator", "tester")
    try:
        page = browser.new_context().new_page()
        page.goto(server.url)
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
        other = browser.new_context().new_page()
        other.goto(server.url)
        assert shown(other)[0] != first_of_batch_2
        # the grid view shows the rest of the batch, none of it held by the other two tabs
        grid = browser.new_context().new_page()
        grid.goto(server.url + "?view=grid")
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
    assert batches[0] == ("typiclust (too few labels to train)", 0) and batches[1][0] == "margin" and batches[1][1] > 0
