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
