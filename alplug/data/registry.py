"""Finding data sources: the ``alplug.datasets`` entry points (alplug's own and any plugin's).

``--dataset NAME`` or ``--dataset NAME:ARGUMENT`` (``folder:~/photos``, ``npz:arrays.npz``). Discovery,
precedence and clashes are ``alplug.plugins``'; this module adds the contract check on what a loader returns.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError, DataSourceLoadError, UsageError  # noqa: F401 - re-exported
from ..plugins import PluginEntry, discover, exact_name, lookup
from .contract import DataSet, DataSource, dataset_problems

GROUP = "alplug.datasets"




class DataSourceEntry(PluginEntry):
    error = DataSourceLoadError

    def check(self, obj) -> str | None:
        if isinstance(obj, DataSource):
            return None
        return (f"is a {type(obj).__name__}, not an alplug.data.DataSource "
                "(docs/data.md#writing-a-data-source-plugin)")


def discover_datasets() -> tuple[dict[str, DataSourceEntry], dict[str, list[DataSourceEntry]]]:
    """(the entry used for each name, sorted; the entries each clashing name passed over)."""
    return discover(GROUP, "data source", DataSourceEntry, normalize=exact_name)


def available_datasets() -> dict[str, DataSourceEntry]:
    return discover_datasets()[0]


def resolve_dataset(spec: str) -> tuple[DataSourceEntry, DataSource, str | None]:
    """(entry, source, argument) for a ``--dataset`` value, checked for its form."""
    name, sep, argument = spec.partition(":")
    key = exact_name(name)
    entry = lookup(discover_datasets(), key, name, "data set", "alplug datasets")
    source = entry.load()
    if source.argument and not (sep and argument.strip()):
        raise UsageError(f"--dataset {spec!r}: write {source.usage}")
    if sep and not source.argument:
        raise UsageError(f"--dataset {spec!r}: {key} takes nothing after a colon; write --dataset {key}")
    return entry, source, (argument if sep else None)


def load_dataset(spec: str, data_dir: str | Path | None = None, *, image_size: int | None = None,
                 download: bool = True) -> DataSet:
    """Load a data set by its ``--dataset`` value: ``digits``, a torchvision set, ``folder:PATH``, ``npz:PATH``
    or any plugin's; what the loader returns is checked against the contract."""
    entry, source, argument = resolve_dataset(spec)
    try:
        data = source.load(argument, data_dir=data_dir, image_size=image_size, download=download)
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if entry.builtin:
            raise
        raise DataError(f"data source {entry.name!r} ({entry.origin}) failed: {type(exc).__name__}: {exc}") from exc
    problems = dataset_problems(data)
    if problems:
        raise DataError(f"data source {entry.name!r} ({entry.origin}) returned a malformed data set: "
                        f"{'; '.join(problems)}")
    return data
