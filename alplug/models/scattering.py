"""Label-free fixed features as a model: a wavelet scattering transform (kymatio) in front of a linear head.

Nothing in the backbone learns: its filters are Morlet wavelets fixed in advance, so it needs no pretraining and
no labels, costs a few seconds per thousand small images on a CPU, and with ``--freeze-backbone`` every image's
features are computed once per run. On small folders unlike digits it gives a linear head more from a few labels
than a backbone trained from scratch or pretrained on a thousand images (docs/low-budget.md).

Two things here are ours, because kymatio has neither: its 2-D transform is built for one input shape, so the
backbone builds one per shape it meets (a folder at 64 px and digits at 32 px); and its coefficients span orders
of magnitude, so they are log-compressed (Andén and Mallat's usual step), which lets an Adam-trained head treat
them alike. The head reads the coefficients on a fixed 8x8 grid (where they lie matters for a shape), whatever the
image size; the embedding the diversity strategies read is their spatial average.
"""
from __future__ import annotations

from functools import partial

from ..errors import UsageError
from .contract import (ModelParts, ModelSpec, backbone_part, fit_state_dict, load_backbone_weights, load_state_dict_file,
                       looks_like_a_path)

GRID = 8  # the head reads each coefficient on a GRID x GRID grid


def build_scattering(scales: int, in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    from torch import nn

    from .scattering_module import CoefficientStandardize, ScatteringBackbone, coefficients

    backbone = ScatteringBackbone(scales)
    if weights is not None:
        if not looks_like_a_path(weights):
            raise UsageError(f"the scattering model has no pretrained weights named {weights!r} (its filters are fixed "
                             "wavelets); drop --weights")
        # A scattering run's model.pt holds only its head (the backbone has no weights): accepted, nothing loaded;
        # any other model's weights are refused by name
        state = backbone_part({k: v for k, v in load_state_dict_file(weights).items() if not k.startswith("head.")})
        fit_state_dict(backbone, state, f"weights {weights!r}", "scattering")

    k = in_channels * coefficients(scales)
    head = nn.Sequential(CoefficientStandardize(k), nn.AdaptiveAvgPool2d(GRID), nn.Flatten(),
                         nn.Linear(k * GRID * GRID, num_classes))
    return ModelParts(backbone=backbone, head=head, embedding_dim=k)


def build_scattering_conv(scales: int, in_channels: int, num_classes: int, weights: str | None) -> ModelParts:
    from torch import nn

    from .scattering_module import CoefficientStandardize, ScatteringConvBackbone

    backbone = ScatteringConvBackbone(scales, in_channels, TRUNK_WIDTH)
    if weights is not None:
        if not looks_like_a_path(weights):
            raise UsageError(f"the scattering-conv model has no pretrained weights named {weights!r}; pass a "
                             "state-dict file (a scattering-conv run's model.pt, or an --ssl backbone) or drop --weights")
        load_backbone_weights(backbone, weights, "scattering-conv")
    head = nn.Sequential(CoefficientStandardize(TRUNK_WIDTH), nn.Flatten(), nn.Linear(TRUNK_WIDTH, num_classes))
    return ModelParts(backbone=backbone, head=head, embedding_dim=TRUNK_WIDTH)


TRUNK_WIDTH = 128  # channels of scattering-conv's trunk: its embedding

SCATTERING = ModelSpec(
    "scattering", partial(build_scattering, 2),
    "wavelet scattering transform (kymatio; J=2, 8 orientations) and a linear head: label-free fixed features, "
    "no pretraining", min_input_size=32,
    weights_help="none to load (the filters are fixed); a scattering run's model.pt is accepted")

SCATTERING_CONV = ModelSpec(
    "scattering-conv", partial(build_scattering_conv, 2),
    "wavelet scattering transform (kymatio; J=2, 8 orientations) and a small convolutional trunk (3 layers, "
    f"{TRUNK_WIDTH} wide) for --ssl to train on the pool: pretraining runs on the fixed transform's coefficients, "
    "computed once", min_input_size=32)
