"""The model-plugin contract: what alplug needs to know about an architecture, in one object.

A model plugin registers, in the ``alplug.models`` entry-point group, either a ``ModelSpec`` (one model,
used as ``--model NAME``) or a ``ModelFamily`` (many, used as ``--model NAME:MODEL``, the way
``timm:resnet10t`` names a timm model). No code outside a spec branches on an architecture's name.

A spec's ``build(in_channels, num_classes, weights)`` returns ``ModelParts``: the backbone (prepared images
to features) and the head (features to logits). alplug puts one dropout layer in front of the head, so
MC-dropout strategies run the backbone once and only the head T times, and ``pool(features)`` is the
penultimate embedding the diversity strategies use. docs/models.md#writing-a-model-plugin has a worked example.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import CachedBackboneError, ModelWeightsError  # noqa: F401 - re-exported

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)






@dataclass
class ModelParts:
    """What ``ModelSpec.build`` returns.

    backbone: an ``nn.Module`` from prepared images (N, C, H, W) to features: a vector (N, D) or a
        feature map (N, D, h, w) that global average pooling turns into the (N, D) embedding.
    head: an ``nn.Module`` from those features to logits (N, num_classes), with no dropout of its own
        (alplug adds it in front). An ``nn.Sequential`` head is spliced in after the dropout layer. A layer of
        the head with a ``fit_statistics(features)`` method is given the training images' backbone features
        before each fit (a scaler fitted on the training set; the scattering model's standardisation).
        A backbone made of a ``front`` without parameters and a ``trunk`` (``backbone(x) == trunk(front(x))``,
        as ``scattering-conv``'s) is pretrained by ``--ssl`` on the front's outputs of a few stored views of each
        image, computed once (``alplug.ssl``), instead of a front pass per view and step.
    embedding_dim: D.
    """

    backbone: object
    head: object
    embedding_dim: int


@dataclass(frozen=True)
class ModelSpec:
    """One architecture, as alplug needs to know it.

    build: ``build(in_channels, num_classes, weights)`` -> ``ModelParts``. ``weights`` is None (random
        initialisation) or the ``--weights`` text: a state-dict file, or a name the plugin knows (a
        torchvision weights enum member, a timm pretrained tag). Parameters must be created in the same
        order every time, so that a seed gives the same initial weights.
    min_input_size: smaller inputs are upsampled to this side length.
    input_size: the one side length the model takes (a ViT's patch grid), or None for any size.
    default_dropout: the dropout in front of the head when ``--dropout`` is not given.
    cpu_trains_channels_last: train in the channels-last layout on the CPU (CUDA always does); evaluation
        passes over large pools use it regardless. docs/performance.md (figure 6) says how to measure it.
    mean, std: per-channel normalisation when pretrained weights are used (random weights use 0.5, 0.5).
    """

    name: str
    build: Callable[[int, int, str | None], ModelParts]
    description: str = ""
    min_input_size: int = 32
    input_size: int | None = None
    default_dropout: float = 0.0
    cpu_trains_channels_last: bool = False
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    weights_help: str = "a state-dict file"


@dataclass(frozen=True)
class ModelFamily:
    """Many models under one prefix: ``--model NAME:MODEL`` calls ``spec_for(MODEL)`` for its ``ModelSpec``.

    examples: a few valid MODEL names, shown by ``alplug models``.
    """

    name: str
    spec_for: Callable[[str], ModelSpec]
    description: str = ""
    examples: tuple = ()


MAX_WEIGHTS_BYTES = 8 * 2**30  # larger than any model alplug trains on one machine


def load_state_dict_file(path: str | Path, digest: str | None = None) -> dict:
    """A state dict of tensors from a file, read as hostile: one open of a regular file, ``weights_only`` (no
    code runs), then checked to be a mapping of names to tensors. A checkpoint that wraps it as
    ``{"state_dict": ...}`` is unwrapped. ``digest``: the BLAKE2b-128 hex digest the bytes must have (checked on
    the very bytes that are loaded)."""
    import hashlib
    import io

    import torch

    from ..userfiles import UserFileError, read_user_file

    path = Path(path).expanduser()
    try:
        data = read_user_file(path, MAX_WEIGHTS_BYTES, f"weights file {path}")
    except UserFileError as exc:
        raise ModelWeightsError(f"{exc}; pass a torch state dict saved with torch.save(model.state_dict(), PATH)") \
            from None
    if digest is not None and hashlib.blake2b(data, digest_size=16).hexdigest() != digest:
        raise ModelWeightsError(f"{path} is not the file that was written there (its digest differs)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
        raise ModelWeightsError(f"cannot read weights file {path}: {exc}; pass a torch state dict "
                                "saved with torch.save(model.state_dict(), PATH)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelWeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelWeightsError(f"{path} is not a state dict of tensors (entry {bad[0]!r} holds "
                                f"{type(state[bad[0]]).__name__}); pass a file saved with "
                                "torch.save(model.state_dict(), PATH)")
    return state


def looks_like_a_path(weights: str) -> bool:
    """``--weights`` text that names a file (which must then exist) rather than a pretrained-weights name."""
    return Path(weights).expanduser().is_file() or any(sep in weights for sep in ("/", "\\")) or \
        Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors")


def adapt_first_conv(conv, in_channels: int):
    """The first convolution for ``in_channels`` inputs, keeping pretrained filters.

    Pretrained RGB filters are summed for one channel and tiled (rescaled) for more, the usual recipe
    (timm's ``adapt_input_conv``, which torchvision lacks).
    """
    import torch
    from torch import nn

    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight  # [out, 3, k, k]
        if in_channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            reps = -(-in_channels // w.shape[1])
            new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :in_channels] * (w.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def backbone_part(state: dict, prefix: str = "") -> dict:
    """The backbone's weights of a state dict: an alplug checkpoint (a run's ``model.pt``, a cached
    self-supervised backbone) keeps them under ``backbone.``, here renamed to ``prefix`` + the rest; any other
    state dict is taken as the backbone's own."""
    if not any(k.startswith("backbone.") for k in state):
        return state
    return {prefix + k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}


def fit_state_dict(module, state: dict, what: str, model_name: str, *, skip=lambda key: False,
                   error=ModelWeightsError, advice: str = "") -> None:
    """Load ``state`` into ``module``: every key must fit both ways, except those ``skip`` passes over (a
    classifier that is replaced, parts a cut dropped). Shapes that differ, or keys missing or unexpected, are one
    line naming ``what`` (the weights) and the model, with ``advice`` after it. The one loader of torchvision's,
    timm's, a plugin's and a cached backbone's weights."""
    try:
        missing, unexpected = module.load_state_dict({k: v for k, v in state.items() if not skip(k)}, strict=False)
    except RuntimeError as exc:  # tensor shapes that do not fit
        raise error(f"{what} do not fit {model_name}: {str(exc).splitlines()[-1].strip()}{advice}") from None
    missing = [k for k in missing if not skip(k)]
    if missing or unexpected:
        raise error(f"{what} do not fit {model_name}: {len(missing)} missing and {len(unexpected)} unexpected keys "
                    f"(e.g. {(missing + unexpected)[:3]}){advice}")


def load_backbone_weights(backbone, weights: str, model_name: str) -> None:
    """``--weights FILE`` into a plugin's backbone: a state dict of that backbone, or an alplug checkpoint
    (a run's ``model.pt``, whose backbone is stored under ``backbone.``; its head is not used). Every
    backbone weight must be there and fit."""
    if not Path(weights).expanduser().exists():
        raise ModelWeightsError(f"weights file {weights} does not exist; pass an existing state-dict file")
    fit_state_dict(backbone, backbone_part(load_state_dict_file(weights)), f"weights {weights!r}", model_name)


# A self-supervised backbone (``alplug.ssl`` caches them) as every fit loads it: here, beside the other weight
# loaders, so that building a model needs nothing from the training code that made the file.
MAX_SIDECAR_BYTES = 64 * 1024


def recorded_digest(sidecar: Path) -> str | None:
    """The digest the cache's JSON beside a backbone file records for it (None: none recorded, or unreadable)."""
    import json

    from ..userfiles import UserFileError, read_user_file

    try:
        digest = json.loads(read_user_file(sidecar, MAX_SIDECAR_BYTES, str(sidecar))).get("digest")
    except (UserFileError, ValueError, RecursionError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


def load_backbone_file(backbone, path: str | Path, dropped_parts: frozenset[str] = frozenset()) -> None:
    """Load a cached backbone (``backbone.``-prefixed state dict) into ``backbone``; every key must fit, except
    that weights of ``dropped_parts`` (top-level parts a ``--features-from`` cut removed) are passed over: a
    whole pretrained backbone starts a cut one."""
    try:  # checked against the digest recorded when it was cached, on the very bytes loaded
        state = load_state_dict_file(path, digest=recorded_digest(Path(path).with_suffix(".json")))
    except ModelWeightsError as exc:
        raise CachedBackboneError(f"{exc}; remove the cached file to pretrain again") from None
    state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    fit_state_dict(backbone, state, f"cached backbone {path}: its weights", "the model",
                   skip=lambda key: key.split(".", 1)[0] in dropped_parts, error=CachedBackboneError,
                   advice="; remove it to pretrain again")
