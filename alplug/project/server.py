"""`alplug label`: the labeling web page (Flask, plain HTML and JavaScript, no build step).

Each browser tab has its own client id. Images are leased to one tab at a time
(``ProjectStore.lease``), so two tabs never get the same image; a label is
refused when another tab labeled the image meanwhile, so neither loses the
other's work. When the batch is done a background thread trains on all labels
and queues the next batch while the page keeps answering.

Security (docs/labeling.md#security says what is promised and which test keeps each promise):
images are served only by their registered path, opened once and checked as
opened (a regular file inside the images directory); on loopback the Host header
must be local (no DNS rebinding); on any other ``--host`` every request needs the
token printed at start, compared in constant time, and only a matching token
sets the cookie; a POST from another origin is refused; the page runs under a
Content-Security-Policy with a per-response nonce and cannot be framed; request
bodies and lists are bounded.
"""
from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError
from .images import open_inside
from .store import ProjectStore, check_annotator

LOOPBACK = ("127.0.0.1", "localhost", "::1")
KEYS = list("1234567890qwertyiopadfghjklcvbnm")  # one per class; Backspace undoes, Space skips
GRID_CELLS = 12
RETRY_SECONDS = 30  # after a failed retraining, the next poll this much later tries again
RETRAIN_TIMEOUT = 3600  # seconds a retraining may take before it is stopped, reported and retried
MAX_WHO_CHARS = 100
MAX_DISAGREEMENTS_SHOWN = 50
MAX_BODY_BYTES = 64 * 1024  # the largest request is a lease with GRID_CELLS ids to keep
MAX_CLIENT_CHARS = 100  # a tab's id (the page sends a UUID)
MAX_ID = 2**63 - 1  # SQLite's integers


def _retrain(project: str, batch_size: int, conn, track: tuple = (), overlap: tuple[int, float] = (1, 0.0)) -> None:
    """The retraining child process: queue the next batch, sending log lines and the outcome to ``conn``."""
    import traceback

    from .learn import next_batch

    def log(message: str) -> None:
        conn.send(("log", message))

    try:
        store = ProjectStore(project)
        try:
            if store.pending_count() == 0:  # another process may have queued one meanwhile
                b = next_batch(store, batch_size, echo=log, track=track, overlap=overlap)
                acc = f", validation accuracy {b.val_accuracy:.3f}" if b.val_accuracy is not None else ""
                log(f"batch {b.batch}: {b.size} images by {b.how} ({b.seconds:.1f} s{acc})")
        finally:
            store.close()
        conn.send(("done", None))
    except BaseException as exc:  # reported by the server: shown on the page, retried later
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


class Retrainer:
    """Trains and queues the next batch in a child process, one at a time, watched by a thread.

    A process rather than a thread: a strategy or a training that never returns can be stopped (a thread
    cannot), and training does not hold the interpreter lock the page's requests need.
    """

    def __init__(self, project: Path, batch_size: int, log, timeout: float = RETRAIN_TIMEOUT, track: tuple = (),
                 overlap: tuple[int, float] = (1, 0.0)):
        self.project, self.batch_size, self.log, self.timeout = project, batch_size, log, timeout
        self.track = tuple(track)  # --track values, passed to each retraining
        self.overlap = overlap     # (K annotators, share of each batch): --overlap, --overlap-share
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.failed_at = 0.0

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        with self.lock:
            if self.running or (self.error and time.monotonic() - self.failed_at < RETRY_SECONDS):
                return
            self.error = None
            self.thread = threading.Thread(target=self._watch, name="alplug-retrain", daemon=True)
            self.thread.start()

    def _fail(self, message: str, details: str = "") -> None:
        self.error, self.failed_at = message, time.monotonic()
        self.log(f"retraining failed: {message}" + (f"\n{details}" if details else ""))

    def _watch(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # fork would copy the server's threads and locks
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_retrain, args=(str(self.project), self.batch_size, send, self.track, self.overlap),
                            name="alplug-retrain", daemon=True)
        child.start()
        send.close()
        deadline = time.monotonic() + self.timeout
        outcome = None
        try:
            while outcome is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail(f"retraining took longer than {self.timeout:g} s and was stopped; "
                               f"it is tried again after {RETRY_SECONDS} s")
                    return
                if not receive.poll(min(left, 1.0)):
                    continue
                try:
                    message = receive.recv()
                except EOFError:  # the child is gone without a word (killed, out of memory)
                    child.join(5)
                    self._fail(f"the retraining process ended unexpectedly (exit code {child.exitcode})")
                    return
                if message[0] == "log":
                    self.log(message[1])
                else:
                    outcome = message
            if outcome[0] == "error":
                self._fail(outcome[1], outcome[2])
        finally:
            if child.is_alive():
                child.terminate()
                child.join(5)
                if child.is_alive():
                    child.kill()
            child.join(5)
            receive.close()


def key_bindings(classes: list[str]) -> dict[str, str]:
    """The key that labels each class: a class named by a single key (a digit, a letter) gets that key; the
    others get the free keys in order, never a key that names another class. So on digit classes the digit
    you see is the key you press, and no digit key ever labels a different digit."""
    keys, taken = {}, set()
    for name in classes:
        key = name.lower()
        if len(name) == 1 and key in KEYS and key not in taken:
            keys[name], taken = key, taken | {key}
    named = {name.lower() for name in classes if len(name) == 1}
    free = (k for k in KEYS if k not in taken and k not in named)
    for name in classes:
        if name not in keys:
            key = next(free, None)
            if key is None:
                break  # more classes than keys: the rest are labeled with their buttons
            keys[name] = key
    return keys


def _hostname(host_header: str) -> str:
    """The host part of a Host header: 127.0.0.1:8000 -> 127.0.0.1, [::1]:8000 and [::1] -> ::1."""
    try:
        return urlsplit("//" + host_header).hostname or ""
    except ValueError:  # a malformed header
        return ""


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def create_app(project: str | Path, *, batch_size: int, annotator: str, hint: bool = False,
               token: str | None = None, log=print, retrain_timeout: float = RETRAIN_TIMEOUT, track: tuple = (),
               overlap: tuple[int, float] = (1, 0.0)):
    from flask import Flask, abort, g, jsonify, render_template_string, request, send_file

    project = Path(project)
    first = ProjectStore(project)
    first.release_all()  # the tabs of an earlier server are gone
    classes, root = first.classes, first.images_dir
    first.close()
    retrainer = Retrainer(project, batch_size, log, timeout=retrain_timeout, track=track, overlap=overlap)
    app = Flask(__name__)
    app.config.update(alplug_retrainer=retrainer, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)

    def store() -> ProjectStore:
        if "store" not in g:
            g.store = ProjectStore(project)
        return g.store

    @app.teardown_appcontext
    def _close(_exc):
        s = g.pop("store", None)
        if s is not None:
            s.close()

    @app.before_request
    def _guard():
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
            abort(403)  # another site's page posting labels (cross-site request forgery)
        if token is None:
            if _hostname(request.host or "") not in LOOPBACK:
                abort(403)  # a page on another site resolving its name to 127.0.0.1
            return None
        from_query = request.args.get("token")
        given = from_query or request.cookies.get("alplug_token") or request.headers.get("X-Alplug-Token") or ""
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode()):
            abort(403)
        g.token_from_query = from_query is not None  # only a matching token sets the cookie
        return None

    @app.after_request
    def _headers(response):
        if token is not None and g.get("token_from_query"):
            response.set_cookie("alplug_token", token, httponly=True, samesite="Strict")
        nonce = g.get("nonce")
        sources = f"'nonce-{nonce}'" if nonce else "'none'"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src {sources}; style-src {sources}; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the address may carry the token
        return response

    def body() -> dict:
        try:  # parsed here, not by Flask: deep nesting must be a 400, not a RecursionError's 500
            data = json.loads(request.get_data(cache=False))
        except (ValueError, RecursionError):
            data = None
        client = data.get("client") if isinstance(data, dict) else None
        if not isinstance(client, str) or not 0 < len(client) <= MAX_CLIENT_CHARS:
            abort(400, "a JSON object with a client id (a string of 1 to 100 characters) is required")
        return data

    def who(data) -> str:
        """The annotator the tab says it is (asked once, kept by the browser), else the server's --annotator."""
        value = data.get("who")
        if value is None:
            return annotator
        if not isinstance(value, str) or len(value) > MAX_WHO_CHARS:  # the page's field is shorter than the store's
            abort(400, f"who must be a name of 1 to {MAX_WHO_CHARS} printable characters")
        try:
            return check_annotator(value.strip())
        except UsageError:
            abort(400, f"who must be a name of 1 to {MAX_WHO_CHARS} printable characters")

    def image_id(data) -> int:
        value = data.get("image_id")
        if not _valid_id(value) or store().image_path(value) is None:
            abort(400, "unknown image_id")
        return value

    def state(**extra) -> dict:
        s = store()
        progress = s.progress()
        if progress["remaining_in_batch"] == 0 and progress["unlabeled"] > 0:
            retrainer.start()
        return {"progress": progress, "training": retrainer.running, "error": retrainer.error, **extra}

    @app.get("/")
    def page():
        # Flask's Jinja2: the page's one script and style carry the request's nonce, and the configuration goes in
        # through `tojson`, which escapes what could end the script element or open a comment (<, >, &, ').
        template = resources.files("alplug.project").joinpath("label.html").read_text()
        g.nonce = secrets.token_urlsafe(18)
        config = {"classes": classes, "keys": key_bindings(classes), "grid": GRID_CELLS, "project": project.name,
                  "annotator": annotator, "review": ProjectStore.REVIEW}
        response = app.make_response(render_template_string(template, nonce=g.nonce, config=config))
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/api/lease")
    def lease():
        data = body()
        n = data.get("n", 1)
        keep = data.get("keep", [])
        if not _valid_id(n) or n > GRID_CELLS or not isinstance(keep, list) or len(keep) > GRID_CELLS or \
                not all(_valid_id(i) for i in keep):
            abort(400, f"n must be 0..{GRID_CELLS} and keep a list of at most {GRID_CELLS} image ids")
        items = store().lease(data["client"], n, keep=tuple(keep), who=who(data))
        return jsonify(state(items=[it.to_json(hint) for it in items]))

    def class_of(data) -> str:
        value = data.get("label")
        if not isinstance(value, str) or value not in classes:
            abort(400, f"label must be one of the project's classes: {', '.join(classes)}")
        return value

    @app.post("/api/label")
    def label():
        data = body()
        refused = store().label_from_tab(image_id(data), class_of(data), who=who(data), client=data["client"])
        if refused:
            return jsonify(state(ok=False, message=refused)), 409
        return jsonify(state(ok=True))

    @app.post("/api/skip")
    def skip():
        data = body()
        refused = store().skip(image_id(data), who=who(data), client=data["client"])
        if refused:
            return jsonify(state(ok=False, message=refused)), 409
        return jsonify(state(ok=True))

    @app.post("/api/undo")
    def undo():
        item, message = store().undo(body()["client"])
        return jsonify(state(item=item.to_json(hint) if item else None, message=message))

    @app.post("/api/recent")
    def recent():
        return jsonify(labels=store().recent(body()["client"]))

    @app.post("/api/relabel")
    def relabel():
        data = body()
        refused = store().relabel(image_id(data), class_of(data), client=data["client"])
        if refused:
            return jsonify(ok=False, message=refused), 409
        return jsonify(ok=True, labels=store().recent(data["client"]))

    @app.get("/api/agreement")
    def agreement_():
        from .agreement import agreement

        s = store()
        result = agreement(s.annotations(), classes, {i: p for p, i in s.image_ids_by_path().items()})
        result["disagreements"] = result["disagreements"][:MAX_DISAGREEMENTS_SHOWN]
        return jsonify(result)

    @app.post("/api/release")
    def release():
        store().release(body()["client"])
        return jsonify(ok=True)

    @app.get("/api/status")
    def status():
        return jsonify(state(classes=classes, batches=store().batches()))

    @app.get("/images/<path:rel>")
    def image(rel: str):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            abort(403)
        if store().image_id(rel) is None:
            abort(404)
        opened = open_inside(root, rel)
        if opened is None:  # replaced since init by a symlink out of the folder, a FIFO, a directory...
            abort(403)
        f, st = opened
        response = send_file(f, mimetype=mimetypes.guess_type(rel)[0] or "application/octet-stream",
                             last_modified=st.st_mtime, etag=f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}",
                             max_age=3600)
        response.content_length = st.st_size
        return response

    return app


def listening_addresses(host: str) -> list[str]:
    """The addresses a browser can use for a server bound to ``host`` (a wildcard becomes this machine's
    own addresses, loopback first)."""
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    family = socket.AF_INET6 if host == "::" else socket.AF_INET
    found = ["::1" if family == socket.AF_INET6 else "127.0.0.1"]
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except OSError:
        infos = []
    for info in infos:
        address = info[4][0].split("%")[0]
        if address not in found and not address.startswith(("127.", "fe80:")) and address != "::1":
            found.append(address)
    return found


def serve(project: str | Path, *, host: str, port: int, batch_size: int, annotator: str, hint: bool,
          echo=print, retrain_timeout: float = RETRAIN_TIMEOUT, track: tuple = (),
          overlap: tuple[int, float] = (1, 0.0)) -> None:
    """Run the server until interrupted (``track``: ``--track`` values for its retrainings; ``overlap``: K
    annotators for a share of each new batch)."""
    from werkzeug.serving import make_server

    token = None if host in LOOPBACK else secrets.token_urlsafe(24)
    app = create_app(project, batch_size=batch_size, annotator=annotator, hint=hint, token=token, log=echo,
                     retrain_timeout=retrain_timeout, track=track, overlap=overlap)
    server = make_server(host, port, app, threaded=True)
    urls = [f"http://{f'[{a}]' if ':' in a else a}:{server.port}/" + (f"?token={token}" if token else "")
            for a in listening_addresses(host)]
    echo(f"alplug label: {Path(project).name} at {urls[0]}  (Ctrl-C stops; every submitted label is already saved)")
    for url in urls[1:]:
        echo(f"alplug label: also at {url}")
    if token:
        echo("alplug label: listening beyond this machine; the token in the address is required")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
