"""The one check of a run's settings, made before anything is written.

``alplug run`` (through ``ActiveLearningRun``), ``alplug compare`` and ``alplug project init`` call
``check_run_settings``: types and ranges of every setting, then every strategy's name, options and plugin,
each problem reported at once. It reads no data and builds no model; ``check_model_fits`` then checks the
model, its weights and the budget against the data, on the meta device, where a caller has the data.
"""
from __future__ import annotations

from .config import RunConfig
from .errors import MissingDependencyError, UsageError


def check_run_settings(config: RunConfig, queries: list[str] | None = None, echo=None) -> dict:
    """``config`` checked, and the strategy for each of ``queries`` (default: ``config.query``) with its options
    bound, by name. ``echo``: where settings that have no effect are noted."""
    from .strategies import resolve_query
    from .strategies.options import options_for

    config.validate()
    from importlib.util import find_spec

    if find_spec("modAL") is None:  # said before a run directory or a project is made
        from .modal_compat import MODAL_INSTALL_HINT

        raise MissingDependencyError(MODAL_INSTALL_HINT)
    for note in idle_settings(config) if echo else ():
        echo(f"note: {note}")
    if config.ssl is not None:
        if find_spec("lightly") is None:  # before a run directory or a project is made, not an hour later
            raise MissingDependencyError("--ssl needs lightly: pip install 'alplug[ssl]'")
    strategies, problems = {}, []
    for query in queries or [config.query]:  # every unknown name at once, before anything starts
        try:
            strategies[query] = resolve_query(query, options_for(query, config.query_options))
        except UsageError as exc:
            problems.append(str(exc))
    if config.initial is not None:
        try:
            resolve_query(config.initial)
        except UsageError as exc:
            problems.append(f"--initial: {exc}")
    if problems:
        raise UsageError("; ".join(problems))
    return strategies


def check_model_fits(config: RunConfig, data, splits=None) -> None:
    """Settings that must work together (once a recipe has filled its own), the model (and ``--weights``) for this
    data's channels and classes, built on the meta device; and a ``--budget`` that leaves room for the initial
    labeled set."""
    from .models import build_on_meta_device

    problems = config.combination_problems()
    if problems:
        raise UsageError("; ".join(problems))
    if splits is not None and config.budget is not None:
        first = config.n_initial if config.initial is not None else len(splits.initial)
        if config.budget < first:
            where = (f"--n-initial {first}" if config.initial is not None
                     else f"{config.n_start} x {data.n_classes} classes = {first}")
            raise UsageError(f"--budget {config.budget} is smaller than the initial labeled set ({where})")
    if splits is not None and config.initial is not None and config.n_initial > len(splits.pool) + len(splits.initial):
        raise UsageError(f"--n-initial {config.n_initial} is larger than the pool of "
                         f"{len(splits.pool) + len(splits.initial)} images; lower it")
    build_on_meta_device(config.model, in_channels=data.channels, num_classes=data.n_classes, dropout=config.dropout,
                image_size=config.image_size, weights=config.weights, features_from=config.features_from)


def idle_settings(config: RunConfig) -> list[str]:
    """Settings changed from their defaults that do nothing with the rest (not errors: a settings file may carry
    them for every run of a study)."""
    default = RunConfig()
    notes = []
    if config.ssl is None and config.ssl_epochs != default.ssl_epochs:
        notes.append(f"--ssl-epochs {config.ssl_epochs} has no effect without --ssl")
    if config.semi is None:
        idle = [f"--{n.replace('_', '-')}" for n in ("semi_weight", "semi_threshold", "semi_ratio")
                if getattr(config, n) != getattr(default, n)]
        if idle:
            notes.append(f"{', '.join(idle)} {'has' if len(idle) == 1 else 'have'} no effect without --semi")
    return notes
