"""Image classifiers: models are plugins in the ``alplug.models`` entry-point group, like strategies.

Every model is split into ``backbone`` (image -> features) and ``head`` (features -> logits). The split
lets embeddings and MC dropout reuse one backbone pass. ``contract.py`` is the contract a model plugin
follows, ``torchvision_models.py`` alplug's own models, ``registry.py`` the lookup, ``module.py`` the
``nn.Module`` skorch builds from a spec.
"""
from .module import ImageClassifier, build_on_meta_device
from .registry import (GROUP, OPTIONAL_FAMILIES, ModelLoadError, available_models, discover_models, get_model_spec,
                       model_origin)
from .contract import (IMAGENET_MEAN, IMAGENET_STD, ModelFamily, ModelParts, ModelSpec, ModelWeightsError,
                       adapt_first_conv, backbone_part, fit_state_dict, load_backbone_weights, load_state_dict_file,
                       looks_like_a_path)

__all__ = ["GROUP", "IMAGENET_MEAN", "IMAGENET_STD", "OPTIONAL_FAMILIES", "ImageClassifier", "ModelFamily",
           "ModelLoadError", "ModelParts", "ModelSpec", "ModelWeightsError", "adapt_first_conv", "available_models",
           "backbone_part", "build_on_meta_device", "fit_state_dict", "load_backbone_weights",
           "discover_models", "get_model_spec", "load_state_dict_file", "looks_like_a_path", "model_origin"]
