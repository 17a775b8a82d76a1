"""The query-strategy contract: what a strategy's signature must be, what it must return, and the per-call
wrapper that is the one place a strategy's input (``n_instances``, the pool) and output are checked.

A strategy is ``fn(learner, X_pool, n_instances=1, *, random_state=None, **options)`` returning
``(indices, scores)`` (modAL 0.4.2 needs the pair: bare indices make it call the strategy twice and
misread ``n_instances=2``).
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from ..errors import AlplugError, UsageError
from .outputs import StrategyError


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
