"""An example alplug model plugin: a small CNN (four conv-BN-ReLU blocks), registered as ``small-cnn``.

A model plugin is one ``ModelSpec``: a ``build`` function that returns the backbone (images to features)
and the head (features to logits), and what alplug must know to feed it. alplug adds the dropout layer in
front of the head, the input scaling and normalisation, embeddings, and everything else.
"""
from __future__ import annotations

from torch import nn

from alplug.models import ModelParts, ModelSpec, load_backbone_weights

WIDTH = 64


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2))


def build(in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    """The parts, created in the same order every time (so a seed gives the same initial weights)."""
    backbone = nn.Sequential(_block(in_channels, WIDTH), _block(WIDTH, WIDTH), _block(WIDTH, WIDTH),
                             _block(WIDTH, WIDTH))  # (N, 64, h/16, w/16): alplug pools it into the embedding
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, num_classes))
    if weights is not None:  # a state-dict file: this backbone's, or an alplug run's model.pt
        load_backbone_weights(backbone, weights, "small-cnn")
    return ModelParts(backbone=backbone, head=head, embedding_dim=WIDTH)


SMALL_CNN = ModelSpec("small-cnn", build, "a small four-block CNN (0.1 M parameters), an example plugin",
                      min_input_size=16, default_dropout=0.0, weights_help="a state-dict file")
