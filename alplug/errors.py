"""The exceptions alplug raises on purpose.

The CLI turns every ``AlplugError`` into a one-line message; ``UsageError``
(bad options, bad input files) exits with code 2, anything else with 1.
"""
from __future__ import annotations

import difflib


class AlplugError(Exception):
    """Base class: a problem alplug understands and can explain in one line."""

    exit_code = 1


class UsageError(AlplugError):
    """The user asked for something that cannot work; nothing was changed."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A name (strategy, model, data set) that is not registered."""

    def __init__(self, kind: str, name: str, known, hint: str = ""):
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
        else:
            msg += f"; choose from: {', '.join(self.known)}"
        if hint:
            msg += f" {hint}"
        super().__init__(msg)


class DataError(UsageError):
    """A data set that is missing, unreadable or malformed."""


class UnreadableImageError(DataError):
    """Image files that could be read once and no longer can (truncated, replaced, deleted)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems  # (path, why)
        shown = "; ".join(f"{path} ({why})" for path, why in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        super().__init__(f"cannot read image {shown}{more}")


class MissingDependencyError(AlplugError):
    """An optional package is not installed; the message says how to get it."""

    exit_code = 2


class ClusterError(AlplugError):
    """A Ray or Dask cluster that cannot be reached or used; nothing was started."""


class TrackingError(UsageError):
    """A ``--track`` destination that cannot be opened or written; the message names it."""


class UserFileError(UsageError):
    """A user's file that cannot be read as one: missing, not a regular file, too large, unreadable."""


class PluginLoadError(AlplugError):
    """A registered entry whose module or object cannot be loaded, or does not follow its group's contract."""


class StrategyLoadError(PluginLoadError):
    """A registered strategy whose module or object cannot be loaded, or whose signature breaks the contract."""


class ModelLoadError(PluginLoadError):
    """A registered model whose module cannot be loaded, or which is not a ModelSpec or ModelFamily."""


class DataSourceLoadError(PluginLoadError):
    """A registered data source whose module cannot be loaded, or which is not a DataSource."""


class StrategyError(AlplugError):
    """A strategy cannot work with this model or pool, or returned something malformed."""


class ModelTrainingError(AlplugError):
    """A model that fails inside a training step (a plugin's module that breaks on real data)."""


class ModelWeightsError(UsageError):
    """Pretrained weights could not be found, downloaded or fitted."""


class CachedBackboneError(UsageError):
    """A cached self-supervised backbone file that cannot be read or does not fit the model."""
