"""Finding strategies by name in the ``alplug.query_strategies`` entry-point group.

Built-ins are registered in alplug's own ``pyproject.toml`` through the same
group as third-party plugins, so there is one lookup path for both. Finding
reads package metadata only; a strategy's module is imported when it is used.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from ..errors import UnknownNameError

GROUP = "alplug.query_strategies"


def normalize_name(name: str) -> str:
    """CLI names are lowercase words joined by '-'; '_' is accepted as an alias."""
    return name.strip().lower().replace("_", "-")


def available_strategies() -> dict[str, EntryPoint]:
    """Registered strategies by normalised name, sorted for a stable listing."""
    found = {normalize_name(ep.name): ep for ep in entry_points(group=GROUP)}
    return dict(sorted(found.items()))


def get_strategy(name: str):
    """The strategy function registered as ``name``."""
    known = available_strategies()
    key = normalize_name(name)
    if key not in known:
        raise UnknownNameError("query strategy", name, known, hint="(`alplug strategies` lists them)")
    return known[key].load()
