"""Strategy options: parsing ``--query-opt KEY=VALUE``, checking them against a strategy's signature and
binding them, and sharing them out between the strategies of a study or a combination."""
from __future__ import annotations

import ast
import functools
import inspect

from ..errors import UsageError
from ..plugins import normalize_name


def strategy_options(fn) -> dict:
    """The options a strategy takes (keyword-only, except random_state) with their defaults."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY and p.name != "random_state"}


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
    check = getattr(fn, CHECK_ATTRIBUTE, None)
    if callable(check):  # the strategy's own check of its values, before any training
        try:
            problem = check(**{**accepted, **bound})
        except (ValueError, TypeError) as exc:
            problem = str(exc)
        if problem:
            raise UsageError(f"strategy {name!r}: {problem}")
    return functools.wraps(fn)(functools.partial(fn, **bound))


CHECK_ATTRIBUTE = "alplug_check_options"


def checks_options(check):
    """Decorator: ``check(**options)`` (every option, defaults filled in) returns what is wrong with their values
    or None; alplug calls it when ``--query-opt`` values are bound, so a bad value fails before round 0 trains.
    Without it a value is only type-checked against its default, and anything else shows at the first query."""
    def attach(fn):
        setattr(fn, CHECK_ATTRIBUTE, check)
        return fn

    return attach


def options_for(query: str, options: dict | None) -> dict:
    """The options of a study that concern ``query``: unprefixed ones and ``NAME.key`` for its names.

    In ``alplug compare --query random,bald --query-opt bald.T=30`` only bald gets T.
    """
    names = {normalize_name(query)} | {normalize_name(p) for p in query.split("+")}
    return {k: v for k, v in (options or {}).items()
            if "." not in k or normalize_name(k.partition(".")[0]) in names}
