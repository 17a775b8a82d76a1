"""timm's image models as one alplug model family: ``--model timm:NAME`` for any of ``timm.list_models()``.

timm builds the model (``create_model(NAME, num_classes=0, in_chans=C)``: the backbone then ends in timm's
own pooling and returns the penultimate embedding), adapts the first layer's pretrained filters to the
channel count, and downloads pretrained weights by tag. What this plugin adds is only the joining:
a linear head for alplug's dropout layer to sit in front of (so MC-dropout strategies run head-only),
the input size the model needs, and ``--weights`` read as a timm pretrained tag or a state-dict file.
"""
from __future__ import annotations

from importlib.metadata import version

from alplug.models import (ModelFamily, ModelParts, ModelSpec, ModelWeightsError, backbone_part, fit_state_dict,
                           load_state_dict_file)

__all__ = ["TIMM", "spec_for"]

# CNNs take any size; below this their last stage sees maps smaller than one pixel (stride 32).
MIN_CNN_INPUT = 32


def _model_info(name: str) -> tuple[int | None, tuple, tuple, str]:
    """(the fixed input side for ViT-like models or None, mean, std, default pretrained tag) from a build on
    the meta device, which allocates nothing."""
    import torch
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    cfg = model.pretrained_cfg or {}
    patch = getattr(model, "patch_embed", None)
    fixed = None
    if patch is not None and not getattr(patch, "dynamic_img_size", False):  # a patch grid of a set size
        fixed = int(cfg.get("input_size", (3, 224, 224))[-1])
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    return fixed, mean, std, str(cfg.get("tag") or "")


def _classifier_prefixes(model) -> tuple[str, ...]:
    names = (model.pretrained_cfg or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def _load_file(model, name: str, path: str) -> None:
    """A state dict from a file into the headless timm model: a timm checkpoint, or an alplug one (whose
    backbone is this very model, stored under ``backbone.``). Classifier weights are not used."""
    from pathlib import Path

    if not Path(path).expanduser().exists():
        raise ModelWeightsError(f"weights file {path} does not exist; pass an existing state-dict file or a "
                                f"timm pretrained tag (timm.list_pretrained('{name}*') lists them)")
    classifier = _classifier_prefixes(model)
    state = {k: v for k, v in backbone_part(load_state_dict_file(path)).items()
             if not (classifier and k.startswith(classifier))}
    fit_state_dict(model, state, f"weights {path!r}", f"timm:{name}")


def _build(name: str, in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    import timm
    from torch import nn

    from alplug.models import looks_like_a_path

    if weights is None or looks_like_a_path(weights):
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels, drop_rate=0.0)
        if weights is not None:
            _load_file(model, name, weights)
    else:
        tagged = name if weights.upper() == "DEFAULT" else f"{name}.{weights}"
        try:
            model = timm.create_model(tagged, pretrained=True, num_classes=0, in_chans=in_channels, drop_rate=0.0)
        except RuntimeError as exc:
            if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
                raise ModelWeightsError(f"timm has no pretrained weights {weights!r} for {name}; "
                                        f"timm.list_pretrained('{name}*') lists its tags") from None
            raise ModelWeightsError(f"cannot load timm's {tagged} weights ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # no network, no hub access
            raise ModelWeightsError(
                f"cannot download timm's {tagged} weights ({type(exc).__name__}: {exc}); on a machine with "
                f"internet save timm.create_model('{tagged}', pretrained=True).state_dict() and pass its "
                "path to --weights") from None
    # With num_classes=0 a timm model returns its pre-logits features: head_hidden_size wide where a model has a
    # hidden layer after pooling (MobileNetV3's conv_head: 1024, its num_features 288), num_features otherwise.
    width = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return ModelParts(backbone=model, head=nn.Linear(width, num_classes), embedding_dim=width)


def spec_for(name: str) -> ModelSpec:
    """The ``ModelSpec`` of timm model ``name`` (a pretrained tag goes in ``--weights``, not in the name)."""
    from functools import partial

    import timm

    from alplug.errors import UnknownNameError

    if "." in name:
        raise ModelWeightsError(f"timm:{name}: pass the pretrained tag as --weights {name.split('.', 1)[1]} "
                                f"and the model as --model timm:{name.split('.', 1)[0]}")
    if not timm.is_model(name):
        raise UnknownNameError("timm model", name, timm.list_models(),
                               hint="(timm.list_models() lists them all)")
    fixed, mean, std, tag = _model_info(name)
    return ModelSpec(
        name=f"timm:{name}", build=partial(_build, name), description=f"timm {name}",
        min_input_size=fixed or MIN_CNN_INPUT, input_size=fixed, mean=mean, std=std,
        weights_help=f"a timm pretrained tag (DEFAULT{', ' + tag if tag else ''}, ...) or a state-dict file")


TIMM = ModelFamily("timm", spec_for, f"any timm image model (timm {version('timm')})",
                   examples=("resnet10t", "convnext_atto", "vit_tiny_patch16_224"))
