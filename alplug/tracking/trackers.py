"""The trackers ``--track`` knows, one ``Tracker`` subclass each (a subclass with a ``kind`` registers itself in
``TRACKERS``), and how a run's epochs, rounds, files and end reach them: skorch's ``TensorBoard`` and
``MlflowLogger`` callbacks for the epochs, offset by the round.
"""
from __future__ import annotations

import importlib.util
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MissingDependencyError, UsageError
from ..userfiles import printable
from .destinations import MLFLOW_HTTP_SETTINGS, TrackSpec, check_server, check_sqlite, redact, sqlite_path

if TYPE_CHECKING:
    from ..records import RoundRecord, RunResult

TRACKERS: dict[str, type[Tracker]] = {}  # --track KIND -> its Tracker class (each subclass registers itself)
EXPERIMENT = "alplug"  # MLflow experiment of runs and studies (MLFLOW_EXPERIMENT_NAME overrides it)
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value


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

