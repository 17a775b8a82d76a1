"""``--track``: a run's epochs and rounds in TensorBoard or MLflow, through skorch's own logging callbacks.

skorch's ``TensorBoard`` and ``MlflowLogger`` callbacks log each fit's epochs. What is ours is the joining, which
neither they nor the trackers do: one tracked run across every round of an active-learning run (each round's fit
restarts skorch's epoch count, so the callbacks' step is offset by the round) and across ``--resume``; the
per-round figures (labels, validation accuracy, seconds, the queried classes); the configuration, curve, result
and model at the end; and a study as one MLflow parent run with a child run per (strategy, seed).

TensorBoard's reader drops the partial epochs of a round that was killed and redone (their steps go back); MLflow
keeps every value it was sent, so there a redone round's epochs can show twice at the same step. Round figures
are sent after the round is committed and recorded as sent; TensorBoard's tracker never writes one twice. A
tracker that stops answering costs one warning, never the run (``Tracker.guard``); ``--resume`` catches it up.
"""
from __future__ import annotations

import importlib.util
import json
import os
from contextlib import closing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MissingDependencyError, UsageError
from .userfiles import printable

if TYPE_CHECKING:
    from .records import RoundRecord, RunResult

TRACKERS: dict[str, type[Tracker]] = {}  # --track KIND -> its Tracker class (each subclass registers itself)
EXPERIMENT = "alplug"  # MLflow experiment of runs and studies (MLFLOW_EXPERIMENT_NAME overrides it)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value


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


def track_metavar(between: str = "|") -> str:
    """The trackers as ``--track`` takes them: ``tensorboard[=DIR]|mlflow[=URI]``."""
    return between.join(f"{name}[={cls.where_metavar}]" for name, cls in TRACKERS.items())


def parse_track(values) -> list[TrackSpec]:
    """``--track`` values (repeatable) as specs; an unknown tracker is a usage error and a missing one says
    which extra to install; an MLflow store that cannot answer is refused within seconds. Imports neither
    tracker."""
    specs = []
    for value in values or ():
        kind, _, where = str(value).partition("=")
        kind = kind.strip().lower()
        shown = TrackSpec(kind, where.strip() or None).shown if kind in TRACKERS else printable(str(value), 80)
        if kind not in TRACKERS:
            raise UsageError(f"--track {shown!r}: unknown tracker; choose {track_metavar(' or ')}")
        if "=" in str(value) and not where.strip():
            places = " or ".join(f"{cls.where_help} ({name})" for name, cls in TRACKERS.items())
            raise UsageError(f"--track {shown!r}: nothing after '='; give {places}, or leave out '=' for one "
                             "inside the run directory")
        if any(s.kind == kind for s in specs):
            raise UsageError(f"--track {kind} is given twice; a run is tracked once per tracker")
        if importlib.util.find_spec(TRACKERS[kind].module) is None:
            raise MissingDependencyError(f"--track {kind} needs {TRACKERS[kind].module}: "
                                         f"pip install \"alplug[{kind}]\"")
        spec = TrackSpec(kind, where.strip() or None)
        if spec.where:
            TRACKERS[kind].check_where(spec.where)
        specs.append(spec)
    return specs


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


def flat_params(config: dict) -> dict[str, str]:
    """A configuration as MLflow parameters: strings, unset ones left out, tables as JSON."""
    out = {}
    for key, value in config.items():
        if value is None or value == {}:
            continue
        text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
        out[key] = text[:MAX_PARAM_CHARS]
    return out


def _round_step(cb, net) -> int:
    """The tracked run's epoch step: the epochs of earlier rounds (``round x epochs``) plus this fit's epoch.
    Warm-started fits keep skorch's history, so this fit's epoch counts from the history length at its start."""
    return cb.tracker.round * cb.tracker.epochs_per_round + len(net.history) - cb.first_epoch_


def _skorch_callbacks():
    # Built on first use: importing them pulls in nothing heavy, but their base classes come from skorch.
    from skorch.callbacks import MlflowLogger, TensorBoard

    class RoundTensorBoard(TensorBoard):
        """skorch's TensorBoard callback with the run's epoch step across rounds, and the writer kept open."""

        def __init__(self, tracker, writer):
            super().__init__(writer, close_after_train=False)
            self.tracker = tracker

        def on_train_begin(self, net, **kwargs):
            self.first_epoch_ = len(net.history)

        def on_epoch_end(self, net, **kwargs):
            self.step_ = _round_step(self, net)
            self.tracker.guard("logging an epoch", super().on_epoch_end, net, **kwargs)

        def add_scalar_maybe(self, history, key, tag, global_step=None):
            super().add_scalar_maybe(history, key, tag, global_step=self.step_)

    class RoundMlflowLogger(MlflowLogger):
        """skorch's MLflow callback with the run's epoch step across rounds; the run outlives each fit."""

        def __init__(self, tracker, run, client):
            super().__init__(run=run, client=client, create_artifact=False, terminate_after_train=False)
            self.tracker = tracker

        def on_train_begin(self, net, **kwargs):
            super().on_train_begin(net, **kwargs)
            self.first_epoch_ = len(net.history)

        def on_epoch_end(self, net, **kwargs):
            # MlflowLogger steps by len(net.history), which restarts every round: its logging, our step.
            self.tracker.guard("logging an epoch", self._iteration_log, net.history[-1], self.epoch_suffix_,
                               _round_step(self, net))

    return RoundTensorBoard, RoundMlflowLogger


class Tracker(ABC):
    """One tracked run: the interface TensorBoardTracker and MlflowTracker implement. ``open`` returns what
    ``tracking.json`` keeps to continue it (``--resume``, a study run again, a project's next batch)."""

    kind = ""              # the name --track takes; a subclass with a kind is registered in TRACKERS
    module = ""            # the module it needs, installed by the extra alplug[KIND]
    where_metavar = ""     # what KIND=WHERE names, as the option's help shows it (DIR, URI)
    where_help = ""        # the same in words, for the error of an empty WHERE

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            TRACKERS[cls.kind] = cls

    def __init__(self, spec: TrackSpec, epochs_per_round: int, parent_run_id: str | None = None):
        """``parent_run_id``: the study's tracked run, for a tracker that nests a study's runs under it."""
        self.spec, self.epochs_per_round, self.round = spec, epochs_per_round, 0
        self.parent_run_id = parent_run_id
        self.broken: str | None = None  # why the tracker stopped answering mid-run; nothing more is sent to it
        self.warn = print

    def guard(self, what: str, call, *args, **kwargs) -> bool:
        """``call`` unless the tracker already failed; a failure (a server gone, a full disk) is one warning line,
        and the run goes on untracked by it. Returns whether the call went through."""
        if self.broken:
            return False
        try:
            call(*args, **kwargs)
            return True
        except Exception as exc:  # noqa: BLE001 - whatever the tracker raises, training must not stop for it
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no details"
            self.broken = f"{type(exc).__name__}: {detail}"
            self.warn(f"alplug: warning: --track {self.spec.shown}: {what} failed ({self.broken}); the run goes on "
                      "without it, and the same command with --resume sends it what it missed")
            return False

    @classmethod
    def check_where(cls, where: str) -> None:
        """Refuse, within seconds and before any work, a WHERE the tracker cannot use (a UsageError)."""

    def directory(self, home: Path, name: str, own_directory: bool) -> Path:
        """Where the tracked run ``name`` is opened: ``home`` is the run's (or its study's or project's)
        directory; ``own_directory``: the run is alone there (not one of a study's)."""
        return home

    @abstractmethod
    def open(self, directory: Path, config: dict, recorded: dict | None, name: str, tags: dict) -> dict:
        """Start the tracked run in ``directory`` (or continue ``recorded``); what to record to continue it."""

    @abstractmethod
    def where(self) -> str:
        """One line telling the user where to look."""

    @abstractmethod
    def callbacks(self) -> list[tuple[str, object]]:
        """skorch callbacks that log each fit's epochs."""

    @abstractmethod
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Named figures at ``step``."""

    def log_round(self, row: RoundRecord, classes: list[str]) -> None:
        """A committed round's figures, against the labels so far (the curve active learning is judged by)."""
        self.log_metrics(_round_metrics(row, classes), step=row.labels)

    @abstractmethod
    def save_files(self, paths: list[Path]) -> None:
        """Files of the run, as the tracker keeps them."""

    @abstractmethod
    def close(self) -> None:
        """Done for now (a labeling project's batch): a later ``open`` continues the same tracked run."""

    def finish(self, result: RunResult, run_path: Path) -> None:
        """The run's end: its files (result, history, configuration, curve, model) and final test accuracy."""
        self.save_files([run_path / name for name in RUN_FILES])
        self.log_metrics({"test_accuracy": result.test_accuracy}, step=result.labels)
        self.close()

    @abstractmethod
    def fail(self, interrupted: bool) -> None:
        """The run stopped on an error (or Ctrl-C): the tracker shows it as failed (killed), not running."""


RUN_FILES = ("result.json", "history.csv", "config.toml", "learning_curve.png", "model.pt")


def _round_metrics(row: RoundRecord, classes: list[str]) -> dict[str, float]:
    metrics = {f"round/{k}": v for k, v in row.numbers().items()}
    metrics["round/round"] = float(row.round)
    if row.round > 0:  # round 0's labels were not queried
        counts = {name: 0 for name in classes}
        for c in row.queried_classes:
            counts[classes[c]] += 1
        metrics.update({f"queried_class/{name}": float(n) for name, n in counts.items()})
    return metrics


class TensorBoardTracker(Tracker):
    """Event files in one log directory per run; a resumed run appends to it."""

    kind, module, where_metavar, where_help = "tensorboard", "tensorboard", "DIR", "a directory"

    def directory(self, home, name, own_directory):
        # DIR/RUN for --track tensorboard=DIR and in studies: TensorBoard shows the runs side by side
        if not self.spec.where and own_directory:
            return home / "tensorboard"  # a run's own directory holds one run
        return (Path(self.spec.where).expanduser() if self.spec.where else home / "tensorboard") / name

    def open(self, directory: Path, config: dict, recorded: dict | None, name: str, tags: dict) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        logdir = directory
        # A run killed after a round's figures were written but before tracking.json said so sends that round
        # again on resume: what the log already holds is read back and not written twice.
        self.present = _logged_steps(logdir) if recorded is not None else set()
        self.writer = SummaryWriter(log_dir=str(logdir))
        self.logdir = logdir
        if recorded is None:
            self.writer.add_text("config", _markdown_table(config))
            self.writer.add_text("tags", _markdown_table({"run": name, **tags}))
        return {"logdir": str(logdir.resolve())}

    def where(self) -> str:
        return f"tracking in TensorBoard: tensorboard --logdir {self.logdir}"

    def callbacks(self):
        RoundTensorBoard, _ = _skorch_callbacks()
        return [("track_tensorboard", RoundTensorBoard(self, self.writer))]

    def log_metrics(self, metrics, step):
        for tag, value in metrics.items():
            if (tag, step) not in self.present:
                self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def log_round(self, row, classes):
        import numpy as np

        super().log_round(row, classes)
        if row.queried_classes and ("round/queried_classes", row.labels) not in self.present:
            self.writer.add_histogram("round/queried_classes", np.asarray(row.queried_classes),
                                      global_step=row.labels, bins=np.arange(len(classes) + 1) - 0.5)
            self.writer.flush()

    def save_files(self, paths):
        """TensorBoard keeps no files: images are shown, JSON as text, anything else by its path."""
        import numpy as np
        from PIL import Image

        for path in (p for p in paths if p.is_file()):
            if path.suffix == ".png":
                with Image.open(path) as image:
                    self.writer.add_image(path.stem, np.asarray(image.convert("RGB")), dataformats="HWC")
            elif path.suffix == ".json":
                self.writer.add_text(path.stem, "```\n" + path.read_text(encoding="utf-8") + "\n```")
            else:
                self.writer.add_text(f"files/{path.name}", f"`{path.resolve()}`")
        self.writer.flush()

    def close(self):
        self.writer.close()

    def fail(self, interrupted):
        self.writer.close()


def _logged_steps(logdir: Path) -> set[tuple[str, int]]:
    """(tag, step) of every scalar and histogram already in a TensorBoard log directory."""
    if not logdir.is_dir():
        return set()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    return ({(tag, e.step) for tag in tags.get("scalars", []) for e in events.Scalars(tag)}
            | {(tag, e.step) for tag in tags.get("histograms", []) for e in events.Histograms(tag)})


class MlflowTracker(Tracker):
    """An MLflow run (a child of the study's run under ``compare``); a resumed run continues it."""

    kind, module, where_metavar, where_help = "mlflow", "mlflow", "URI", "a tracking URI"

    @classmethod
    def check_where(cls, where):
        if where.lower().startswith(("http://", "https://")):
            check_server(where)
        elif where.lower().startswith("sqlite:"):
            check_sqlite(where)

    def open(self, directory: Path, config: dict, recorded: dict | None, name: str, tags: dict) -> dict:
        self.client, uri, experiment_id = mlflow_client(self.spec, directory)
        self.uri = uri
        # tracking.json keeps the URI without its password (a run directory gets copied and shared)
        if recorded and recorded.get("uri") in (redact(uri), uri) and _run_exists(self.client, recorded.get("run_id")):
            self.run = self.client.get_run(recorded["run_id"])
            self.client.update_run(self.run.info.run_id, status="RUNNING")
        else:
            run_tags = {"mlflow.runName": name, **{f"alplug.{k}": str(v) for k, v in tags.items()}}
            if self.parent_run_id:
                run_tags["mlflow.parentRunId"] = self.parent_run_id
            self.run = self.client.create_run(experiment_id, run_name=name, tags=run_tags)
            log_params(self.client, self.run.info.run_id, flat_params(config))
        return {"uri": redact(uri), "run_id": self.run.info.run_id}

    def where(self) -> str:
        uri = redact(self.uri)
        shown = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else uri
        return f"tracking in MLflow: run {self.run.info.run_id} ({shown})"

    def callbacks(self):
        _, RoundMlflowLogger = _skorch_callbacks()
        return [("track_mlflow", RoundMlflowLogger(self, self.run, self.client))]

    def log_metrics(self, metrics, step):
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run.info.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def save_files(self, paths):
        for path in (p for p in paths if p.is_file()):
            self.client.log_artifact(self.run.info.run_id, str(path))

    def close(self):
        self.client.set_terminated(self.run.info.run_id, "FINISHED")

    def fail(self, interrupted):
        self.client.set_terminated(self.run.info.run_id, "KILLED" if interrupted else "FAILED")

    def finish_study(self, report_dir: Path, failed: bool) -> None:
        """The study's parent run: its report as artifacts, FAILED while any run failed (rerunning the study
        retries them and finishes it)."""
        self.client.log_artifacts(self.run.info.run_id, str(report_dir), artifact_path="report")
        self.client.set_terminated(self.run.info.run_id, "FAILED" if failed else "FINISHED")


def _run_exists(client, run_id) -> bool:
    if not isinstance(run_id, str):
        return False
    try:
        client.get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises its own exception for an unknown run
        return False
    return True


def log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
        client.log_batch(run_id, params=items[start:start + 100])


def mlflow_client(spec: TrackSpec, default_dir: Path):
    """(client, tracking URI, experiment id). Without a URI: a SQLite store and an artifact folder in
    ``default_dir`` (MLflow's file store is in maintenance mode and refuses to start by default)."""
    import logging

    from mlflow.tracking import MlflowClient

    # MLflow announces each schema migration of a new SQLite store at INFO level, in alembic's words too.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)

    if spec.where:
        uri = spec.where
        artifacts = None
        if uri.lower().startswith(("http://", "https://")):
            for key, value in MLFLOW_HTTP_SETTINGS.items():
                os.environ.setdefault(key, value)
        elif sqlite_path(uri) is not None:  # artifacts beside the store, not in ./mlruns wherever alplug started
            artifacts = (sqlite_path(uri).expanduser().resolve().parent / "mlartifacts").as_uri()
    else:
        default_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(default_dir / 'mlflow.db').resolve()}"
        artifacts = (default_dir / "mlartifacts").resolve().as_uri()
    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return client, uri, experiment.experiment_id
    try:
        return client, uri, client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # noqa: BLE001 - another worker of the study created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return client, uri, experiment.experiment_id


def _markdown_table(values: dict) -> str:
    rows = [f"| {k} | {json.dumps(v) if isinstance(v, (dict, list)) else v} |" for k, v in values.items()
            if v is not None]
    return "| setting | value |\n| --- | --- |\n" + "\n".join(rows)


@dataclass
class TrackingPlan:
    """Where a run is tracked: its ``--track`` specs, the directory holding the default stores (the run's own,
    or its study's), the study's MLflow run that is its parent, and tags naming it (strategy, seed)."""

    specs: list[TrackSpec]
    home: Path | None = None          # None: the run directory
    parent_run_id: str | None = None
    tags: dict | None = None


TRACKING_FILE = "tracking.json"  # in the run (study, project) directory: the tracked runs to continue
MAX_TRACKING_BYTES = 64 * 1024
COUNTS = ("rounds_sent", "ended")  # the fields of a tracker's record that are numbers


def read_tracking(directory: Path) -> dict:
    """What ``tracking.json`` records per tracker; a missing, oversized or malformed file records nothing
    (a new tracked run is started, and the file rewritten)."""
    from .userfiles import UserFileError, read_user_file

    try:
        values = json.loads(read_user_file(directory / TRACKING_FILE, MAX_TRACKING_BYTES, TRACKING_FILE))
    except (UserFileError, ValueError, RecursionError):  # missing, a FIFO, too large, not JSON
        return {}
    if not isinstance(values, dict):
        return {}

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31

    def fits(key, value) -> bool:  # counts are counts, everything else a string
        return count(value) if key in COUNTS else isinstance(value, str)

    return {k: v for k, v in values.items()
            if k in TRACKERS and isinstance(v, dict) and all(fits(key, x) for key, x in v.items())}


def write_tracking(directory: Path, records: dict) -> None:
    from .userfiles import atomic_write

    atomic_write(directory / TRACKING_FILE, json.dumps(records, indent=1))


class TrackedRuns:
    """A run's trackers, and ``tracking.json`` (what each continues, the last round each was sent, and whether it
    was sent the run's end). A tracker that fails mid-run is left behind with one warning; what it missed is sent
    when the run is resumed, finished or not."""

    def __init__(self, trackers: list[Tracker], records: dict, path: Path):
        self.trackers, self.records, self.path = trackers, records, path

    def callbacks(self) -> list:
        return [cb for tracker in self.trackers for cb in tracker.callbacks()]

    def start_round(self, round_: int) -> None:
        for tracker in self.trackers:
            tracker.round = round_

    def log_rounds(self, history: list[RoundRecord], classes: list[str]) -> None:
        """Send each committed round a tracker has not had yet: after a kill between a commit and its sending,
        or a tracker that stopped answering, the resumed run sends the rounds it missed, once."""
        for tracker in self.trackers:
            record = self.records[tracker.kind]
            for row in history:
                if row.round >= record.get("rounds_sent", 0):
                    if not tracker.guard(f"sending round {row.round}", tracker.log_round, row, classes):
                        break
                    record["rounds_sent"] = row.round + 1
        write_tracking(self.path, self.records)

    def log_batch(self, metrics: dict[str, float], step: int, files: list[Path]) -> None:
        """A labeling project's trained batch: its figures and files, then the tracked run is closed until the
        next batch."""
        for tracker in self.trackers:
            if tracker.guard("sending the batch", tracker.log_metrics, metrics, step):
                tracker.guard("sending the model", tracker.save_files, files)
            tracker.guard("closing the run", tracker.close)

    def finish(self, result: RunResult, run_path: Path) -> None:
        for tracker in self.trackers:
            if tracker.guard("sending the run's end", tracker.finish, result, run_path):
                self.records[tracker.kind]["ended"] = 1
        write_tracking(self.path, self.records)

    def fail(self, interrupted: bool) -> None:
        for tracker in self.trackers:
            if tracker.broken:  # it stopped answering: asking again would only wait for it
                continue
            try:
                tracker.fail(interrupted)
            except Exception:  # noqa: BLE001 - the run's own error is the one to report
                pass


def cannot_open(spec: TrackSpec, exc: Exception):
    """The one-line error for a tracker that would not open, in its own words (a password in it redacted)."""
    from .errors import TrackingError

    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no details"
    if spec.where:
        detail = detail.replace(spec.where, redact(spec.where))
    return TrackingError(f"--track {spec.shown}: cannot open it ({type(exc).__name__}: {detail})")


def open_trackers(plan: TrackingPlan, run_path: Path, name: str, config: dict, epochs_per_round: int,
                  echo=print) -> TrackedRuns:
    """Start (or, from ``tracking.json``, continue) a tracked run per spec and record them at once, so that a
    run killed before its first round still continues the same tracked runs."""
    home = plan.home or run_path
    recorded = read_tracking(run_path)
    trackers, records = [], dict(recorded)
    for spec in plan.specs:
        tracker = TRACKERS[spec.kind](spec, epochs_per_round, plan.parent_run_id)
        directory = tracker.directory(home, name, own_directory=plan.home is None)
        before = recorded.get(spec.kind)
        tracker.warn = echo
        try:
            opened = tracker.open(directory, config, before, name, plan.tags or {})
        except Exception as exc:  # noqa: BLE001 - each tracker fails its own way (URI, permissions, server)
            TrackedRuns(trackers, records, run_path).fail(interrupted=False)
            raise cannot_open(spec, exc) from None
        continued = before is not None and all(before.get(k) == v for k, v in opened.items())
        records[spec.kind] = {**opened, **({k: before[k] for k in COUNTS if k in before} if continued else {})}
        trackers.append(tracker)
        echo(tracker.where())
    write_tracking(run_path, records)
    return TrackedRuns(trackers, records, run_path)


def tracking_behind(run_path: Path, specs: list[TrackSpec], rounds: int) -> bool:
    """Whether a finished run of ``rounds`` rounds has a tracker (of ``specs``) that missed a round or its end
    (it stopped answering, or the run is tracked for the first time): then ``--resume`` sends what is missing."""
    recorded = read_tracking(run_path)
    return any(recorded.get(s.kind, {}).get("rounds_sent", 0) <= rounds or not recorded.get(s.kind, {}).get("ended")
               for s in specs)


def open_study_tracking(study, specs: list[TrackSpec], echo=print) -> "MlflowTracker | None":
    """With ``--track mlflow``: the study's parent run (continued when the study is resumed), whose children are
    its runs, tagged with strategy and seed. TensorBoard needs none: each run logs to ``tensorboard/RUN`` under
    the study, and TensorBoard shows the runs of that directory side by side."""
    spec = next((s for s in specs if s.kind == "mlflow"), None)
    if spec is None:
        return None
    tracker = MlflowTracker(spec, 0)
    tracker.warn = echo
    recorded = read_tracking(study.path)
    tags = {"study": str(study.path.resolve()), "strategies": ",".join(study.queries),
            "seeds": ",".join(str(s) for s in study.seeds)}
    try:
        record = tracker.open(study.path, {"queries": study.queries, "seeds": study.seeds,
                                           **study.settings()["base"]}, recorded.get("mlflow"),
                              study.path.resolve().name, tags)
    except Exception as exc:  # noqa: BLE001 - as open_trackers
        raise cannot_open(spec, exc) from None
    write_tracking(study.path, {**recorded, "mlflow": record})
    echo(tracker.where())
    return tracker
