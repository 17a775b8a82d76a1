"""Finding plugins: the entry-point groups through which strategies, models and data sources are registered.

alplug's own built-ins are registered in its ``pyproject.toml`` through the same groups as third-party
packages, so there is one lookup path for everything. Finding reads package metadata only (sorted, for a
stable listing); an entry's object is imported when it is used, and one that fails to import is reported
with its distribution without affecting any other.

A name registered twice never depends on discovery order and is never picked silently: alplug's own entry wins
over any plugin's (with a ``PluginConflictWarning`` when the name is used); a name that two third-party
distributions register is refused, naming both, until the user picks one as ``DISTRIBUTION/NAME`` (or hides one
with ``ALPLUG_DISABLE_PLUGINS``). ``DISTRIBUTION/NAME`` reaches any registered entry, a passed-over one too.
Every clash is listed by the listing commands.

``ALPLUG_DISABLE_PLUGINS=1`` hides every entry not shipped in alplug itself; a comma-separated list of
distribution names hides just those.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from .errors import PluginLoadError, UnknownNameError, UsageError

CORE_DISTRIBUTION = "alplug"
DISABLE_ENV = "ALPLUG_DISABLE_PLUGINS"




class PluginConflictWarning(UserWarning):
    """Two distributions register the same name; the message says which one is used."""


def normalize_name(name: str) -> str:
    """CLI names are lowercase words joined by '-'; '_' is accepted as an alias."""
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class PluginEntry:
    """One registered name of one group (``kind`` is what the CLI calls it: 'strategy', 'model', ...).

    A group's subclass sets ``error`` (the exception its load failures raise) and ``check`` (what is wrong
    with a loaded object under the group's contract, or None)."""

    kind: str
    name: str
    entry_point: EntryPoint

    error = PluginLoadError

    def check(self, obj) -> str | None:
        return None

    @property
    def distribution(self) -> str:
        dist = self.entry_point.dist
        return dist.name if dist else "?"

    @property
    def version(self) -> str:
        dist = self.entry_point.dist
        return dist.version if dist else "?"

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}"

    @property
    def builtin(self) -> bool:
        return normalize_name(self.distribution) == CORE_DISTRIBUTION

    def load(self):
        """The registered object, checked against the group's contract; any failure names the distribution."""
        try:
            obj = self.entry_point.load()
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # a plugin's sys.exit() at import too
            raise self.error(f"{self.kind} {self.name!r} from {self.origin} failed to load "
                             f"({type(exc).__name__}: {exc}); reinstall or update {self.distribution}, "
                             f"or hide it with {DISABLE_ENV}={self.distribution}") from exc
        problem = self.check(obj)
        if problem:
            raise self.error(f"{self.kind} {self.name!r} from {self.origin} {problem}")
        return obj


def _disabled() -> set[str] | None:
    value = os.environ.get(DISABLE_ENV, "").strip()
    if not value or value.lower() in ("0", "false", "no"):
        return set()
    if value.lower() in ("1", "true", "yes", "all"):
        return None  # every distribution but alplug's own
    return {normalize_name(v) for v in value.split(",") if v.strip()}


def _precedence(entry: PluginEntry) -> tuple:
    """alplug's own entries first, then plugins by distribution name: the same winner on every machine."""
    return (not entry.builtin, normalize_name(entry.distribution), entry.entry_point.value)


def exact_name(name: str) -> str:
    """Model and data-source names stay as registered (``squeezenet1_1``, ``vit_tiny_patch16_224``)."""
    return name.strip()


def discover(group: str, kind: str, entry_class=PluginEntry, normalize=normalize_name) -> tuple[dict, dict]:
    """(the entry used for each name, sorted by name; the entries each clashing name passed over).
    Reads metadata only. ``normalize`` maps a registered or asked-for name to its key."""
    disabled = _disabled()
    by_name: dict[str, list] = {}
    for ep in entry_points(group=group):
        dist = normalize_name(ep.dist.name) if ep.dist else "?"
        if dist != CORE_DISTRIBUTION and (disabled is None or dist in disabled):
            continue
        name = normalize(ep.name)
        if all(e.entry_point != ep for e in by_name.get(name, [])):  # one distribution seen twice on sys.path
            by_name.setdefault(name, []).append(entry_class(kind, name, ep))
    used, passed_over = {}, {}
    for name, entries in sorted(by_name.items()):
        entries.sort(key=_precedence)
        used[name] = entries[0]
        if len(entries) > 1:
            passed_over[name] = entries[1:]
    return used, passed_over


QUALIFIER = "/"  # DISTRIBUTION/NAME picks one distribution's entry


def qualified(entry: PluginEntry) -> str:
    return f"{normalize_name(entry.distribution)}{QUALIFIER}{entry.name}"


def ambiguous(entry: PluginEntry, passed_over: dict) -> bool:
    """Whether a name is registered by several third-party distributions (none of them alplug itself)."""
    return not entry.builtin and entry.name in passed_over


def conflict_message(entry: PluginEntry, others: list[PluginEntry]) -> str:
    registered = f"{entry.kind} name {entry.name!r} is registered by {entry.origin} and by " \
                 f"{', '.join(o.origin for o in others)}"
    if entry.builtin:
        return (f"{registered}; alplug's own is used, the others' as "
                f"{' or '.join(qualified(o) for o in others)}")
    return (f"{registered}; neither is used by that name: choose one as "
            f"{' or '.join(qualified(e) for e in [entry, *others])} (or hide one with {DISABLE_ENV}=DISTRIBUTION)")


def lookup(discovered: tuple[dict, dict], key: str, asked: str, what: str, listing: str,
           optional: dict[str, str] | None = None) -> PluginEntry:
    """The entry a group registers as ``key`` (``asked`` as the user wrote it). A name an optional plugin
    would supply says which extra to install, an unknown one offers close matches, and a clash is warned
    about, for every group alike."""
    known, passed_over = discovered
    if QUALIFIER in key:
        return _qualified_lookup(discovered, key, asked, what, listing)
    if key in known and ambiguous(known[key], passed_over):
        raise UsageError(conflict_message(known[key], passed_over[key]))
    if key not in known:
        if optional and key in optional:
            extra = optional[key]
            raise UsageError(f"{what} {key!r} is not installed; install it with pip install \"alplug[{extra}]\" "
                             f"(or uv sync --extra {extra})")
        raise UnknownNameError(what, asked, known, hint=f"(`{listing}` lists them)")
    warn_if_conflicting(known[key], passed_over)
    return known[key]


def _qualified_lookup(discovered: tuple[dict, dict], key: str, asked: str, what: str, listing: str) -> PluginEntry:
    """``DISTRIBUTION/NAME``: that distribution's entry for NAME, whether it won the name or was passed over."""
    known, passed_over = discovered
    dist, _, name = key.partition(QUALIFIER)
    if name not in known:
        raise UnknownNameError(what, name, known, hint=f"(`{listing}` lists them)")
    entries = [known[name], *passed_over.get(name, [])]
    for entry in entries:
        if normalize_name(entry.distribution) == normalize_name(dist):
            return entry
    raise UsageError(f"{what} {asked!r}: {dist!r} does not register {name!r}; it is registered by "
                     f"{', '.join(qualified(e) for e in entries)}")


def warn_if_conflicting(entry: PluginEntry, passed_over: dict) -> None:
    if entry.name in passed_over:
        warnings.warn(conflict_message(entry, passed_over[entry.name]), PluginConflictWarning, stacklevel=5)
