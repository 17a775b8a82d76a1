"""Finding, loading, configuring and checking strategies from the ``alplug.query_strategies`` entry points.

Built-ins are registered in alplug's own ``pyproject.toml`` through the same
group as third-party plugins, so there is one lookup path for both. Finding
reads package metadata only (sorted, for a stable listing); a strategy's module
is imported when it is used, and a plugin that fails to import is reported with
its distribution without affecting any other strategy.

``ALPLUG_DISABLE_PLUGINS=1`` hides every strategy not shipped in alplug itself;
a comma-separated list of distribution names hides just those.

A name registered twice never depends on discovery order: alplug's own strategy
wins over any plugin's, and between plugins the first distribution by name wins.
Every clash is listed by ``alplug strategies`` and named in a ``PluginConflictWarning``
when the name is used, and a run records which distribution supplied each strategy.
"""
from __future__ import annotations

import ast
import functools
import inspect
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

import numpy as np

from ..errors import AlplugError, UnknownNameError, UsageError
from .outputs import StrategyError

GROUP = "alplug.query_strategies"
CORE_DISTRIBUTION = "alplug"
DISABLE_ENV = "ALPLUG_DISABLE_PLUGINS"

# Strategies shipped as optional plugins, and the extra that installs each.
OPTIONAL_STRATEGIES = {
    **dict.fromkeys(["bald", "batchbald", "mc-entropy", "variation-ratios", "mc-least-confidence",
                     "mc-margin", "mc-ratio"], "bald"),
    **dict.fromkeys(["outlier", "cluster-outlier"], "outlier"),
    **dict.fromkeys(["kmeans-boundary", "coreset", "badge"], "kmeans"),
}


class StrategyLoadError(AlplugError):
    """A registered strategy whose module or object cannot be loaded."""


class PluginConflictWarning(UserWarning):
    """Two distributions register the same name; the message says which one is used."""


def normalize_name(name: str) -> str:
    """CLI names are lowercase words joined by '-'; '_' is accepted as an alias."""
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    entry_point: EntryPoint

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

    def load(self):
        """The strategy function; any import failure names the distribution at fault."""
        try:
            fn = self.entry_point.load()
        except Exception as exc:
            raise StrategyLoadError(f"strategy {self.name!r} from {self.origin} failed to load "
                                    f"({type(exc).__name__}: {exc}); reinstall or update {self.distribution}, "
                                    f"or hide it with {DISABLE_ENV}={self.distribution}") from exc
        problems = signature_problems(fn)
        if problems:
            raise StrategyLoadError(f"strategy {self.name!r} from {self.origin} does not follow the strategy "
                                    f"contract: {'; '.join(problems)}")
        return fn


def _disabled() -> set[str] | None:
    value = os.environ.get(DISABLE_ENV, "").strip()
    if not value or value.lower() in ("0", "false", "no"):
        return set()
    if value.lower() in ("1", "true", "yes", "all"):
        return None  # every distribution but alplug's own
    return {normalize_name(v) for v in value.split(",") if v.strip()}


def _precedence(entry: StrategyEntry) -> tuple:
    """alplug's own entries first, then plugins by distribution name: the same winner on every machine."""
    return (normalize_name(entry.distribution) != CORE_DISTRIBUTION, normalize_name(entry.distribution),
            entry.entry_point.value)


def discover_strategies() -> tuple[dict[str, StrategyEntry], dict[str, list[StrategyEntry]]]:
    """(the strategy used for each name, sorted; the entries each clashing name passed over). Reads
    metadata only."""
    disabled = _disabled()
    by_name: dict[str, list[StrategyEntry]] = {}
    for ep in entry_points(group=GROUP):
        dist = normalize_name(ep.dist.name) if ep.dist else "?"
        if dist != CORE_DISTRIBUTION and (disabled is None or dist in disabled):
            continue
        name = normalize_name(ep.name)
        entry = StrategyEntry(name, ep)
        if all(e.entry_point != ep for e in by_name.get(name, [])):  # one distribution seen twice on sys.path
            by_name.setdefault(name, []).append(entry)
    used, passed_over = {}, {}
    for name, entries in sorted(by_name.items()):
        entries.sort(key=_precedence)
        used[name] = entries[0]
        if len({e.distribution for e in entries}) > 1 or len(entries) > 1:
            passed_over[name] = entries[1:]
    return used, passed_over


def available_strategies() -> dict[str, StrategyEntry]:
    """Registered strategies by normalised name, sorted; nothing is imported."""
    return discover_strategies()[0]


def conflict_message(name: str, used: StrategyEntry, others: list[StrategyEntry]) -> str:
    return (f"strategy name {name!r} is registered by {used.origin} and by "
            f"{', '.join(o.origin for o in others)}; {used.origin} is used"
            + ("" if normalize_name(used.distribution) == CORE_DISTRIBUTION else
               f" (hide the others with {DISABLE_ENV}=DISTRIBUTION)")
            + "; rename the plugin's strategy to use it")


def _entry(name: str) -> StrategyEntry:
    known, conflicts = discover_strategies()
    key = normalize_name(name)
    if key in conflicts:
        warnings.warn(conflict_message(key, known[key], conflicts[key]), PluginConflictWarning, stacklevel=3)
    if key not in known:
        hint = "(`alplug strategies` lists them)"
        if key in OPTIONAL_STRATEGIES:
            extra = OPTIONAL_STRATEGIES[key]
            raise UsageError(f"query strategy {key!r} is not installed; install it with "
                             f"pip install \"alplug[{extra}]\" (or uv sync --extra {extra})")
        raise UnknownNameError("query strategy", name, known, hint=hint)
    return known[key]


def get_strategy(name: str):
    """The strategy registered as ``name``, with its output checked on every call."""
    entry = _entry(name)
    return checked(entry.load(), entry.name, entry.origin)


# ---- the contract --------------------------------------------------------------------------------


def signature_problems(fn) -> list[str]:
    """What is wrong with ``fn``'s signature, as the contract defines it (empty when it conforms)."""
    if not callable(fn):
        return [f"it is a {type(fn).__name__}, not a function"]
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ["its signature cannot be read"]
    problems = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 or positional[2].name != "n_instances":
        problems.append("it must take (learner, X_pool, n_instances=1, ...)")
    elif positional[2].default != 1:
        problems.append("n_instances must default to 1")
    names = {p.name: p for p in params}
    rs = names.get("random_state")
    if rs is None or rs.kind != rs.KEYWORD_ONLY or rs.default is not None:
        problems.append("it must take a keyword-only random_state=None")
    for p in params:
        if p.kind == p.KEYWORD_ONLY and p.default is p.empty:
            problems.append(f"option {p.name!r} needs a default")
    if len(positional) > 3:
        problems.append(f"options must be keyword-only ({', '.join(p.name for p in positional[3:])} are not)")
    return problems


def strategy_options(fn) -> dict:
    """The options a strategy takes (keyword-only, except random_state) with their defaults."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name != "random_state"}


def check_result(result, n_instances: int, n_pool: int, where: str):
    """Validate a strategy's return value; raise StrategyError naming ``where`` if it is malformed."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise StrategyError(f"{where} returned {type(result).__name__}; a strategy must return a tuple "
                            "(indices, scores) (bare indices make modAL call it twice and misread n_instances=2)")
    idx, scores = result
    idx = np.asarray(idx)
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise StrategyError(f"{where} returned indices of shape {idx.shape} and dtype {idx.dtype}; "
                            "they must be a 1-d integer array")
    if len(idx) != n_instances:
        raise StrategyError(f"{where} returned {len(idx)} indices for n_instances={n_instances}")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_pool):
        raise StrategyError(f"{where} returned indices outside the pool of {n_pool} (min {idx.min()}, "
                            f"max {idx.max()})")
    if len(np.unique(idx)) != len(idx):
        raise StrategyError(f"{where} returned duplicate indices")
    if np.shape(scores) != (n_instances,):
        raise StrategyError(f"{where} returned scores of shape {np.shape(scores)}; expected ({n_instances},)")
    return idx.astype(np.intp), np.asarray(scores, dtype=np.float64)


def checked(fn, name: str, origin: str = "?"):
    """``fn`` with its input and output checked, every error naming the strategy and its distribution."""
    where = f"strategy {name!r} ({origin})"

    @functools.wraps(fn)
    def strategy(learner, X_pool, n_instances=1, *, random_state=None, **options):
        try:
            n_pool = len(X_pool)
        except TypeError:
            raise UsageError(f"{where}: X_pool must be an array of samples, got {type(X_pool).__name__}") from None
        if isinstance(n_instances, bool) or not isinstance(n_instances, (int, np.integer)) or n_instances < 1:
            raise UsageError(f"{where}: n_instances = {n_instances!r}, must be an integer >= 1")
        if n_instances > n_pool:
            raise UsageError(f"{where}: n_instances = {n_instances} but the pool holds only {n_pool} samples")
        _check_pool_shape(learner, X_pool, where)
        if isinstance(X_pool, np.ndarray) and X_pool.ndim == 1 and X_pool.flags.writeable:
            # Pools of ids (alplug's loop and projects): writing into them would change what gets labeled.
            # Image arrays stay writable: torch warns on every read-only array it is handed.
            X_pool = X_pool.view()
            X_pool.flags.writeable = False
        try:
            result = fn(learner, X_pool, n_instances, random_state=random_state, **options)
        except AlplugError as exc:
            if where in str(exc):
                raise
            raise type(exc)(f"{exc} [{where}]") from exc
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a plugin's bug, or its sys.exit(): name the plugin, never end the run quietly
            raise StrategyError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
        return check_result(result, n_instances, n_pool, where)

    strategy.alplug_name, strategy.alplug_origin = name, origin
    strategy.alplug_sources = {**getattr(fn, "alplug_sources", {}), name: origin}
    return strategy


def _check_pool_shape(learner, X_pool, where: str) -> None:
    """alplug's image nets take (N, C, H, W) with their channel count; say so instead of a torch traceback."""
    estimator = getattr(learner, "estimator", learner)
    module = getattr(estimator, "module_", None)
    channels = getattr(module, "in_channels", None)
    if channels is None:
        return
    from ..data.lazy import is_index_array

    if getattr(estimator, "images", None) is not None and is_index_array(X_pool):
        if len(X_pool) and (X_pool.min() < 0 or X_pool.max() >= len(estimator.images)):
            raise UsageError(f"{where}: X_pool holds ids outside the {len(estimator.images)} images")
        return
    shape = np.shape(X_pool)
    if len(shape) != 4 or shape[1] != channels:
        raise UsageError(f"{where}: X_pool has shape {shape}; this model takes images shaped "
                            f"(N, {channels}, H, W)")


# ---- options and combinations ----------------------------------------------------------------------


def parse_option_values(pairs) -> dict:
    """``["T=20", "prefilter=4"]`` (from --query-opt) to a dict of Python values."""
    options = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--query-opt {pair!r} must look like key=value")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()  # plain words stay strings
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            value = raw.strip().lower() == "true"
        prefix, dot, name = key.strip().rpartition(".")
        options[f"{normalize_name(prefix)}." * bool(dot) + name.replace("-", "_")] = value
    return options


def bind_options(fn, name: str, options: dict):
    """``fn`` with ``options`` bound, after checking them against its signature."""
    accepted = strategy_options(fn)
    bad = [k for k in options if k not in accepted]
    if bad:
        offer = ", ".join(f"{k}={v!r}" for k, v in accepted.items()) or "none"
        raise UsageError(f"strategy {name!r} has no option {', '.join(map(repr, bad))}; its options: {offer}")
    bound = {}
    for key, value in options.items():
        default = accepted[key]
        if default is not None and not isinstance(default, bool) and isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (isinstance(default, int) and not float(value).is_integer()):
                raise UsageError(f"strategy {name!r}: option {key} = {value!r}, must be a "
                                 f"number of type {type(default).__name__} like its default {default!r}")
            value = type(default)(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise UsageError(f"strategy {name!r}: option {key} = {value!r}, must be true or false")
        bound[key] = value
    if not bound:
        return fn
    return functools.wraps(fn)(functools.partial(fn, **bound))


def options_for(query: str, options: dict | None) -> dict:
    """The options of a study that concern ``query``: unprefixed ones and ``NAME.key`` for its names.

    In ``alplug compare --query random,bald --query-opt bald.T=30`` only bald gets T.
    """
    names = {normalize_name(query)} | {normalize_name(p) for p in query.split("+")}
    return {k: v for k, v in (options or {}).items()
            if "." not in k or normalize_name(k.partition(".")[0]) in names}


def resolve_query(query: str, options: dict | None = None):
    """The strategy a ``--query`` value names, options bound and checked.

    ``a+b`` pre-selects ``prefilter`` x n candidates with ``a`` and picks n of
    them with ``b``. Options for one part are written ``a.key=value``;
    ``prefilter`` goes to the combination.
    """
    from .mixed import prefiltered

    options = dict(options or {})
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
