"""`alplug label`: the labeling web page (Flask, plain HTML and JavaScript, no build step).

Each browser tab has its own client id. Images are leased to one tab at a time
(``ProjectStore.lease``), so two tabs never get the same image; a label is
refused when another tab labeled the image meanwhile, so neither loses the
other's work. When the batch is done a background thread trains on all labels
and queues the next batch while the page keeps answering.

Security: images are served only by their registered path inside the images
directory (symlinks followed and checked); on loopback the Host header must be
local (no DNS rebinding); on any other ``--host`` every request needs the token
printed at start; a POST from another origin is refused.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
import traceback
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from .images import inside
from .store import ProjectStore

LOOPBACK = ("127.0.0.1", "localhost", "::1")
KEYS = list("1234567890qwertyiopadfghjklcvbnm")  # one per class; Backspace undoes, Space skips
GRID_CELLS = 12
RETRY_SECONDS = 30  # after a failed retraining, the next poll this much later tries again


class Retrainer:
    """Trains and queues the next batch in a background thread, one at a time."""

    def __init__(self, project: Path, batch_size: int, log):
        self.project, self.batch_size, self.log = project, batch_size, log
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.failed_at = 0.0
        self.last = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        with self.lock:
            if self.running or (self.error and time.monotonic() - self.failed_at < RETRY_SECONDS):
                return
            self.error = None
            self.thread = threading.Thread(target=self._work, name="alplug-retrain", daemon=True)
            self.thread.start()

    def _work(self) -> None:
        from .learn import next_batch

        store = ProjectStore(self.project)
        try:
            if store.pending_count() == 0:  # another process may have queued one meanwhile
                self.last = next_batch(store, self.batch_size, echo=self.log)
                b = self.last
                acc = f", validation accuracy {b.val_accuracy:.3f}" if b.val_accuracy is not None else ""
                self.log(f"batch {b.batch}: {b.size} images by {b.how} ({b.seconds:.1f} s{acc})")
        except Exception as exc:  # shown on the page; a poll RETRY_SECONDS later tries again
            self.error, self.failed_at = f"{type(exc).__name__}: {exc}", time.monotonic()
            self.log(f"retraining failed: {self.error}\n{traceback.format_exc()}")
        finally:
            store.close()


def create_app(project: str | Path, *, batch_size: int, annotator: str, hint: bool = False,
               token: str | None = None, log=print):
    from flask import Flask, abort, g, jsonify, request, send_file

    project = Path(project)
    first = ProjectStore(project)
    first.release_all()  # the tabs of an earlier server are gone
    classes, root = first.classes, first.images_dir
    first.close()
    retrainer = Retrainer(project, batch_size, log)
    app = Flask(__name__)
    app.config.update(alplug_retrainer=retrainer)

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
            host = (request.host or "").rsplit(":", 1)[0].strip("[]")
            if host not in LOOPBACK:
                abort(403)  # a page on another site resolving its name to 127.0.0.1
            return None
        given = request.args.get("token") or request.cookies.get("alplug_token") or \
            request.headers.get("X-Alplug-Token") or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(403)
        return None

    @app.after_request
    def _token_cookie(response):
        if token is not None and request.args.get("token"):
            response.set_cookie("alplug_token", token, httponly=True, samesite="Strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def body() -> dict:
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("client"), str) or not data["client"]:
            abort(400, "a JSON body with a client id is required")
        return data

    def image_id(data) -> int:
        value = data.get("image_id")
        if not isinstance(value, int) or store().image_path(value) is None:
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
        html = resources.files("alplug.project").joinpath("label.html").read_text()
        keys = {c: KEYS[i] for i, c in enumerate(classes) if i < len(KEYS)}
        import json

        config = json.dumps({"classes": classes, "keys": keys, "grid": GRID_CELLS, "project": project.name})
        return html.replace("/*CONFIG*/null", config)

    @app.post("/api/lease")
    def lease():
        data = body()
        n = data.get("n", 1)
        keep = data.get("keep", [])
        if not isinstance(n, int) or not 0 <= n <= GRID_CELLS or not isinstance(keep, list) or \
                not all(isinstance(i, int) for i in keep):
            abort(400, "n must be 0..12 and keep a list of image ids")
        items = store().lease(data["client"], n, keep=tuple(keep))
        return jsonify(state(items=[it.to_json(hint) for it in items]))

    @app.post("/api/label")
    def label():
        data = body()
        iid, value = image_id(data), data.get("label")
        if value not in classes:
            abort(400, f"label must be one of the project's classes: {', '.join(classes)}")
        if not store().add_label(iid, value, who=annotator, source="web", client=data["client"],
                                 only_if_pending=True):
            return jsonify(state(ok=False, message="another tab labeled this image already")), 409
        return jsonify(state(ok=True))

    @app.post("/api/skip")
    def skip():
        data = body()
        store().skip(image_id(data), who=annotator, client=data["client"])
        return jsonify(state(ok=True))

    @app.post("/api/undo")
    def undo():
        item = store().undo(body()["client"])
        return jsonify(state(item=item.to_json(hint) if item else None))

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
        candidate = root / rel
        if not inside(root, candidate):  # a registered file since replaced by a symlink out of the folder
            abort(403)
        return send_file(candidate.resolve(), max_age=3600)

    return app


def serve(project: str | Path, *, host: str, port: int, batch_size: int, annotator: str, hint: bool,
          echo=print) -> None:
    """Run the server until interrupted."""
    from werkzeug.serving import make_server

    token = None if host in LOOPBACK else secrets.token_urlsafe(24)
    app = create_app(project, batch_size=batch_size, annotator=annotator, hint=hint, token=token, log=echo)
    server = make_server(host, port, app, threaded=True)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.port}/" + (f"?token={token}" if token else "")
    echo(f"alplug label: {Path(project).name} at {url}  (Ctrl-C stops; every submitted label is already saved)")
    if token:
        echo("alplug label: listening beyond this machine; the token in the address is required")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
