"""The run directory: what one run writes, written so that a crash never leaves a half file.

Layout::

    config.toml          resolved settings (feed it back with --config), a --recipe's included
    recipe.txt           with --recipe: what the recipe chose and why
    state.json           the commit point: rounds done, labeled ids, round records
    history.csv          one row per round, rewritten from state.json at every commit
    checkpoint/          model (and optimizer) parameters after the last committed round
    result.json          final test metrics and the configuration (when the run ends)
    model.pt             final model parameters (a state dict of alplug's module)
    learning_curve.png   validation accuracy vs number of labels

Every file is written to a temporary name in the same directory and moved into
place with ``os.replace``, which is atomic on POSIX and Windows. ``state.json``
is replaced last, so whatever it says is backed by files already on disk.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .config import RunConfig
from .errors import UsageError
from .records import RoundRecord, RunResult, history_csv
from .userfiles import UserFileError, atomic_write, fsync_path, read_user_file

MAX_STATE_BYTES = 256 * 2**20


@dataclass
class RunState:
    """What ``state.json`` holds: the commit point of a run, written after every round."""

    round: int = 0                   # the last committed round (0: the initial set)
    labels: int = 0                  # images labeled so far, the initial set included
    queried: list[int] = field(default_factory=list)   # pool ids labeled after round 0, in order
    history: list[RoundRecord] = field(default_factory=list)  # one record per round
    best_val2: float | None = None
    stale_rounds: int = 0            # rounds since val-2 accuracy last improved (patience)
    finished: bool = False
    strategy_sources: dict = field(default_factory=dict)  # strategy name -> "distribution version"
    checkpoint: str | None = None    # path prefix of the last round's checkpoint, inside checkpoint/
    stop_reason: str | None = None
    ssl_backbone: dict | None = None  # the cached --ssl backbone the run starts every fit from: key and path
    initial: list[int] | None = None  # the initial set --initial picked (None: n_start per class from the seed)
    stop_predictions: list[int] | None = None  # the last round's predictions on the stop set (kappa rule)

    def to_json(self) -> str:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.dumps({**values, "history": [record.to_dict() for record in self.history]}, indent=1)

    @classmethod
    def from_dict(cls, values: dict) -> "RunState":
        """The state of a checked ``state.json`` (``state_problem`` found nothing)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in names}  # keys of other versions are left out
        return cls(**{**values, "history": [RoundRecord.from_dict(row) for row in values.get("history", [])]})


def state_problem(state, run_path: Path) -> str | None:
    """What is wrong with the structure of a ``state.json`` (None when nothing is). The loop checks the ids
    against the run's splits; this needs only the file."""
    def whole(v, low=0):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if not isinstance(state, dict):
        return f"holds a JSON {type(state).__name__}, not an object"
    for key in ("round", "labels", "stale_rounds"):
        if not whole(state.get(key)):
            return f"has {key} = {state.get(key)!r}, not a whole number >= 0"
    queried = state.get("queried")
    if not isinstance(queried, list) or not all(whole(i) for i in queried):
        return "has queried ids that are not a list of whole numbers >= 0"
    if len(set(queried)) != len(queried):
        return "lists an image id in queried twice"
    initial = state.get("initial")
    if initial is not None and (not isinstance(initial, list) or not all(whole(i) for i in initial)
                                or len(set(initial)) != len(initial)):
        return "has initial ids that are not a list of distinct whole numbers >= 0"
    if initial is not None and set(initial) & set(queried):
        return "lists an image id both as initial and as queried"
    predictions = state.get("stop_predictions")
    if predictions is not None and (not isinstance(predictions, list) or not all(whole(p) for p in predictions)):
        return "has stop_predictions that are not a list of whole numbers >= 0"
    history = state.get("history")
    if not isinstance(history, list) or len(history) != state["round"] + 1:
        return f"has a history of {len(history) if isinstance(history, list) else 'no'} rounds for round " \
               f"{state['round']}"
    for row in history:
        try:
            RoundRecord.from_dict(row)
        except ValueError as exc:
            return f"has a history row that {exc}"
    if state.get("best_val2") is not None and not isinstance(state["best_val2"], (int, float)):
        return "has a best_val2 that is not a number"
    backbone = state.get("ssl_backbone")
    if backbone is not None and not (isinstance(backbone, dict) and isinstance(backbone.get("key"), str)):
        return "has an ssl_backbone that is not an object with a key"
    checkpoint = state.get("checkpoint")
    if not isinstance(checkpoint, str):
        return "names no checkpoint"
    where = (run_path / checkpoint).resolve()
    if not where.is_relative_to((run_path / "checkpoint").resolve()):
        return f"names a checkpoint outside the run directory's checkpoint/ ({checkpoint!r})"
    if not state.get("finished") and not Path(f"{where}.params.pt").is_file():
        return f"names the checkpoint {checkpoint}, whose file {checkpoint}.params.pt is missing"
    return None


class RunDirectory:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._pending: tuple[threading.Thread, list[BaseException]] | None = None

    # ---- creation and opening -------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: RunConfig, recipe_lines: list[str] = ()) -> "RunDirectory":
        """A new run directory; an existing non-empty one is never touched. ``recipe_lines``: what ``--recipe``
        chose and why, kept in ``recipe.txt``."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{path} already exists; continue it with `alplug run --resume {path}` "
                             "or choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        (path / "checkpoint").mkdir(exist_ok=True)
        atomic_write(path / "config.toml", config.to_toml())
        if recipe_lines:
            from .presets import record_choices

            record_choices(path, recipe_lines)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDirectory":
        """An existing run directory, its ``state.json`` checked now, before anything is run or written."""
        path = Path(path)
        if not (path / "config.toml").is_file():
            raise UsageError(f"{path} is not an alplug run directory (no config.toml); "
                             "pass the --out directory of an earlier run")
        run = cls(path)
        run.load_state()
        return run

    def config(self) -> RunConfig:
        return RunConfig.from_toml(self.path / "config.toml")

    # ---- state ----------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def load_state(self) -> RunState | None:
        """The last committed state, checked (``damaged()`` says what is wrong); None before round 0 ends."""
        if not self.state_file.exists():
            return None
        try:
            state = json.loads(read_user_file(self.state_file, MAX_STATE_BYTES, "it"))
        except (UserFileError, ValueError, RecursionError) as exc:  # a FIFO, too large, truncated, not JSON
            raise self.damaged(f"state.json cannot be read ({exc})") from None
        problem = state_problem(state, self.path)
        if problem:
            raise self.damaged(f"state.json {problem}")
        return RunState.from_dict(state)

    def damaged(self, what: str) -> UsageError:
        """The error for a run directory that cannot be resumed, with what to do about it."""
        return UsageError(f"{self.path} cannot be resumed: {what}. Nothing was changed; start the run again "
                          "with another --out, or restore the run directory from a copy")

    def commit(self, state: RunState, save_checkpoint) -> None:
        """Start writing the round's checkpoint, then history.csv, then state.json (the commit point).

        ``save_checkpoint(prefix)`` writes the model files under that path prefix.
        Checkpoints are named by round so that a crash before ``state.json`` is
        replaced leaves the previous round's checkpoint intact.

        A worker thread writes the files while the caller goes on, so a round does not
        wait for the disk (docs/run-directory.md). The caller must ``wait_for_commit()``
        before it changes what ``save_checkpoint`` reads (the weights) and before it
        ends. ``state`` is serialised now, so later changes to it do not leak into
        this commit.
        """
        self.wait_for_commit()  # commits land in order
        prefix = self.path / "checkpoint" / f"round-{state.round:04d}"
        state.checkpoint = str(prefix.relative_to(self.path))  # kept by later writes (mark_finished)
        history, state_json = history_csv(state.history), state.to_json()

        def write() -> None:
            save_checkpoint(prefix)
            # torch.save does not fsync: the checkpoint must be on disk before state.json names it
            for written in prefix.parent.glob(f"{prefix.name}.*"):
                fsync_path(written)
            fsync_path(prefix.parent)
            atomic_write(self.path / "history.csv", history)
            atomic_write(self.state_file, state_json)
            for old in (self.path / "checkpoint").glob("round-*"):
                if not old.name.startswith(prefix.name):
                    old.unlink(missing_ok=True)

        errors: list[BaseException] = []

        def write_in_background() -> None:
            try:
                write()
            except BaseException as exc:  # handed to wait_for_commit, in the caller's thread
                errors.append(exc)

        # One short-lived thread per commit: nothing lingers in processes that run many runs (studies).
        thread = threading.Thread(target=write_in_background, name="alplug-commit")
        thread.start()
        self._pending = (thread, errors)

    def wait_for_commit(self) -> None:
        """Block until a background commit is on disk; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            thread, errors = pending
            thread.join()
            if errors:
                raise errors[0]

    def checkpoint_prefix(self, state: RunState) -> Path:
        return self.path / state.checkpoint

    # ---- outputs --------------------------------------------------------------
    def write_result(self, result: RunResult) -> None:
        atomic_write(self.path / "result.json", json.dumps(result.to_dict(), indent=1))

    def publish_model(self, params_file: str | Path) -> None:
        """Make the state dict in ``params_file`` (a committed checkpoint) the run's ``model.pt``.

        A hard link costs nothing and survives the checkpoint's later removal; where the file
        system has no hard links, a copy. Either way model.pt is replaced atomically and flushed.
        """
        target = self.path / "model.pt"
        tmp = self.path / ".model.pt.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(params_file, tmp)
        except OSError:
            shutil.copyfile(params_file, tmp)
            fsync_path(tmp)
        os.replace(tmp, target)
        fsync_path(self.path)

    def mark_finished(self, state: RunState) -> None:
        atomic_write(self.state_file, dataclasses.replace(state, finished=True).to_json())

    def read_result(self) -> RunResult | None:
        """A finished run's result.json, checked (None: the run has not finished)."""
        path = self.path / "result.json"
        if not os.path.lexists(path):
            return None
        try:
            return RunResult.from_dict(json.loads(read_user_file(path, MAX_STATE_BYTES, "it")))
        except (UserFileError, ValueError, RecursionError) as exc:
            raise self.damaged(f"result.json cannot be read ({exc})") from None
