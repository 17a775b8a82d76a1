"""The one ``nn.Module`` class skorch builds for every model: a spec's backbone and head, with alplug's
input preparation (scaling, resizing, normalisation), one dropout layer in front of the head, embeddings,
and the memory-layout switch. Hyper-parameters are constructor arguments, so skorch builds a fresh module
(fresh or pretrained weights) whenever it re-initialises.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .cut import pool_features
from .registry import ModelLoadError, get_model_spec
from .small_maps import use_small_map_convolutions
from .contract import ModelParts, ModelSpec, load_backbone_file


class ImageClassifier(nn.Module):
    """Any registered model (``alplug models``) for any channel and class count, as skorch's module class.

    Accepts uint8 images (scaled to [0, 1]) or float images, shaped (N, C, H, W).

    Parameters
    ----------
    arch: a ``--model`` name: ``resnet18``, ``timm:resnet10t``, ...; its ``ModelSpec`` builds the parts.
    in_channels, num_classes: data shape; the spec adapts the first layer and the classifier to them.
    dropout: probability of the dropout layer in front of the head. ``None`` keeps the spec's default
        (ResNet: none, SqueezeNet: 0.5); MC-dropout strategies need ``dropout > 0``.
    image_size: side length fed to the backbone; ``None`` upsamples inputs smaller than the spec's
        ``min_input_size`` (or resizes to its fixed ``input_size``) and leaves others alone.
    weights: ``None`` (random init) or the ``--weights`` text the spec understands.
    backbone_file: a self-supervised backbone (``alplug.ssl``) loaded over the built one: every fit starts from it.
    freeze_backbone: train the head only; the backbone's weights and BatchNorm statistics never change.
    features_from: a top-level part of the backbone (``layer3`` of a ResNet) whose pooled output the head
        reads, or several separated by commas (their pooled outputs side by side); the parts after the last are
        dropped, and the head is a new linear layer (``alplug.models.cut``).
        ``backbone_file`` may hold the whole backbone (the dropped parts' weights are passed over) or only the
        cut one (``--ssl`` with ``--features-from`` pretrains only that).
    """

    def __init__(self, arch: "str | ModelSpec" = "resnet18", in_channels: int = 3, num_classes: int = 10,
                 dropout: float | None = None, image_size: int | None = None,
                 weights: str | None = None, backbone_file: str | None = None, freeze_backbone: bool = False,
                 features_from: str | None = None):
        super().__init__()
        spec = get_model_spec(arch)
        if in_channels < 1 or num_classes < 2:
            raise UsageError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels} and {num_classes}")
        if dropout is not None and not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout = {dropout}, must be in [0, 1)")
        if image_size is not None and spec.input_size is not None and image_size != spec.input_size:
            raise UsageError(f"--model {arch} takes {spec.input_size} px images; drop --image-size or pass "
                             f"--image-size {spec.input_size}")
        self.arch, self.in_channels, self.num_classes = spec.name, in_channels, num_classes
        self.image_size = image_size if image_size is not None else spec.input_size
        self.min_size = spec.min_input_size
        self.cpu_trains_channels_last = spec.cpu_trains_channels_last
        self.channels_last = False  # the weights' layout, which prepare() gives its batches too

        parts = spec.build(in_channels, num_classes, weights)
        if not isinstance(parts, ModelParts) or not isinstance(parts.backbone, nn.Module) or \
                not isinstance(parts.head, nn.Module) or not isinstance(parts.embedding_dim, int):
            raise ModelLoadError(f"model {arch!r}: its spec's build() must return ModelParts(backbone=Module, "
                                 f"head=Module, embedding_dim=int), got {parts!r:.200}")
        self.backbone = parts.backbone
        use_small_map_convolutions(self.backbone)
        head, embedding_dim = parts.head, parts.embedding_dim
        dropped_parts = frozenset()
        if features_from is not None:
            from .cut import cut_backbone

            side = self.image_size or self.min_size or 32
            probe = torch.linspace(-1.0, 1.0, 2 * in_channels * side * side).reshape(2, in_channels, side, side)
            whole = {name for name, _ in self.backbone.named_children()}
            self.backbone, embedding_dim = cut_backbone(self.backbone, features_from, probe, spec.name)
            dropped_parts = frozenset(whole - {name for name, _ in self.backbone.named_children()})
            head = nn.Linear(embedding_dim, num_classes)
        if backbone_file is not None:
            load_backbone_file(self.backbone, backbone_file, dropped_parts)
        self.frozen = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        p = spec.default_dropout if dropout is None else dropout
        # One dropout layer in front of the head: what head-only MC dropout samples (alplug-bald's mc.py).
        # A Sequential head is spliced in, so its layers keep the state-dict keys head.1, head.2, ...
        rest = list(head) if isinstance(head, nn.Sequential) else [head]
        self.head = nn.Sequential(nn.Dropout(p), *rest)
        self.embedding_dim = embedding_dim

        pretrained = weights is not None
        mean = spec.mean if pretrained else (0.5,) * 3
        std = spec.std if pretrained else (0.5,) * 3
        self.register_buffer("mean", _channel_stat(mean, in_channels), persistent=False)
        self.register_buffer("std", _channel_stat(std, in_channels), persistent=False)

    def train(self, mode: bool = True) -> "ImageClassifier":
        """A frozen backbone stays in eval mode, so training never moves its BatchNorm statistics."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    @property
    def dropout_rate(self) -> float:
        return self.head[0].p

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Scale, resize and normalise a batch the way the backbone expects."""
        if not torch.is_floating_point(x):
            x = x.float().div_(255.0)
        size = self.prepared_size(*x.shape[-2:])
        if size != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepared_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) ``prepare`` gives an image: ``image_size`` square, or upsampled to ``min_size``."""
        if self.image_size is not None:
            return self.image_size, self.image_size
        if min(height, width) < self.min_size:
            scale = self.min_size / min(height, width)
            return max(self.min_size, round(height * scale)), max(self.min_size, round(width * scale))
        return int(height), int(width)

    def use_channels_last(self, on: bool = True) -> "ImageClassifier":
        """Weights, and the batches ``prepare`` makes, in the channels-last (NHWC) layout, or back in NCHW."""
        self.channels_last = on
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output: the head's input (a vector, or a feature map for SqueezeNet)."""
        return self.backbone(self.prepare(x))

    pool = staticmethod(pool_features)  # the embedding of backbone features: global average pooling of a map

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer embedding, shape (N, embedding_dim)."""
        return self.pool(self.features(x))

    def forward(self, x: torch.Tensor | None = None, features: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from images ``x``, or from backbone ``features`` already computed (a frozen backbone's cache)."""
        return self.head(self.features(x) if features is None else features)


def _channel_stat(values, channels: int) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float32)
    v = v if channels == 3 else v.mean().repeat(channels)
    return v.view(1, channels, 1, 1)


def build_on_meta_device(arch: str, *, in_channels: int = 3, num_classes: int = 2, dropout: float | None = None,
                         image_size: int | None = None, weights: str | None = None,
                         features_from: str | None = None) -> "ImageClassifier":
    """Build the model on the meta device: an unknown name, a broken plugin or a bad ``--weights`` fails now,
    before anything is written, at a fraction of a real build's cost (no memory, no random numbers drawn).
    skorch has no such dry run; ``initialize()`` would build the real module only to have ``fit`` rebuild it."""
    import warnings

    args = dict(dropout=dropout, image_size=image_size, weights=weights, features_from=features_from)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore", UserWarning)  # "copying ... to a meta parameter is a no-op"
        module = ImageClassifier(arch, in_channels, num_classes, **args)
        try:
            check_outputs(module, arch)
            return module
        except ModelLoadError:
            pass
    # An operation without a meta kernel (a plugin's custom op, a shape computed from data) fails there whatever the
    # shapes: the same batch through a real module on the CPU decides, and its error is the one reported.
    check_outputs(ImageClassifier(arch, in_channels, num_classes, **args).eval(), arch, device="cpu")
    return module


def check_outputs(module: ImageClassifier, arch, device: str = "meta") -> None:
    """One small batch through the model (on the meta device: shapes only, nothing computed): logits must be
    (N, classes) and embeddings (N, embedding_dim). A plugin's head with one class too many would otherwise
    train to chance accuracy without a word, and one with too few fail deep inside the loss."""
    from .registry import model_origin

    side = module.image_size or module.min_size or 32
    probe = torch.zeros(2, module.in_channels, side, side, device=device)
    name = arch if isinstance(arch, str) else getattr(arch, "name", "?")

    def origin() -> str:  # entry-point discovery reads package metadata: only for a model that failed
        try:
            return model_origin(name) if isinstance(arch, str) else "a ModelSpec object"
        except UsageError:
            return "?"

    try:
        with torch.no_grad():
            features = module.features(probe)
            logits, embedding = module.head(features), module.pool(features)
    except Exception as exc:  # noqa: BLE001 - a plugin's module fails its own way
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no details"
        raise ModelLoadError(f"model {name!r} ({origin()}) fails on a batch of 2 images of {module.in_channels}x"
                             f"{side}x{side}: {type(exc).__name__}: {detail}") from None
    expected = {"logits": (2, module.num_classes), "embeddings": (2, module.embedding_dim)}
    for what, got in (("logits", logits), ("embeddings", embedding)):
        if tuple(got.shape) != expected[what]:
            raise ModelLoadError(f"model {name!r} ({origin()}) gives {what} of shape {tuple(got.shape)} for 2 images; "
                                 f"{module.num_classes} classes need {expected[what]} "
                                 "(docs/models.md#writing-a-model-plugin)")
