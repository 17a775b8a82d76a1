"""modAL's ``ActiveLearner``, made to work on today's scikit-learn.

modAL 0.4.2.1 (its latest release) calls ``check_X_y(force_all_finite=...)``;
scikit-learn 1.8 renamed the keyword to ``ensure_all_finite`` and ``teach()``
raises ``TypeError``. We give modAL's learners module a ``check_X_y`` that
translates the keyword, rather than re-implementing the learner.
"""
from __future__ import annotations

import functools
import inspect

from .errors import MissingDependencyError

MODAL_INSTALL_HINT = ("modAL is not installed: run `pip install --no-deps modAL-python` "
                      "(--no-deps because its stale skorch==0.9.0 pin cannot be installed)")


def _translate_finite_keyword(check_X_y):
    @functools.wraps(check_X_y)
    def wrapper(*args, force_all_finite=True, **kwargs):
        kwargs.setdefault("ensure_all_finite", force_all_finite)
        return check_X_y(*args, **kwargs)

    wrapper.alplug_compat = True
    return wrapper


def active_learner_class():
    """modAL's ``ActiveLearner``, with the scikit-learn shim applied once."""
    try:
        from modAL.models import learners
    except ImportError:
        raise MissingDependencyError(MODAL_INSTALL_HINT) from None
    current = learners.check_X_y
    if not getattr(current, "alplug_compat", False) and \
            "force_all_finite" not in inspect.signature(current).parameters:
        learners.check_X_y = _translate_finite_keyword(current)
    return learners.ActiveLearner


def __getattr__(name: str):
    """``from alplug.modal_compat import ActiveLearner``: modAL's class, fixed for this scikit-learn.

    Resolved on first access so that importing this module does not import modAL (and torch).
    """
    if name == "ActiveLearner":
        return active_learner_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
