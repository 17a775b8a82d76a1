"""torchvision image classifiers as ``nn.Module`` classes that skorch can re-create.

Every model is split into ``backbone`` (image -> features) and ``head``
(features -> logits). The split is what later lets embeddings and MC-dropout
reuse one backbone pass. Hyper-parameters are constructor arguments, so skorch
builds a fresh module (fresh or pretrained weights) whenever it re-initialises.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnknownNameError, UsageError

ARCHITECTURES = ("resnet18", "resnet50", "squeezenet1_1")

# Smallest side the module feeds its backbone: smaller inputs are upsampled.
# SqueezeNet 1.1 fails below 17 px; ResNets run on 1 px but learn nothing useful
# from 8x8 digits without upsampling (the source reports used 32 px).
MIN_INPUT_SIZE = {"resnet18": 32, "resnet50": 32, "squeezenet1_1": 32}

# Memory layout of the weights while training on the CPU. Evaluation is faster in channels-last (NHWC) for all
# three (oneDNN; benchmark figure 6: ResNet-18 13-31%, SqueezeNet 1.1 2x), and so is SqueezeNet's training, but
# ResNet-18 trains up to 17% slower in it (ResNet-50 no faster), so ResNets train in NCHW there and their pool
# passes run on a channels-last copy (estimators.ImageClassifierNet.evaluation_module). CUDA: always NHWC.
CPU_TRAINS_CHANNELS_LAST = {"resnet18": False, "resnet50": False, "squeezenet1_1": True}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelWeightsError(UsageError):
    """Pretrained weights could not be found, downloaded or fitted."""

    exit_code = 2


class ImageClassifier(nn.Module):
    """A torchvision ResNet or SqueezeNet 1.1 for any channel and class count.

    Accepts uint8 images (scaled to [0, 1]) or float images, shaped (N, C, H, W).

    Parameters
    ----------
    arch: one of ``ARCHITECTURES``.
    in_channels, num_classes: data shape; the first convolution and the
        classification layer are replaced to fit them.
    dropout: probability of the dropout layer in front of the classifier.
        ``None`` keeps the architecture's own (ResNet: none, SqueezeNet: 0.5);
        ResNet needs ``dropout > 0`` for MC-dropout strategies.
    image_size: side length fed to the backbone; ``None`` upsamples inputs
        smaller than ``MIN_INPUT_SIZE[arch]`` and leaves larger ones alone.
    weights: ``None`` (random init), a torchvision weights name such as
        ``"DEFAULT"`` or ``"IMAGENET1K_V1"``, or the path of a state-dict file.
    """

    def __init__(self, arch: str = "resnet18", in_channels: int = 3, num_classes: int = 10,
                 dropout: float | None = None, image_size: int | None = None,
                 weights: str | None = None):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise UnknownNameError("model", arch, ARCHITECTURES)
        if in_channels < 1 or num_classes < 2:
            raise UsageError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels} and {num_classes}")
        if dropout is not None and not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout = {dropout}, must be in [0, 1)")
        self.arch, self.in_channels, self.num_classes = arch, in_channels, num_classes
        self.image_size = image_size
        self.min_size = MIN_INPUT_SIZE[arch]
        self.channels_last = False  # the weights' layout, which prepare() gives its batches too

        stock = _build_stock(arch, weights)
        if arch.startswith("resnet"):
            n_features = stock.fc.in_features
            stock.fc = nn.Identity()  # backbone ends with global pooling + flatten
            stock.conv1 = _adapt_first_conv(stock.conv1, in_channels)
            self.backbone = stock
            p = 0.0 if dropout is None else dropout
            self.head = nn.Sequential(nn.Dropout(p), nn.Linear(n_features, num_classes))
            self.embedding_dim = n_features
        else:
            stock.features[0] = _adapt_first_conv(stock.features[0], in_channels)
            self.backbone = stock.features  # feature map (N, 512, h, w)
            p = 0.5 if dropout is None else dropout
            # SqueezeNet 1.1's classifier without its final ReLU: with the ReLU,
            # every logit is clipped at 0 before pooling and training from
            # scratch on small images stalls near chance (../shared/FACTS.md).
            self.head = nn.Sequential(nn.Dropout(p), nn.Conv2d(512, num_classes, kernel_size=1),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
            nn.init.normal_(self.head[1].weight, mean=0.0, std=0.01)
            nn.init.zeros_(self.head[1].bias)
            self.embedding_dim = 512

        pretrained = weights is not None
        mean = IMAGENET_MEAN if pretrained else (0.5,) * 3
        std = IMAGENET_STD if pretrained else (0.5,) * 3
        self.register_buffer("mean", _channel_stat(mean, in_channels), persistent=False)
        self.register_buffer("std", _channel_stat(std, in_channels), persistent=False)

    @property
    def dropout_rate(self) -> float:
        return self.head[0].p

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Scale, resize and normalise a batch the way the backbone expects."""
        if not torch.is_floating_point(x):
            x = x.float().div_(255.0)
        h, w = x.shape[-2:]
        if self.image_size is not None:
            if (h, w) != (self.image_size, self.image_size):
                x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        elif min(h, w) < self.min_size:
            scale = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def use_channels_last(self, on: bool = True) -> "ImageClassifier":
        """Weights, and the batches ``prepare`` makes, in the channels-last (NHWC) layout, or back in NCHW."""
        self.channels_last = on
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output: the head's input (a vector for ResNet, a map for SqueezeNet)."""
        return self.backbone(self.prepare(x))

    @staticmethod
    def pool(features: torch.Tensor) -> torch.Tensor:
        """The embedding of backbone features: global average pooling of a feature map."""
        return features.mean(dim=(2, 3)) if features.dim() == 4 else features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding, shape (N, embedding_dim)."""
        return self.pool(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _channel_stat(values, channels: int) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float32)
    v = v if channels == 3 else v.mean().repeat(channels)
    return v.view(1, channels, 1, 1)


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """The first convolution for ``in_channels`` inputs, keeping pretrained filters.

    Pretrained RGB filters are summed for one channel and tiled (rescaled) for
    more, the usual recipe (timm's ``adapt_input_conv``); torchvision has none.
    """
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


def _build_stock(arch: str, weights: str | None) -> nn.Module:
    """The unchanged torchvision model, with pretrained weights loaded if asked."""
    import torchvision

    builder = getattr(torchvision.models, arch)
    model = builder(weights=None)
    if weights is None:
        return model
    state = load_state_dict(arch, weights)
    classifier = ("fc.",) if arch.startswith("resnet") else ("classifier.",)
    state = {k: v for k, v in state.items() if not k.startswith(classifier)}
    # Weights saved from a model with another channel count (an earlier alplug
    # run on grayscale data): give the stock model a matching first convolution.
    first = "conv1" if arch.startswith("resnet") else "features.0"
    w = state.get(f"{first}.weight")
    if w is not None and w.dim() == 4 and w.shape[1] != 3:
        old = model.get_submodule(first)
        model.set_submodule(first, nn.Conv2d(w.shape[1], old.out_channels, old.kernel_size, old.stride,
                                             old.padding, bias=old.bias is not None))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shape mismatches
        raise ModelWeightsError(f"weights {weights!r} do not fit {arch}: {str(exc).splitlines()[-1].strip()}") from None
    missing = [k for k in missing if not k.startswith(classifier)]
    if missing or unexpected:
        raise ModelWeightsError(
            f"weights {weights!r} do not fit {arch}: {len(missing)} missing and {len(unexpected)} unexpected "
            f"keys (e.g. {(missing + unexpected)[:3]}); pass weights saved from a torchvision {arch}")
    return model


def load_state_dict(arch: str, weights: str) -> dict:
    """A state dict from a local file (loaded with ``weights_only``) or torchvision's named weights."""
    path = Path(weights).expanduser()
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
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
        # An alplug checkpoint (our own module) stores the torchvision model under backbone.
        if any(k.startswith("backbone.") for k in state):
            state = _from_alplug_checkpoint(arch, state)
        return state
    if any(sep in weights for sep in ("/", "\\")) or path.suffix in (".pt", ".pth", ".bin"):
        raise ModelWeightsError(f"weights file {path} does not exist; pass an existing state-dict file "
                                f"or a torchvision weights name such as DEFAULT")
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


def _from_alplug_checkpoint(arch: str, state: dict) -> dict:
    out = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            key = key[len("backbone."):]
            out[key if arch.startswith("resnet") else f"features.{key}"] = value
    return out
