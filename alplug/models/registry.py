"""Finding models: the ``alplug.models`` entry points (alplug's own torchvision models and any plugin's).

``--model NAME`` names a registered ``ModelSpec``; ``--model FAMILY:MODEL`` asks a registered
``ModelFamily`` (such as ``timm``) for one of its models. Discovery, precedence and clashes are
``alplug.plugins``'; this module adds the contract check and the family lookup.
"""
from __future__ import annotations

import functools

from ..errors import ModelLoadError, UsageError  # noqa: F401 - ModelLoadError re-exported
from ..plugins import PluginEntry, discover, exact_name, lookup
from .contract import ModelFamily, ModelSpec

GROUP = "alplug.models"

# Model families shipped as optional plugins, and the extra that installs each.
OPTIONAL_FAMILIES = {"timm": "timm"}




class ModelEntry(PluginEntry):
    error = ModelLoadError

    def check(self, obj) -> str | None:
        if isinstance(obj, (ModelSpec, ModelFamily)):
            return None
        return (f"is a {type(obj).__name__}, not an alplug.models.ModelSpec or ModelFamily "
                "(docs/models.md#writing-a-model-plugin)")


def discover_models() -> tuple[dict[str, ModelEntry], dict[str, list[ModelEntry]]]:
    """(the entry used for each name, sorted; the entries each clashing name passed over)."""
    return discover(GROUP, "model", ModelEntry, normalize=exact_name)


def available_models() -> dict[str, ModelEntry]:
    return discover_models()[0]


def _entry(name: str) -> ModelEntry:
    return lookup(discover_models(), exact_name(name), name, "model", "alplug models", OPTIONAL_FAMILIES)


@functools.lru_cache(maxsize=256)
def get_model_spec(name: str | ModelSpec) -> ModelSpec:
    """The ``ModelSpec`` for ``--model`` ``name`` (``NAME`` or ``FAMILY:MODEL``; a spec is returned as it is, so
    a plugin's author can build and check one before installing it). Cached: skorch builds a new module at
    every fit, and entry-point discovery reads package metadata."""
    if isinstance(name, ModelSpec):
        return name
    if not isinstance(name, str):
        raise UsageError(f"--model must be a name, got {type(name).__name__}")
    family, sep, member = name.partition(":")
    entry = _entry(family)
    obj = entry.load()
    if sep:
        if not isinstance(obj, ModelFamily):
            raise UsageError(f"model {family!r} ({entry.origin}) is a single model; use --model {family}")
        if not member.strip():
            raise UsageError(f"--model {name!r}: name one of {family}'s models, e.g. "
                             f"{family}:{(obj.examples or ('NAME',))[0]}")
        try:
            spec = obj.spec_for(member.strip())
        except UsageError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"model family {family!r} ({entry.origin}) failed for {member!r}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(spec, ModelSpec):
            raise ModelLoadError(f"model family {family!r} ({entry.origin}) returned a {type(spec).__name__} "
                                 f"for {member!r}, not a ModelSpec")
        return spec
    if isinstance(obj, ModelFamily):
        raise UsageError(f"--model {family!r} is a family of models ({obj.description}); name one as "
                         f"{family}:MODEL, e.g. {family}:{(obj.examples or ('NAME',))[0]}")
    return obj


def model_origin(name: str) -> str:
    """The distribution and version that supply ``--model`` ``name``."""
    return _entry(name.partition(":")[0]).origin
