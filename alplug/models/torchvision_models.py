"""alplug's built-in models: torchvision's ResNet-18, ResNet-50 and SqueezeNet 1.1, registered through the
``alplug.models`` entry points like any plugin's.

What is particular to each lives here and nowhere else: where the classifier is cut off, how the first
convolution is adapted to the channel count, which state-dict keys an alplug checkpoint stores, and the
memory layout it trains in on the CPU.
"""
from __future__ import annotations

from functools import partial

from ..errors import UnknownNameError
from .contract import (ModelParts, ModelSpec, ModelWeightsError, adapt_first_conv, backbone_part, fit_state_dict,
                   load_state_dict_file, looks_like_a_path)


def _named_weights(arch: str, weights: str) -> dict:
    """torchvision's named weights (``DEFAULT``, ``IMAGENET1K_V1``), downloaded into torch's cache."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    try:
        named = enum[weights.split(".")[-1].upper()]
    except KeyError:
        raise UnknownNameError(f"{arch} weights", weights, ["DEFAULT", *enum.__members__]) from None
    try:
        return named.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # no network, proxy, disk full...
        raise ModelWeightsError(
            f"cannot download {named} ({type(exc).__name__}: {exc}); on a machine with internet save "
            f"torchvision.models.{arch}(weights='{weights}').state_dict() and pass its path to --weights") from None


def _weights(arch: str, weights: str, backbone_prefix: str) -> dict:
    """A torchvision state dict from ``--weights``: a file (a torchvision state dict, or an alplug checkpoint,
    whose backbone is stored under ``backbone.``) or a torchvision weights name."""
    if not looks_like_a_path(weights):
        return _named_weights(arch, weights)
    from pathlib import Path

    if not Path(weights).expanduser().exists():
        raise ModelWeightsError(f"weights file {weights} does not exist; pass an existing state-dict file "
                                "or a torchvision weights name such as DEFAULT")
    return backbone_part(load_state_dict_file(weights), backbone_prefix)


def _stock(arch: str, weights: str | None, classifier: str, first_conv: str, backbone_prefix: str):
    """The unchanged torchvision model, with pretrained weights loaded if asked."""
    import torchvision
    from torch import nn

    model = getattr(torchvision.models, arch)(weights=None)
    if weights is None:
        return model
    state = {k: v for k, v in _weights(arch, weights, backbone_prefix).items() if not k.startswith(classifier)}
    # Weights saved from a model with another channel count (an earlier alplug
    # run on grayscale data): give the stock model a matching first convolution.
    w = state.get(f"{first_conv}.weight")
    if w is not None and w.dim() == 4 and w.shape[1] != 3:
        old = model.get_submodule(first_conv)
        model.set_submodule(first_conv, nn.Conv2d(w.shape[1], old.out_channels, old.kernel_size, old.stride,
                                                  old.padding, bias=old.bias is not None))
    fit_state_dict(model, state, f"weights {weights!r}", arch, skip=lambda key: key.startswith(classifier),
                   advice=f"; pass weights saved from a torchvision {arch}")
    return model


def build_resnet(arch: str, in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    from torch import nn

    stock = _stock(arch, weights, classifier="fc.", first_conv="conv1", backbone_prefix="")
    n_features = stock.fc.in_features
    stock.fc = nn.Identity()  # the backbone ends with global pooling + flatten
    stock.conv1 = adapt_first_conv(stock.conv1, in_channels)
    return ModelParts(backbone=stock, head=nn.Linear(n_features, num_classes), embedding_dim=n_features)


def build_squeezenet(in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    from torch import nn

    stock = _stock("squeezenet1_1", weights, classifier="classifier.", first_conv="features.0",
                   backbone_prefix="features.")
    stock.features[0] = adapt_first_conv(stock.features[0], in_channels)
    # SqueezeNet 1.1's classifier without its final ReLU: with the ReLU, every logit is clipped at 0 before
    # pooling and training from scratch on small images stalls near chance (docs/models.md).
    conv = nn.Conv2d(512, num_classes, kernel_size=1)
    nn.init.normal_(conv.weight, mean=0.0, std=0.01)
    nn.init.zeros_(conv.bias)
    head = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return ModelParts(backbone=stock.features, head=head, embedding_dim=512)  # features: a (N, 512, h, w) map


_TORCHVISION_WEIGHTS = "a torchvision weights name (DEFAULT, IMAGENET1K_V1) or a state-dict file"

# ResNets run on 1 px inputs but learn nothing useful from 8x8 digits without upsampling (docs/models.md);
# SqueezeNet 1.1 fails below 17 px. On the CPU, oneDNN trains SqueezeNet faster in channels-last
# and ResNets slower (benchmark figure 6).
RESNET18 = ModelSpec("resnet18", partial(build_resnet, "resnet18"), "torchvision ResNet-18 (11.2 M parameters)",
                     min_input_size=32, weights_help=_TORCHVISION_WEIGHTS)
RESNET50 = ModelSpec("resnet50", partial(build_resnet, "resnet50"), "torchvision ResNet-50 (23.5 M parameters)",
                     min_input_size=32, weights_help=_TORCHVISION_WEIGHTS)
SQUEEZENET1_1 = ModelSpec("squeezenet1_1", build_squeezenet,
                          "torchvision SqueezeNet 1.1 (0.7 M parameters), its final ReLU removed",
                          min_input_size=32, default_dropout=0.5, cpu_trains_channels_last=True,
                          weights_help=_TORCHVISION_WEIGHTS)
