"""A strategy study: every (strategy, seed) pair as a normal run directory under one study directory.

Runs with the same seed share their splits and initial labeled set (both depend
only on the data set and the seed), so strategies differ only in what they
query. Re-running the same study resumes it: finished runs are kept,
interrupted ones continue from their last committed round, failed ones are
retried. Parallelism is joblib's, on this machine or through Ray's or Dask's
joblib backend (``alplug/backends.py``); no scheduler of our own. On a cluster
the study directory must be on a file system every worker mounts at the same path.
"""
from __future__ import annotations

import dataclasses
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .backends import LOCAL, Backend
from .config import RunConfig, check_settings
from .errors import UsageError
from .rundir import RunDirectory
from .userfiles import atomic_write


@dataclass(frozen=True)
class StudyRun:
    query: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.query.replace('+', '_then_')}-s{self.seed}"


def _worker() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunOutcome:
    run: StudyRun
    status: str  # "done" (already finished), "finished", "failed"
    error: str = ""
    worker: str = dataclasses.field(default_factory=_worker)  # host:pid that ran it
    notes: list = dataclasses.field(default_factory=list)  # what the run said worth repeating (a reused pretraining)


MAX_STUDY_TOML_BYTES = 1024 * 1024


class Study:
    """The study directory: ``study.toml`` (the settings), ``runs/NAME/`` (run directories), ``report/``."""

    def __init__(self, path: str | Path, queries: list[str], seeds: list[int], base: RunConfig):
        self.path, self.queries, self.seeds, self.base = Path(path), queries, seeds, base

    @property
    def runs(self) -> list[StudyRun]:
        return [StudyRun(q, s) for s in self.seeds for q in self.queries]

    def run_dir(self, run: StudyRun) -> Path:
        return self.path / "runs" / run.name

    def settings(self) -> dict:
        base = {k: v for k, v in self.base.to_dict().items() if k not in ("query", "seed") and v is not None}
        return {"queries": self.queries, "seeds": self.seeds, "base": base}

    @classmethod
    def open(cls, path: str | Path) -> "Study":
        """The study in ``path``, its ``study.toml`` read as untrusted (a one-line error says what is wrong)."""
        import tomllib

        from .userfiles import UserFileError, read_user_text

        path = Path(path)
        marker = path / "study.toml"
        if not os.path.lexists(marker):
            raise UsageError(f"{path} is not an alplug study (no study.toml); pass the directory "
                             "`alplug compare --out` wrote")
        try:
            values = tomllib.loads(read_user_text(marker, MAX_STUDY_TOML_BYTES, str(marker)))
        except (UserFileError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise UsageError(f"{marker} is damaged ({exc}); restore it from a copy") from None
        queries, seeds, base = values.get("queries"), values.get("seeds"), values.get("base")
        problem = ("queries is not a list of strategy names" if not isinstance(queries, list) or not queries
                   or not all(isinstance(q, str) and q.strip() for q in queries) or len(set(queries)) != len(queries)
                   else "seeds is not a list of seeds" if not isinstance(seeds, list) or not seeds
                   or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)
                   or len(set(seeds)) != len(seeds)
                   else "base is not a table of settings" if not isinstance(base, dict) else None)
        if problem:
            raise UsageError(f"{marker} is damaged ({problem}); restore it from a copy")
        try:
            config = RunConfig(**check_settings(base, source=str(marker)))
        except UsageError as exc:
            raise UsageError(f"{marker} is damaged ({exc}); restore it from a copy") from None
        return cls(path, queries, seeds, config)

    def prepare(self) -> None:
        """Create the study directory, or check that an existing one was made with the same settings."""
        import tomli_w

        marker = self.path / "study.toml"
        if marker.exists():
            existing = Study.open(self.path)
            diffs = [f"{k}: {existing.settings()[k]!r} != {self.settings()[k]!r}"
                     for k in ("queries", "seeds") if existing.settings()[k] != self.settings()[k]]
            diffs += existing.base.differences(dataclasses.replace(self.base, query=existing.base.query,
                                                                   seed=existing.base.seed))
            if diffs:
                raise UsageError(f"{self.path} holds a study made with other settings ({'; '.join(diffs)}); "
                                 "repeat its command to resume it, or choose another --out")
            return
        if self.path.exists() and any(self.path.iterdir()):
            raise UsageError(f"{self.path} exists and is not an alplug study; choose another --out")
        (self.path / "runs").mkdir(parents=True, exist_ok=True)
        atomic_write(marker, tomli_w.dumps(self.settings()))

    def pending(self) -> list[StudyRun]:
        return [r for r in self.runs if not (self.run_dir(r) / "result.json").is_file()]


@contextmanager
def _torch_threads(threads: int | None):
    """``threads`` torch threads for one run, then the caller's count again: with ``--jobs 1`` joblib runs the
    run in the calling process, whose thread count (and so its float sums) is not the study's to change."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute_run(study_path: str, query: str, seed: int, base: dict, threads: int | None, track: tuple = (),
                parent_run_id: str | None = None) -> RunOutcome:
    """Run (or resume) one run of a study; never raises, so one failure cannot stop the others.
    ``track``: ``--track`` values, each run tracked under the study's directory (and MLflow parent run)."""
    run = StudyRun(query, seed)
    path = Path(study_path) / "runs" / run.name
    if not (Path(study_path) / "study.toml").is_file():
        return RunOutcome(run, "failed", f"the study directory {study_path} is not visible on this worker; "
                                         "put it on a file system every worker mounts at the same path")
    try:
        with _torch_threads(threads):  # locally jobs x threads = cores; cluster workers keep their own setting
            from .loop import ActiveLearningRun

            if (path / "result.json").is_file():
                return RunOutcome(run, "done")
            from .strategies.options import options_for

            config = RunConfig(**check_settings(base))
            config = dataclasses.replace(config, query=query, seed=seed,
                                         query_options=options_for(query, config.query_options))
            run_dir = RunDirectory.open(path) if (path / "config.toml").is_file() else RunDirectory.create(path, config)
            (path / "error.txt").unlink(missing_ok=True)
            notes = []

            def keep_notes(line: str) -> None:  # a run's own progress lines would interleave; these matter to a study
                if line.startswith("self-supervised backbone:"):
                    notes.append(line)

            tracking = None
            if track:
                from .tracking import TrackingPlan, parse_track

                tracking = TrackingPlan(parse_track(track), home=Path(study_path), parent_run_id=parent_run_id,
                                        tags={"strategy": query, "seed": seed})
            ActiveLearningRun(config, echo=keep_notes, tracking=tracking, measure_stop=True).run(run_dir)
            return RunOutcome(run, "finished", notes=notes)
    except BaseException as exc:  # report it with the run; the study goes on with the others
        if isinstance(exc, KeyboardInterrupt):
            raise
        if path.is_dir():
            atomic_write(path / "error.txt", traceback.format_exc())
        return RunOutcome(run, "failed", f"{type(exc).__name__}: {exc}")


def run_study(study: Study, jobs: int | None = None, echo=print, backend: Backend | None = None,
              threads: int | None = None, track=(), parent_run_id: str | None = None) -> list[RunOutcome]:
    """Run every pending run of ``study`` with joblib's active backend (``jobs`` at a time, or the
    backend's default) and ``threads`` torch threads each; returns one outcome per run.

    The thread count changes the order of float reductions, so the same seed gives the same queried
    images across backends and machines only with the same ``threads``."""
    backend = backend or LOCAL
    todo = study.pending()
    done = [RunOutcome(r, "done") for r in study.runs if r not in todo]
    if not todo:
        return done
    jobs = jobs or backend.n_jobs
    if threads is None and backend.threads_per_run:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    base = {k: v for k, v in study.base.to_dict().items() if v is not None}
    at_a_time = "as many at a time as it has cores" if jobs == -1 else f"{jobs} at a time"
    echo(f"alplug compare: {len(todo)} of {len(study.runs)} runs to do on {backend.where}, {at_a_time}"
         + (f" ({threads} torch thread(s) each)" if threads else ""))
    outcomes = []
    track = tuple(str(spec) for spec in track)
    calls = [(str(study.path), r.query, r.seed, base, threads, track, parent_run_id) for r in todo]
    for outcome in backend.map_unordered(execute_run, calls, jobs):
        outcomes.append(outcome)
        mark = "failed: " + outcome.error if outcome.status == "failed" else outcome.status
        echo(f"  [{len(outcomes)}/{len(todo)}] {outcome.run.name}: {mark} (on {outcome.worker})")
        for note in outcome.notes:
            echo(f"      {note}")
    return done + outcomes
