"""``--features-from PART``: a backbone cut after one of its parts, so the head reads that part's features.

In a self-supervised backbone the last stage learns what the contrastive task rewards, and an earlier
stage's features can serve a linear head better once there are labels enough (docs/low-budget.md). timm
builds such cut models for its own (``features_only``); torchvision and alplug's model plugins have no
common way, so alplug cuts any backbone whose top-level parts run one after another, and checks that they do.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import UsageError


def cut_backbone(backbone: nn.Module, part: str, probe: torch.Tensor, model: str) -> tuple[nn.Module, int]:
    """``backbone``'s top-level parts up to and including ``part``, then global average pooling; and the
    embedding size. ``probe``: a small input batch the backbone accepts. On the meta device only names and
    shapes are checked; elsewhere the parts run in order must give the backbone's own output."""
    parts = OrderedDict(backbone.named_children())
    if part not in parts:
        raise UsageError(f"--features-from {part[:100]!r}: {model}'s backbone has no part by that name; its parts: "
                         f"{', '.join(parts)}")
    from .module import ImageClassifier

    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            whole = ImageClassifier.pool(backbone(probe))
            x = probe
            for name, layer in parts.items():  # one pass through the parts: the cut's output on the way
                x = layer(x)
                if name == part:
                    out_shape = x.shape
            in_order = ImageClassifier.pool(x)
    except RuntimeError as exc:
        raise UsageError(f"--features-from {part}: {model}'s parts do not run one after another "
                         f"({str(exc).splitlines()[0][:200]}); use a model whose backbone they do") from None
    finally:
        backbone.train(was_training)
    same = whole.shape == in_order.shape and (whole.is_meta or torch.allclose(whole, in_order, atol=1e-5))
    if not same or len(out_shape) not in (2, 4):
        raise UsageError(f"--features-from {part}: {model}'s backbone does not compute its parts one after "
                         "another, so it cannot be cut; use a model whose backbone does (ResNets, SqueezeNet)")
    kept = list(parts.items())[:list(parts).index(part) + 1]
    tail = [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())] if len(out_shape) == 4 else []
    return nn.Sequential(OrderedDict(kept + tail)).train(was_training), int(out_shape[1])
