"""A run's records, typed: the round record the loop writes into state.json after every round (what reports,
stopping rules, trackers and the labeling rate read back), and the run's result (result.json). history.csv is a
flat copy of the round records for people and other tools; nothing in alplug reads it.

A record from a file is hostile input: ``from_dict`` checks every field's type (and that accuracies are
accuracies) and says what is wrong in one line.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from .csvcells import csv_text
from .stopping import measuring_rules

MAX_TEXT = 1000  # a strategy's text, a stop reason
MAX_PATH = 4096  # an item of a list of texts: a class name, a skipped file's path
ACCURACIES = ("val1_acc", "val2_acc", "test_acc", "test_accuracy")


@dataclass(kw_only=True)
class RoundRecord:
    """One round of a run (round 0: the initial set)."""

    round: int
    labels: int                        # images labeled so far, the initial set included
    queried: int = 0                   # images labeled in this round
    train_seconds: float = 0.0
    query_seconds: float = 0.0
    train_loss: float | None = None    # skorch's last epoch
    val1_acc: float | None = None      # watches training (early stopping)
    val1_loss: float | None = None
    val2_acc: float                    # scores rounds: patience, goals and stopping read it
    val2_loss: float | None = None
    queried_ids: list[int] = field(default_factory=list)
    queried_classes: list[int] = field(default_factory=list)
    strategy: str = ""                 # the strategy that chose the round's images; round 0: how the initial set was
    test_acc: float | None = None      # for studies' curves only: no decision of the run reads it
    stop: dict[str, float | None] = field(default_factory=dict)  # each measuring stopping rule's figure

    def to_dict(self) -> dict:
        """The record as state.json holds it: the stopping rules' figures as ``stop_<rule>`` keys."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "stop"}
        values = {k: list(v) if isinstance(v, list) else v for k, v in values.items()}
        return {**values, **{f"stop_{name}": self.stop.get(name) for name in measuring_rules()}}

    @classmethod
    def from_dict(cls, row) -> "RoundRecord":
        """A record from state.json, checked; ``ValueError`` says what is wrong. Keys of other versions are left
        out, and fields an older alplug did not write take their defaults."""
        if not isinstance(row, dict):
            raise ValueError("is not an object")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "stop":
                continue
            if f.name not in row:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"has no {f.name}")
                continue
            values[f.name] = _checked(f.name, row[f.name], _FIELD_TYPES[f.name])
        values["stop"] = {name: _checked(f"stop_{name}", row.get(f"stop_{name}"), float | None)
                          for name in measuring_rules()}
        return cls(**values)

    def numbers(self) -> dict[str, float]:
        """Every figure of the round that is a number and was measured (what trackers plot), round excluded."""
        out = {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)
               if f.name != "round" and _FIELD_TYPES[f.name] in (int, float, float | None)
               and getattr(self, f.name) is not None}
        out.update({f"stop_{name}": float(v) for name, v in self.stop.items() if v is not None})
        return out


_FIELD_TYPES = typing.get_type_hints(RoundRecord)


@dataclass(kw_only=True)
class RunResult:
    """A finished run (result.json). Fields an older alplug did not write take their defaults when read."""

    test_accuracy: float
    test_loss: float | None = None
    test_size: int = 0
    per_class_accuracy: dict = field(default_factory=dict)  # class name -> accuracy on its test images
    labels: int = 0                    # images labeled, the initial set included
    rounds: int = 0
    stop_reason: str | None = None
    classes: list[str]
    split_sizes: dict = field(default_factory=dict)         # split -> images
    skipped_files: list[str] = field(default_factory=list)  # unreadable files the data source left out
    device: str = ""
    config: dict = field(default_factory=dict)              # RunConfig.to_dict()
    strategy_sources: dict = field(default_factory=dict)    # strategy -> "distribution version"
    ssl_backbone: dict | None = None   # the --ssl backbone the run started every fit from: key and path

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values) -> "RunResult":
        """A result from result.json, checked; ``ValueError`` says what is wrong. Keys of other versions are left
        out."""
        if not isinstance(values, dict):
            raise ValueError("is not an object")
        hints = typing.get_type_hints(cls)
        checked = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                checked[f.name] = _checked(f.name, values[f.name], hints[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"has no {f.name}")
        if len(checked["classes"]) < 2:
            raise ValueError("names fewer than two classes")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in checked.get("split_sizes", {}).values()):
            raise ValueError("has split_sizes that are not whole numbers")
        return cls(**checked)


def _checked(name: str, value, kind):
    """``value`` if it is of ``kind`` (a whole number >= 0 for ints; accuracies in [0, 1]), else ValueError."""
    if value is None and kind in (float | None, str | None, dict | None):
        return None
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ValueError(f"has {name} = {value!r:.60}, not a whole number >= 0")
    if kind in (float, float | None):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if name in ACCURACIES and not 0 <= value <= 1:
                raise ValueError(f"has {name} = {value!r}, not an accuracy in [0, 1]")
            return float(value)
        raise ValueError(f"has {name} = {value!r:.60}, not a number")
    if kind in (str, str | None):
        if isinstance(value, str) and len(value) <= MAX_TEXT:
            return value
        raise ValueError(f"has a {name} that is not a short text")
    if kind in (dict, dict | None):
        if isinstance(value, dict):
            return value
        raise ValueError(f"has a {name} that is not an object")
    if kind == list[str]:
        if isinstance(value, list) and all(isinstance(v, str) and len(v) <= MAX_PATH for v in value):
            return list(value)
        raise ValueError(f"has {name} that are not a list of short texts")
    if kind == list[int]:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                           for v in value):
            return list(value)
        raise ValueError(f"has {name} that are not a list of whole numbers >= 0")
    raise TypeError(f"no check for {kind}")  # a field added without one: caught by the tests


def history_columns() -> list[str]:
    """history.csv's columns: the record's fields in order, then one ``stop_<rule>`` per measuring rule."""
    return [f.name for f in dataclasses.fields(RoundRecord) if f.name != "stop"] + \
        [f"stop_{name}" for name in measuring_rules()]


def history_csv(records: list[RoundRecord]) -> str:
    """history.csv's text: one row per record, lists as space-separated ids, every cell neutralised (the strategy
    column holds the user's --query text)."""
    return csv_text(history_columns(), ([" ".join(map(str, v)) if isinstance(v, list) else v
                                         for v in record.to_dict().values()] for record in records))
