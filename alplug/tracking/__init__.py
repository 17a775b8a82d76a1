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

The package: ``destinations`` (what ``--track`` names and the checks that refuse it early), ``trackers`` (one
``Tracker`` subclass per tracker, registered in ``TRACKERS``), ``runs`` (the tracked runs of a run, a study or a
project, and ``tracking.json``).
"""
from __future__ import annotations

from .destinations import (CONNECT_TIMEOUT_S, MLFLOW_HTTP_SETTINGS, TrackSpec, check_server, check_sqlite, redact,
                           sqlite_path)
from .runs import (COUNTS, MAX_TRACKING_BYTES, TRACKING_FILE, TrackedRuns, TrackingPlan, cannot_open, open_study_tracking,
                   open_trackers, read_tracking, tracking_behind, write_tracking)
from .trackers import (EXPERIMENT, RUN_FILES, TRACKERS, MlflowTracker, TensorBoardTracker, Tracker, flat_params,
                       log_params, mlflow_client, parse_track, track_metavar)

__all__ = ["CONNECT_TIMEOUT_S", "COUNTS", "EXPERIMENT", "MAX_TRACKING_BYTES", "MLFLOW_HTTP_SETTINGS", "RUN_FILES",
           "TRACKERS", "TRACKING_FILE", "MlflowTracker", "TensorBoardTracker", "TrackSpec", "TrackedRuns", "Tracker",
           "TrackingPlan", "cannot_open", "check_server", "check_sqlite", "flat_params", "log_params", "mlflow_client",
           "open_study_tracking", "open_trackers", "parse_track", "read_tracking", "redact", "sqlite_path",
           "track_metavar", "tracking_behind", "write_tracking"]
