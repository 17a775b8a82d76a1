"""Where ``--track`` sends a run, as given (``KIND[=WHERE]``), and the checks that refuse within seconds a place
a tracker cannot use: an MLflow server that does not answer, an SQLite store that cannot be opened. MLflow itself
would retry for minutes first.
"""
from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class TrackSpec:
    """One ``--track KIND[=WHERE]``: a TensorBoard log directory or an MLflow tracking URI (None: inside the
    run, study or project directory)."""

    kind: str
    where: str | None = None

    def __str__(self) -> str:
        return self.kind if self.where is None else f"{self.kind}={self.where}"

    @property
    def shown(self) -> str:
        """As in messages: a password in the URI is replaced by ***."""
        return self.kind if self.where is None else f"{self.kind}={redact(self.where)}"


def redact(uri: str) -> str:
    """``uri`` with the password of its user part (scheme://user:password@host) replaced by ***."""
    import re

    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", uri)


CONNECT_TIMEOUT_S = 5.0
# MLflow's HTTP client retries a failed request 7 times with a back-off factor of 2 and waits 120 s for each answer:
# minutes of silence per call when a server dies. alplug's calls give up sooner (the run goes on untracked, and
# --resume sends what was missed); a user's own MLFLOW_HTTP_REQUEST_* settings win.
MLFLOW_HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def check_server(uri: str, timeout: float | None = None) -> None:
    """Fail within about ``timeout`` seconds unless an HTTP server answers at ``uri`` (MLflow's ``/health``):
    nothing listening, a server that accepts and never answers, and one answering 5xx are all refused here,
    where MLflow's client would retry with back-off for minutes before saying so."""
    import http.client
    import socket
    from urllib.parse import urlsplit

    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    shown = redact(uri)
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UsageError(f"--track mlflow={shown}: not a valid URL ({exc}); give http://HOST:PORT") from None
    if not host:
        raise UsageError(f"--track mlflow={shown}: not a URL with a host; give http://HOST:PORT")
    connection = (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection)(
        host, port, timeout=timeout)
    try:
        connection.request("GET", parts.path.rstrip("/") + "/health", headers={"Connection": "close"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        why = "no answer within {:g} s".format(timeout) if isinstance(exc, socket.timeout) else \
            (getattr(exc, "strerror", None) or type(exc).__name__)
        raise UsageError(f"--track mlflow={shown}: cannot reach an MLflow server there ({why}); start one "
                         "(mlflow server) or give --track mlflow to track inside the run directory") from None
    finally:
        connection.close()
    if status >= 500:
        raise UsageError(f"--track mlflow={shown}: the server answers HTTP {status} (not working); try again "
                         "when it is, or give --track mlflow to track inside the run directory")


def sqlite_path(uri: str) -> Path | None:
    """The file of an MLflow SQLite store URI: sqlite:////abs -> /abs, sqlite:///rel -> rel (None: not one)."""
    if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def check_sqlite(uri: str) -> None:
    """Fail at once when an MLflow SQLite store cannot be opened or created: MLflow retries for about two minutes
    first. Creates nothing (a probe file in the folder is removed at once)."""
    import sqlite3
    import tempfile

    shown = redact(uri)
    path = sqlite_path(uri)
    if path is None:
        raise UsageError(f"--track mlflow={shown}: give an SQLite store as sqlite:///RELATIVE.db or "
                         "sqlite:////ABSOLUTE/PATH.db")
    try:
        if path.exists():
            if not path.is_file():
                raise OSError(0, "not a regular file")
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_S)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        else:
            folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".alplug-probe-")
            os.close(fd)
            os.unlink(probe)
    except (OSError, sqlite3.Error) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"--track mlflow={shown}: cannot open an SQLite store there ({why}); give a "
                         "writable path") from None

