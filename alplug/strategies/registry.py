"""Finding and loading query strategies from the ``alplug.query_strategies`` entry points.

Discovery, precedence and clashes are ``alplug.plugins``' (shared with models and data sources); the
contract is ``contract.py``'s, options ``options.py``'s. This module joins them: a name, or
``FIRST+SECOND``, to a checked strategy with its options bound. Every strategy returned carries
``alplug_sources``, the distribution and version that supplied each part, which a run records.
"""
from __future__ import annotations

from ..errors import StrategyLoadError, UsageError  # noqa: F401 - StrategyLoadError re-exported
from ..plugins import (DISABLE_ENV, PluginConflictWarning, PluginEntry, conflict_message,
                       discover, lookup, normalize_name)
from .contract import checked, signature_problems
from .options import bind_options

GROUP = "alplug.query_strategies"

# Strategies shipped as optional plugins, and the extra that installs each.
OPTIONAL_STRATEGIES = {
    **dict.fromkeys(["bald", "batchbald", "mc-entropy", "variation-ratios", "mc-least-confidence",
                     "mc-margin", "mc-ratio"], "bald"),
    **dict.fromkeys(["outlier", "cluster-outlier"], "outlier"),
    **dict.fromkeys(["kmeans-boundary", "coreset", "badge"], "kmeans"),
    **dict.fromkeys(["typiclust", "probcover", "maxherding", "dal", "falcun", "dropquery", "clue", "contrastive-al"],
                    "skactiveml"),
}




class StrategyEntry(PluginEntry):
    error = StrategyLoadError

    def check(self, fn) -> str | None:
        problems = signature_problems(fn)
        return f"does not follow the strategy contract: {'; '.join(problems)}" if problems else None


def discover_strategies() -> tuple[dict[str, StrategyEntry], dict[str, list[StrategyEntry]]]:
    """(the strategy used for each name, sorted; the entries each clashing name passed over)."""
    return discover(GROUP, "strategy", StrategyEntry)


def available_strategies() -> dict[str, StrategyEntry]:
    """Registered strategies by normalised name, sorted; nothing is imported."""
    return discover_strategies()[0]


def _entry(name: str) -> StrategyEntry:
    return lookup(discover_strategies(), normalize_name(name), name, "query strategy", "alplug strategies",
                  OPTIONAL_STRATEGIES)


def get_strategy(name: str):
    """The strategy registered as ``name``, with its output checked on every call."""
    entry = _entry(name)
    return checked(entry.load(), entry.name, entry.origin)


def resolve_query(query: str, options: dict | None = None):
    """The strategy a ``--query`` value names, options bound and checked.

    ``a+b`` pre-selects ``prefilter`` x n candidates with ``a`` and picks n of
    them with ``b``. Options for one part are written ``a.key=value``;
    ``prefilter`` goes to the combination. ``a@N,b`` is a schedule (``schedules``):
    ``a`` until N images are labeled, then ``b``; each stage may be a combination.
    """
    from .mixed import prefiltered

    options = dict(options or {})
    if "," in query:
        return _resolve_schedule(query, options)
    parts = [p for p in query.split("+")]
    if len(parts) == 1:
        entry = _entry(query)
        own = {}
        for key, value in options.items():
            prefix, dot, rest = key.partition(".")
            if dot and normalize_name(prefix) != entry.name:
                raise UsageError(f"--query-opt {key}: the prefix names another strategy than {entry.name!r}")
            own[rest if dot else key] = value
        return checked(bind_options(entry.load(), entry.name, own), entry.name, entry.origin)
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise UsageError(f"--query {query!r}: combine exactly two strategies as first+second")
    entries = [_entry(p) for p in parts]
    per_part = {e.name: {} for e in entries}
    combo = {}
    for key, value in options.items():
        prefix, dot, rest = key.partition(".")
        if dot and normalize_name(prefix) in per_part:
            per_part[normalize_name(prefix)][rest] = value
        elif key == "prefilter":
            combo[key] = value
        else:
            raise UsageError(f"--query-opt {key}: for {query!r} write prefilter=M or "
                             f"{entries[0].name}.KEY=VALUE / {entries[1].name}.KEY=VALUE")
    first, second = (checked(bind_options(e.load(), e.name, per_part[e.name]), e.name, e.origin) for e in entries)
    name = f"{entries[0].name}+{entries[1].name}"
    combined = bind_options(prefiltered(first, second), name, combo)
    combined.alplug_sources = {**first.alplug_sources, **second.alplug_sources}
    return checked(combined, name, "alplug combination")


def _resolve_schedule(query: str, options: dict):
    """``a@N,b``: each stage resolved like a ``--query`` of its own; an option goes to the stages it names."""
    from .schedules import parse_schedule, scheduled

    stages = parse_schedule(query)
    strategies, used = {}, set()
    for name, _ in stages:
        if name in strategies:
            continue
        names = {normalize_name(part) for part in name.split("+")}
        own = {key: value for key, value in options.items()
               if normalize_name(key.partition(".")[0]) in names and "." in key
               or (key == "prefilter" and "+" in name)}
        used.update(own)
        strategies[name] = resolve_query(name, own)
    stray = [key for key in options if key not in used]
    if stray:
        raise UsageError(f"--query-opt {stray[0]}: for the schedule {query!r} write STRATEGY.KEY=VALUE, naming a "
                         "strategy of one of its stages")
    fn = scheduled(stages, strategies)
    fn.alplug_sources = {k: v for s in strategies.values() for k, v in s.alplug_sources.items()}
    return checked(fn, query, "alplug schedule")


__all__ = ["DISABLE_ENV", "GROUP", "OPTIONAL_STRATEGIES", "PluginConflictWarning", "StrategyEntry", "StrategyLoadError",
           "available_strategies", "conflict_message", "discover_strategies", "get_strategy", "resolve_query"]
