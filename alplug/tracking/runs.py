"""A run's tracked runs, kept across rounds, kills and ``--resume``: which trackers a run has
(``TrackingPlan``), what ``tracking.json`` records to continue them, sending each committed round once
(``TrackedRuns``), and a study's parent run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .destinations import TrackSpec, redact
from .trackers import TRACKERS, MlflowTracker, Tracker

if TYPE_CHECKING:
    from ..records import RoundRecord, RunResult

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
    from ..userfiles import UserFileError, read_user_file

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
    from ..userfiles import atomic_write

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
    from ..errors import TrackingError

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

