"""The state of a labeling project in one SQLite file: images, labels (who, when), batches and the queue.

SQLite because it is in the standard library, needs no server, and commits
each label durably on its own (WAL journal, synchronous=FULL): closing the
browser, killing the server or a power cut loses nothing that was submitted.
Labels are never overwritten, so the table is also the audit trail. An image's
label is the majority of its annotators' latest labels that were not undone, the
newest of them on a tie (a single annotator: their latest label).

Several processes and threads may hold a ``ProjectStore`` on the same file (the
web server's request threads, its retraining thread, ``alplug project``
commands); every change is one ``BEGIN IMMEDIATE`` transaction.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import UsageError

DB_NAME = "project.sqlite"
SCHEMA_VERSION = 2  # 2: queue.needed (several annotators per image), the majority rule of current_labels
BUSY_TIMEOUT_S = 30  # how long a write waits for another process's transaction before giving up
MAX_WHO_CHARS = 200
LEASE_SECONDS = 120  # an image shown in a tab is kept from other tabs this long (the page renews it)

# One label per image for training and export: each annotator's latest label (not undone) is a vote; the
# majority wins, the label voted for most recently on a tie.
CURRENT_LABELS = """
CREATE INDEX IF NOT EXISTS labels_by_image_who ON labels(image_id, who);
CREATE VIEW current_labels AS
    WITH latest AS (
        SELECT l.id, l.image_id, l.label, l.who, l.at, l.source FROM labels l
        WHERE l.undone_at IS NULL
          AND l.id = (SELECT max(id) FROM labels WHERE image_id = l.image_id AND who = l.who AND undone_at IS NULL)),
    votes AS (SELECT image_id, label, count(*) AS n, max(id) AS last_id FROM latest GROUP BY image_id, label)
    SELECT l.image_id, l.label, l.who, l.at, l.source FROM latest l
    WHERE l.id = (SELECT v.last_id FROM votes v WHERE v.image_id = l.image_id ORDER BY v.n DESC, v.last_id DESC
                  LIMIT 1);
"""


SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,          -- relative to the images directory, '/'-separated
    readable INTEGER NOT NULL,
    problem TEXT,                       -- why an unreadable image was left out
    mode TEXT                           -- PIL mode: L, RGB, ...
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id),
    label TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL,                   -- ISO 8601, UTC
    source TEXT NOT NULL,               -- 'web', 'import' (CSV) or 'label-studio'
    client TEXT,                        -- the browser tab, for undo
    undone_at TEXT
);
CREATE INDEX labels_by_image ON labels(image_id);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    how TEXT NOT NULL,                  -- the strategy (--initial's while there are too few labels)
    trained_on INTEGER NOT NULL,        -- labels the model was trained on (0: no model)
    val_accuracy REAL,                  -- on labels held out from that training
    seconds REAL NOT NULL
);
CREATE TABLE queue (
    batch_id INTEGER NOT NULL REFERENCES batches(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    position INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending, labeled, skipped, dropped
    leased_by TEXT,
    leased_until REAL,
    hint_label TEXT,                    -- the model's guess when it was queued
    hint_confidence REAL,
    done_by TEXT,
    done_at TEXT,
    needed INTEGER NOT NULL DEFAULT 1,  -- annotators who label it before it leaves the queue (--overlap)
    PRIMARY KEY (batch_id, image_id)
);
CREATE INDEX queue_pending ON queue(status, batch_id, position);
""" + CURRENT_LABELS

def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring an older project's database to this schema in one transaction (the labels are kept as they are)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version < 2:  # (read again inside the transaction: another process may have migrated it meanwhile)
            db.execute("ALTER TABLE queue ADD COLUMN needed INTEGER NOT NULL DEFAULT 1")
            db.execute("DROP VIEW current_labels")
            for statement in CURRENT_LABELS.strip().split(";\n"):
                if statement.strip():
                    db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def check_annotator(who) -> str:
    """An annotator's name as stored: printable, not blank, at most ``MAX_WHO_CHARS``. The name is what the
    annotator (or the file) says; it proves nothing (docs/labeling.md#annotators)."""
    if not isinstance(who, str) or not who.strip() or not who.isprintable() or len(who) > MAX_WHO_CHARS:
        raise UsageError(f"annotator name {who!r:.60} must be 1 to {MAX_WHO_CHARS} printable characters, not blank")
    return who


def now_iso() -> str:
    from datetime import datetime, timezone

    # milliseconds: undo tells a tab's last label from its last skip by this order
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class QueueItem:
    image_id: int
    path: str
    batch_id: int
    hint_label: str | None = None
    hint_confidence: float | None = None

    def to_json(self, hint: bool) -> dict:
        out = {"image_id": self.image_id, "path": self.path, "batch": self.batch_id}
        if hint and self.hint_label is not None:
            out.update(hint=self.hint_label, confidence=round(self.hint_confidence, 3))
        return out


class ProjectStore:
    """One connection to a project's database; open one per thread."""

    def __init__(self, project: str | Path):
        self.project = Path(project)
        db = self.project / DB_NAME
        if not db.is_file():
            raise UsageError(f"{self.project} is not an alplug labeling project (no {DB_NAME}); "
                             "create one with `alplug project init`")
        self.db = self._connect(db)
        version = int(self._meta("schema_version"))
        if version < SCHEMA_VERSION:
            migrate(self.db, version)
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise UsageError(f"{self.project} was made by another alplug version (schema {version}); "
                             f"this one reads schema {SCHEMA_VERSION}")

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a committed label survives a power cut
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @classmethod
    def create(cls, project: str | Path, images_dir: Path, classes: list[str], settings: RunConfig,
               images: list[tuple[str, bool, str | None, str | None]]) -> "ProjectStore":
        """A new project directory; ``images`` rows are (relative path, readable, problem, mode).

        The database is built under a temporary name and renamed when complete; a failure leaves
        nothing behind (not even the directory, if this call made it), so the same ``init`` can run again.
        """
        project = Path(project)
        made = not project.exists()
        project.mkdir(parents=True, exist_ok=True)
        tmp = project / (DB_NAME + ".creating")
        try:
            tmp.unlink(missing_ok=True)
            db = cls._connect(tmp)
            try:
                db.executescript(SCHEMA)
                db.execute("BEGIN")
                for key, value in (("schema_version", str(SCHEMA_VERSION)), ("images_dir", str(images_dir)),
                                   ("classes", json.dumps(classes)), ("settings", settings.to_toml()),
                                   ("created_at", now_iso())):
                    db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
                db.executemany("INSERT INTO images (path, readable, problem, mode) VALUES (?, ?, ?, ?)",
                               [(p, int(ok), why, mode) for p, ok, why, mode in images])
                db.execute("COMMIT")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            tmp.rename(project / DB_NAME)  # the project exists only once it is complete
        except BaseException:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                leftover.unlink(missing_ok=True)
            if made:
                try:
                    project.rmdir()
                except OSError:
                    pass
            raise
        return cls(project)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self):
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked by another process past the timeout, or read-only
            raise UsageError(f"cannot write {self.project / DB_NAME} ({exc}); another alplug command may be "
                             "writing it (try again when it ends), or it is read-only") from None
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- what the project is -------------------------------------------------
    def _meta(self, key: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else "0"

    @property
    def images_dir(self) -> Path:
        return Path(self._meta("images_dir"))

    @property
    def classes(self) -> list[str]:
        return json.loads(self._meta("classes"))

    @property
    def settings(self) -> RunConfig:
        import tomllib

        return RunConfig.from_dict(tomllib.loads(self._meta("settings")), source=f"{self.project} settings")

    def readable_images(self) -> tuple[list[int], list[str]]:
        rows = self.db.execute("SELECT id, path FROM images WHERE readable = 1 ORDER BY id").fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def modes(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT mode FROM images WHERE readable = 1")}

    def mark_unreadable(self, image_ids: list[int], problem: str) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE images SET readable = 0, problem = ? WHERE id = ?", [(problem, i) for i in image_ids])
            db.executemany("UPDATE queue SET status = 'dropped', leased_by = NULL WHERE image_id = ? AND "
                           "status = 'pending'", [(i,) for i in image_ids])

    def unreadable_images(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT path, problem FROM images WHERE readable = 0 ORDER BY path").fetchall()

    def image_path(self, image_id: int) -> str | None:
        row = self.db.execute("SELECT path FROM images WHERE id = ? AND readable = 1", (image_id,)).fetchone()
        return row[0] if row else None

    def image_id(self, path: str) -> int | None:
        row = self.db.execute("SELECT id FROM images WHERE path = ? AND readable = 1", (path,)).fetchone()
        return row[0] if row else None

    def image_ids_by_path(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT path, id FROM images WHERE readable = 1").fetchall())

    # ---- labels ----------------------------------------------------------------
    def current_labels(self) -> list[tuple]:
        """(image_id, path, label, who, at, source) of every labeled image, in image order."""
        return self.db.execute("SELECT c.image_id, i.path, c.label, c.who, c.at, c.source FROM current_labels c "
                               "JOIN images i ON i.id = c.image_id ORDER BY c.image_id").fetchall()

    def check_label(self, label: str) -> str:
        if label not in self.classes:
            raise UsageError(f"unknown class {label!r}; the project's classes are {', '.join(self.classes)}")
        return label

    def add_label(self, image_id: int, label: str, who: str, source: str, client: str | None = None) -> None:
        """Record a label (one committed transaction); the image leaves every queue."""
        self.add_labels([(image_id, label, who)], source, client)

    def add_labels(self, rows: list[tuple[int, str, str]], source: str, client: str | None = None) -> None:
        """Record (image id, label, annotator) rows in one transaction: an import lands whole or not at all."""
        for _, label, who in rows:
            self.check_label(label)
            check_annotator(who)
        with self.transaction() as db:
            for image_id, label, who in rows:
                self._insert_label(db, image_id, label, who, source, client)

    def labels_by_annotator(self) -> dict[tuple[int, str], str]:
        """(image id, annotator) -> that annotator's latest label of the image (not undone)."""
        return {(image_id, who): label for image_id, who, label in self.db.execute(
            "SELECT l.image_id, l.who, l.label FROM labels l WHERE l.undone_at IS NULL AND l.id = (SELECT max(id) "
            "FROM labels WHERE image_id = l.image_id AND who = l.who AND undone_at IS NULL)")}

    @staticmethod
    def _insert_label(db, image_id: int, label: str, who: str, source: str, client: str | None) -> None:
        at = now_iso()
        db.execute("INSERT INTO labels (image_id, label, who, at, source, client) VALUES (?, ?, ?, ?, ?, ?)",
                   (image_id, label, who, at, source, client))
        ProjectStore._settle(db, image_id, who, at)

    # An image leaves the queue once it has a label from outside the page (an import), or labels from as many
    # annotators as its queue entry needs (--overlap); until then the next annotator may take it.
    COMPLETE = ("(EXISTS (SELECT 1 FROM labels l WHERE l.image_id = queue.image_id AND l.undone_at IS NULL "
                "AND l.source != 'web') OR (SELECT count(DISTINCT l.who) FROM labels l WHERE l.image_id = "
                "queue.image_id AND l.undone_at IS NULL) >= queue.needed)")

    @staticmethod
    def _settle(db, image_id: int, who: str, at: str) -> None:
        db.execute(f"UPDATE queue SET status = 'labeled', done_by = ?, done_at = ?, leased_by = NULL "
                   f"WHERE image_id = ? AND status = 'pending' AND {ProjectStore.COMPLETE}", (who, at, image_id))
        db.execute("UPDATE queue SET leased_by = NULL WHERE image_id = ? AND status = 'pending'", (image_id,))

    # Why a tab may not act on a queued image (None: it may). The page shows the text.
    _HELD_BY_OTHER = "another tab holds this image"

    def _tab_refusal(self, db, image_id: int, client: str, who: str) -> str | None:
        row = db.execute("SELECT leased_by, leased_until FROM queue WHERE image_id = ? AND status = 'pending'",
                         (image_id,)).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM current_labels WHERE image_id = ?", (image_id,)).fetchone():
                return "another tab labeled this image already"
            return "this image is not waiting in the queue"
        # It waits for other annotators (--overlap). A tab's votes count once whatever name it gives: one tab
        # cannot cast the K votes of an overlap image under K names.
        if db.execute("SELECT 1 FROM labels WHERE image_id = ? AND (who = ? OR client = ?) AND undone_at IS NULL",
                      (image_id, who, client)).fetchone():
            return "you labeled this image already (change it in the review list)"
        leased_by, until = row
        if leased_by is not None and leased_by != client and (until or 0) >= time.time():
            return self._HELD_BY_OTHER
        return None

    def label_from_tab(self, image_id: int, label: str, who: str, client: str) -> str | None:
        """A label from the web page: only for a queued image that no other tab holds and this annotator has not
        labeled. Returns why it was refused (recording nothing), or None once it is committed."""
        self.check_label(label)
        with self.transaction() as db:
            refused = self._tab_refusal(db, image_id, client, who)
            if refused is None:
                self._insert_label(db, image_id, label, who, "web", client)
        return refused

    def skip(self, image_id: int, who: str, client: str) -> str | None:
        """Leave a queued image out of this and later batches (it stays unlabeled); refused, like a label,
        when another tab holds it. Returns why it was refused, or None."""
        with self.transaction() as db:
            refused = self._tab_refusal(db, image_id, client, who)
            if refused is None:
                db.execute("UPDATE queue SET status = 'skipped', done_by = ?, done_at = ?, leased_by = ? "
                           "WHERE image_id = ? AND status = 'pending'", (who, now_iso(), client, image_id))
        return refused

    def undo(self, client: str) -> tuple[QueueItem | None, str | None]:
        """Take back this tab's last label or skip (never another tab's); its image goes back to that tab,
        unless the image is still labeled without it (an import, the other annotators of an overlap, the tab's own
        earlier label before a change): then the label is marked undone in the history and nothing is re-queued. Returns (the re-queued item, or None; a message for the page, or None)."""
        with self.transaction() as db:
            label = db.execute("SELECT id, image_id, at FROM labels WHERE client = ? AND undone_at IS NULL "
                               "ORDER BY id DESC LIMIT 1", (client,)).fetchone()
            skip = db.execute("SELECT image_id, done_at, batch_id FROM queue WHERE leased_by = ? AND "
                              "status = 'skipped' ORDER BY done_at DESC, rowid DESC LIMIT 1", (client,)).fetchone()
            if label and (not skip or label[2] >= skip[1]):
                db.execute("UPDATE labels SET undone_at = ? WHERE id = ?", (now_iso(), label[0]))
                image_id = label[1]
                status = "labeled"
            elif skip:
                image_id, status = skip[0], "skipped"
            else:
                return None, "nothing to undo"
            still_complete = db.execute(
                f"SELECT 1 FROM queue WHERE image_id = ? AND {self.COMPLETE} ORDER BY batch_id DESC LIMIT 1",
                (image_id,)).fetchone()
            if still_complete:
                if status == "skipped":  # labeled since (an import): the skip no longer holds anything back
                    db.execute("UPDATE queue SET status = 'labeled' WHERE image_id = ? AND status = 'skipped'",
                               (image_id,))
                return None, "that image keeps its other labels; it stays labeled"
            # back into the newest batch that held it (still pending when it waits for more annotators), to this tab
            row = db.execute("SELECT batch_id FROM queue WHERE image_id = ? AND status IN (?, 'pending') "
                             "ORDER BY batch_id DESC LIMIT 1", (image_id, status)).fetchone()
            if row:
                db.execute("UPDATE queue SET status = 'pending', leased_by = ?, leased_until = ?, done_by = NULL, "
                           "done_at = NULL WHERE batch_id = ? AND image_id = ?",
                           (client, time.time() + LEASE_SECONDS, row[0], image_id))
        return self._item(image_id), None

    REVIEW = 20  # labels a tab can look back over and change

    def recent(self, client: str, limit: int = REVIEW) -> list[dict]:
        """This tab's last ``limit`` labels (not undone), newest first, with each image's path."""
        rows = self.db.execute(
            "SELECT l.id, l.image_id, i.path, l.label, l.at FROM labels l JOIN images i ON i.id = l.image_id "
            "WHERE l.client = ? AND l.undone_at IS NULL AND l.id = (SELECT max(id) FROM labels WHERE "
            "image_id = l.image_id AND client = l.client AND undone_at IS NULL) ORDER BY l.id DESC LIMIT ?",
            (client, limit)).fetchall()
        return [dict(zip(("label_id", "image_id", "path", "label", "at"), r)) for r in rows]

    def relabel(self, image_id: int, label: str, client: str) -> str | None:
        """Change a label this tab gave (one of its last ``REVIEW``): a new label row by the same annotator, which
        is their vote from now on; the old row stays in the history. Returns why it was refused, or None."""
        self.check_label(label)
        with self.transaction() as db:
            if image_id not in {r["image_id"] for r in self.recent(client)}:
                return "only this tab's last labels can be changed here"
            who = db.execute("SELECT who FROM labels WHERE image_id = ? AND client = ? AND undone_at IS NULL "
                             "ORDER BY id DESC LIMIT 1", (image_id, client)).fetchone()[0]
            db.execute("INSERT INTO labels (image_id, label, who, at, source, client) VALUES (?, ?, ?, ?, 'web', ?)",
                       (image_id, label, who, now_iso(), client))
        return None

    def annotations(self) -> dict[int, dict[str, str]]:
        """image id -> {annotator: their latest label} over every label not undone (for agreement)."""
        out: dict[int, dict[str, str]] = {}
        for (image_id, who), label in self.labels_by_annotator().items():
            out.setdefault(image_id, {})[who] = label
        return out

    def _item(self, image_id: int) -> QueueItem:
        row = self.db.execute("SELECT q.image_id, i.path, q.batch_id, q.hint_label, q.hint_confidence FROM queue q "
                              "JOIN images i ON i.id = q.image_id WHERE q.image_id = ? "
                              "ORDER BY q.batch_id DESC LIMIT 1", (image_id,)).fetchone()
        if row is None:
            return QueueItem(image_id, self.image_path(image_id), 0)
        return QueueItem(*row)

    # ---- the queue ---------------------------------------------------------------
    def lease(self, client: str, n: int = 1, keep: tuple[int, ...] = (), who: str | None = None) -> list[QueueItem]:
        """Up to ``n`` pending images for this tab: those it already holds, then ones no other tab holds, never one
        its annotator (``who``) has labeled (an image several annotators label comes to each once).

        ``keep``: image ids the tab is showing; their leases are renewed, but only those the tab
        holds or nobody holds (a tab cannot take another tab's images by naming them)."""
        now = time.time()
        with self.transaction() as db:
            # An image labeled some other way (an import) leaves every queue.
            db.execute(f"UPDATE queue SET status = 'labeled', leased_by = NULL WHERE status = 'pending' "
                       f"AND {self.COMPLETE}")
            rows = db.execute(
                "SELECT q.image_id, i.path, q.batch_id, q.hint_label, q.hint_confidence, q.leased_by FROM queue q "
                "JOIN images i ON i.id = q.image_id WHERE q.status = 'pending' "
                "AND (q.leased_by IS NULL OR q.leased_by = ? OR q.leased_until < ?) "
                "AND q.image_id NOT IN (SELECT image_id FROM labels WHERE who IS ? AND undone_at IS NULL) "
                "ORDER BY (q.leased_by IS NOT NULL AND q.leased_by = ?) DESC, q.batch_id, q.position",
                (client, now, who, client)).fetchall()
            items = [QueueItem(*r[:5]) for r in rows if r[0] not in keep][:max(0, n)]
            ids = [it.image_id for it in items] + [r[0] for r in rows if r[0] in keep]
            db.executemany("UPDATE queue SET leased_by = ?, leased_until = ? WHERE image_id = ? AND status = 'pending'",
                           [(client, now + LEASE_SECONDS, i) for i in ids])
        return items

    def release(self, client: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE queue SET leased_by = NULL WHERE leased_by = ? AND status = 'pending'", (client,))

    def release_all(self) -> None:
        """Forget every lease (a new server: the tabs of the old one are gone)."""
        with self.transaction() as db:
            db.execute("UPDATE queue SET leased_by = NULL, leased_until = NULL WHERE status = 'pending'")

    def pending_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM queue WHERE status = 'pending'").fetchone()[0]

    def waiting_for_others(self) -> int:
        """Queued images that have a label but wait for more annotators (--overlap)."""
        return self.db.execute("SELECT count(*) FROM queue q WHERE q.status = 'pending' AND EXISTS (SELECT 1 FROM "
                               "labels l WHERE l.image_id = q.image_id AND l.undone_at IS NULL)").fetchone()[0]

    def limit_overlap(self, k: int) -> int:
        """Queued images wait for at most ``k`` annotators from now on (``alplug label --overlap k``); those that
        have ``k`` already leave the queue. Returns how many left it."""
        with self.transaction() as db:
            db.execute("UPDATE queue SET needed = ? WHERE status = 'pending' AND needed > ?", (k, k))
            return db.execute(f"UPDATE queue SET status = 'labeled', leased_by = NULL WHERE status = 'pending' "
                              f"AND {self.COMPLETE}").rowcount

    POOL = ("FROM images WHERE readable = 1 AND id NOT IN (SELECT image_id FROM current_labels) "
            "AND id NOT IN (SELECT image_id FROM queue WHERE status IN ('pending', 'skipped'))")

    def pool(self) -> list[int]:
        """Readable images that are unlabeled, not skipped and not waiting in the queue."""
        return [r[0] for r in self.db.execute(f"SELECT id {self.POOL} ORDER BY id")]

    def pool_size(self) -> int:
        """len(pool()) without fetching it: the page asks on every request."""
        return self.db.execute(f"SELECT count(*) {self.POOL}").fetchone()[0]

    def pending_paths(self, batch: int) -> list[str]:
        """The images of ``batch`` still waiting for a label, in queue order."""
        return [r[0] for r in self.db.execute(
            "SELECT i.path FROM queue q JOIN images i ON i.id = q.image_id "
            "WHERE q.batch_id = ? AND q.status = 'pending' ORDER BY q.position", (batch,))]

    def pending_items(self, batch: int) -> list[tuple[int, str, str | None, float | None]]:
        """(image id, path, the model's guess, its confidence) of the images of ``batch`` still waiting."""
        return self.db.execute(
            "SELECT q.image_id, i.path, q.hint_label, q.hint_confidence FROM queue q JOIN images i ON i.id = q.image_id "
            "WHERE q.batch_id = ? AND q.status = 'pending' ORDER BY q.position", (batch,)).fetchall()

    def has_label(self, image_id: int, label: str, who: str, source: str) -> bool:
        """Whether this annotator's label of this image, from ``source``, is recorded (and not undone)."""
        return self.db.execute("SELECT 1 FROM labels WHERE image_id = ? AND label = ? AND who = ? AND source = ? "
                               "AND undone_at IS NULL LIMIT 1", (image_id, label, who, source)).fetchone() is not None

    def new_batch(self, image_ids: list[int], how: str, trained_on: int, val_accuracy: float | None,
                  seconds: float, hints: list[tuple[str, float]] | None = None,
                  needed: list[int] | None = None) -> tuple[int, int, int]:
        """Queue a batch; unlabeled images still pending from earlier batches go back to the pool.

        The batch is made from the pool as it is now, when it is committed: images that were labeled,
        skipped, queued or found unreadable while the model trained are left out of it.
        Returns (batch id, images dropped from the previous batch, images queued)."""
        hints = hints or [(None, None)] * len(image_ids)
        needed = needed or [1] * len(image_ids)  # annotators per image (--overlap)
        with self.transaction() as db:
            dropped = db.execute("UPDATE queue SET status = 'dropped', leased_by = NULL "
                                 "WHERE status = 'pending'").rowcount
            still = {r[0] for r in db.execute(f"SELECT id {self.POOL}")}
            kept = [(int(i), h, k) for i, h, k in zip(image_ids, hints, needed) if int(i) in still]
            batch = db.execute("INSERT INTO batches (created_at, how, trained_on, val_accuracy, seconds) "
                               "VALUES (?, ?, ?, ?, ?)",
                               (now_iso(), how, trained_on, val_accuracy, round(seconds, 3))).lastrowid
            db.executemany("INSERT INTO queue (batch_id, image_id, position, hint_label, hint_confidence, needed) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           [(batch, i, pos, h[0], h[1], k) for pos, (i, h, k) in enumerate(kept)])
        return batch, dropped, len(kept)

    def batches(self) -> list[dict]:
        cols = ("batch", "created_at", "how", "trained_on", "val_accuracy", "seconds")
        return [dict(zip(cols, r)) for r in self.db.execute(
            "SELECT id, created_at, how, trained_on, val_accuracy, seconds FROM batches ORDER BY id")]

    def progress(self) -> dict:
        labeled = self.db.execute("SELECT count(*) FROM current_labels").fetchone()[0]
        batches = self.batches()
        last = batches[-1] if batches else None
        trained = [b for b in batches if b["val_accuracy"] is not None]
        return {
            "labeled": labeled,
            "remaining_in_batch": self.pending_count(),
            "batch": last["batch"] if last else None,
            "batch_size": (self.db.execute("SELECT count(*) FROM queue WHERE batch_id = ?",
                                           (last["batch"],)).fetchone()[0] if last else 0),
            "val_accuracy": trained[-1]["val_accuracy"] if trained else None,
            "unlabeled": self.pool_size() + self.pending_count(),
            "waiting_for_others": self.waiting_for_others(),
        }
