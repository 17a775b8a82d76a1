"""``--features-from PART[,PART...]``: a backbone cut after one of its parts, so the head reads that part's
features, or the pooled features of several parts side by side.

In a self-supervised backbone the last stage learns what the contrastive task rewards, and an earlier
stage's features can serve a linear head better once there are labels enough (docs/low-budget.md). timm
builds such cut models for its own (``features_only`` with ``out_indices``); torchvision and alplug's model
plugins have no common way, so alplug cuts any backbone whose top-level parts run one after another, and
checks that they do. Several parts give the multi-layer linear probe of the self-supervised literature (DINO's
linear evaluation concatenates the last blocks' outputs): each part's pooled output, concatenated.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import UsageError


def pool_features(features: torch.Tensor) -> torch.Tensor:
    """The embedding of backbone features: global average pooling of a feature map (a vector stays as it is).
    ``ImageClassifier.pool`` is this function, kept here so that cutting needs nothing from the module."""
    return features.mean(dim=(2, 3)) if features.dim() == 4 else features


class PooledParts(nn.Module):
    """A backbone's first parts run in order, returning the pooled outputs of ``taps`` side by side. The parts
    keep their names, so state-dict keys are the whole backbone's (a whole pretrained backbone loads into it)."""

    def __init__(self, parts: list[tuple[str, nn.Module]], taps: tuple[str, ...]):
        super().__init__()
        for name, module in parts:
            self.add_module(name, module)
        self.taps = taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for name, module in self.named_children():
            x = module(x)
            if name in self.taps:
                pooled.append(pool_features(x).flatten(1))
        return torch.cat(pooled, dim=1)


def parse_parts(text: str) -> tuple[str, ...]:
    """``layer2,layer3`` -> ("layer2", "layer3"); a one-line error for an empty or repeated name."""
    taps = tuple(p.strip() for p in str(text).split(","))
    if not all(taps) or len(set(taps)) != len(taps):
        raise UsageError(f"--features-from {str(text)[:100]!r}: give part names separated by commas, each once "
                         "(layer3, or layer2,layer3)")
    return taps


def cut_backbone(backbone: nn.Module, part: str, probe: torch.Tensor, model: str) -> tuple[nn.Module, int]:
    """``backbone``'s top-level parts up to and including the last of ``part`` (one name, or several separated
    by commas), then global average pooling; and the embedding size (the pooled parts' widths added up).
    ``probe``: a small input batch the backbone accepts. On the meta device only names and shapes are checked;
    elsewhere the parts run in order must give the backbone's own output."""
    parts = OrderedDict(backbone.named_children())
    taps = parse_parts(part)
    unknown = [t for t in taps if t not in parts]
    if unknown:
        raise UsageError(f"--features-from {unknown[0][:100]!r}: {model}'s backbone has no part by that name; its "
                         f"parts: {', '.join(parts)}")
    names = list(parts)
    weighted = [n for n in names if any(True for _ in parts[n].parameters())]
    past = [t for t in taps if weighted and names.index(t) > names.index(weighted[-1])]
    if past:  # after the last part with weights (avgpool, an identity fc): the cut would keep the whole backbone
        raise UsageError(f"--features-from {past[0]}: nothing of {model}'s backbone comes before it that the whole "
                         f"backbone lacks (its last part with weights is {weighted[-1]}); name {weighted[-1]} or an "
                         "earlier part, or leave --features-from out for the whole backbone")
    was_training = backbone.training
    backbone.eval()
    shapes = {}
    try:
        with torch.no_grad():
            whole = pool_features(backbone(probe))
            x = probe
            for name, layer in parts.items():  # one pass through the parts: the taps' outputs on the way
                x = layer(x)
                if name in taps:
                    shapes[name] = x.shape
            in_order = pool_features(x)
    except RuntimeError as exc:
        raise UsageError(f"--features-from {part}: {model}'s parts do not run one after another "
                         f"({str(exc).splitlines()[0][:200]}); use a model whose backbone they do") from None
    finally:
        backbone.train(was_training)
    same = whole.shape == in_order.shape and (whole.is_meta or torch.allclose(whole, in_order, atol=1e-5))
    if not same or any(len(s) not in (2, 4) for s in shapes.values()):
        raise UsageError(f"--features-from {part}: {model}'s backbone does not compute its parts one after "
                         "another, so it cannot be cut; use a model whose backbone does (ResNets, SqueezeNet)")
    last = max(names.index(t) for t in taps)
    kept = list(parts.items())[:last + 1]
    width = sum(int(shapes[t][1]) for t in taps)
    if len(taps) > 1:
        in_order_taps = tuple(n for n in names if n in taps)
        return PooledParts(kept, in_order_taps).train(was_training), width
    tail = [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())] if len(shapes[taps[0]]) == 4 else []
    return nn.Sequential(OrderedDict(kept + tail)).train(was_training), width
