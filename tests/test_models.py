import pytest
import torch

from alplug.errors import UnknownNameError, UsageError
from alplug.models import ImageClassifier, ModelSpec, ModelWeightsError, available_models


@pytest.mark.parametrize("arch", sorted(n for n, e in available_models().items() if isinstance(e.load(), ModelSpec)))
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_every_model_takes_any_channel_count_and_small_images(arch, channels):
    model = ImageClassifier(arch, in_channels=channels, num_classes=7).eval()
    x = torch.randint(0, 256, (2, channels, 8, 8), dtype=torch.uint8)  # 8 px: below SqueezeNet's 17 px minimum
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model(x.float() / 255).shape == (2, 7)
        assert model.embed(x).shape == (2, model.embedding_dim)


def test_uint8_and_float_inputs_give_the_same_logits():
    model = ImageClassifier("resnet18", 1, 3).eval()
    x = torch.randint(0, 256, (2, 1, 12, 12), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.float() / 255))


def test_small_inputs_are_upsampled_and_image_size_is_honoured():
    model = ImageClassifier("resnet18", 1, 3)
    assert model.prepare(torch.zeros(1, 1, 8, 8)).shape[-2:] == (32, 32)
    assert model.prepare(torch.zeros(1, 1, 40, 40)).shape[-2:] == (40, 40)
    sized = ImageClassifier("resnet18", 1, 3, image_size=20)
    assert sized.prepare(torch.zeros(1, 1, 8, 8)).shape[-2:] == (20, 20)


def test_dropout_head_makes_resnet_stochastic_in_train_mode():
    x = torch.rand(4, 1, 16, 16)
    plain = ImageClassifier("resnet18", 1, 5)
    assert plain.dropout_rate == 0.0
    with_dropout = ImageClassifier("resnet18", 1, 5, dropout=0.5)
    assert with_dropout.dropout_rate == 0.5
    with_dropout.train()
    for m in with_dropout.modules():  # freeze BatchNorm so only dropout can differ
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        assert not torch.allclose(with_dropout(x), with_dropout(x))
        with_dropout.eval()
        torch.testing.assert_close(with_dropout(x), with_dropout(x))


def test_squeezenet_keeps_its_dropout_but_not_its_final_relu():
    model = ImageClassifier("squeezenet1_1", 3, 4)
    assert model.dropout_rate == 0.5
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.head)


def test_local_state_dict_is_loaded_and_adapted(tmp_path):
    import torchvision

    torch.manual_seed(0)
    stock = torchvision.models.resnet18()
    torch.save(stock.state_dict(), tmp_path / "r18.pth")
    model = ImageClassifier("resnet18", in_channels=1, num_classes=4, weights=str(tmp_path / "r18.pth"))
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, stock.layer1[0].conv1.weight)
    # grayscale: the RGB filters are summed into one channel
    torch.testing.assert_close(model.backbone.conv1.weight, stock.conv1.weight.sum(dim=1, keepdim=True))
    assert model.head[-1].out_features == 4
    torch.testing.assert_close(model.mean.flatten(), torch.tensor([0.449]), atol=1e-3, rtol=0)


def test_alplug_checkpoint_can_seed_a_new_model(tmp_path):
    first = ImageClassifier("squeezenet1_1", 1, 10)
    torch.save(first.state_dict(), tmp_path / "model.pt")
    second = ImageClassifier("squeezenet1_1", 1, 3, weights=str(tmp_path / "model.pt"))
    torch.testing.assert_close(second.backbone[3].squeeze.weight, first.backbone[3].squeeze.weight)


def test_weights_of_another_architecture_are_refused(tmp_path):
    import torchvision

    torch.save(torchvision.models.squeezenet1_1().state_dict(), tmp_path / "sq.pth")
    with pytest.raises(ModelWeightsError, match="do not fit resnet18"):
        ImageClassifier("resnet18", 3, 2, weights=str(tmp_path / "sq.pth"))


def test_weights_file_is_loaded_safely(tmp_path):
    import os
    import pickle

    # A pickle that names an arbitrary callable: weights_only loading must refuse it.
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"conv1.weight": os.system}))
    with pytest.raises(ModelWeightsError, match="cannot read weights file"):
        ImageClassifier("resnet18", 3, 2, weights=str(tmp_path / "evil.pt"))


def test_missing_weights_file_and_unknown_weights_name(tmp_path):
    with pytest.raises(ModelWeightsError, match="does not exist"):
        ImageClassifier("resnet18", 3, 2, weights=str(tmp_path / "nope.pth"))
    with pytest.raises(UnknownNameError, match="IMAGENET1K_V1"):
        ImageClassifier("resnet18", 3, 2, weights="IMAGENET2K")


def test_named_weights_that_cannot_download_say_what_to_do(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(self, *args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.DEFAULT), "get_state_dict", offline)
    with pytest.raises(ModelWeightsError, match="pass its path to --weights"):
        ImageClassifier("resnet18", 3, 2, weights="DEFAULT")


def test_bad_model_arguments():
    with pytest.raises(UnknownNameError, match="resnet18"):
        ImageClassifier("resnet19", 1, 2)
    with pytest.raises(UsageError, match="dropout"):
        ImageClassifier("resnet18", 1, 2, dropout=1.5)


def test_the_meta_device_build_catches_foreign_weights_without_building_or_drawing_random_numbers(tmp_path):
    import gc

    import torch
    import torchvision

    from alplug.models import build_on_meta_device

    torch.save(torchvision.models.squeezenet1_1().state_dict(), tmp_path / "sq.pth")
    built = []
    real_init = ImageClassifier.__init__

    def remember(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append(next(self.parameters()).device.type)

    state = torch.get_rng_state()
    try:
        ImageClassifier.__init__ = remember
        build_on_meta_device("resnet18", in_channels=1, num_classes=3)
    finally:
        ImageClassifier.__init__ = real_init
        gc.collect()
    assert torch.equal(state, torch.get_rng_state())  # seeded runs are unaffected by the check
    assert built == ["meta"]  # nothing was built for real
    with pytest.raises(ModelWeightsError, match="do not fit resnet18"):
        build_on_meta_device("resnet18", in_channels=1, num_classes=3, weights=str(tmp_path / "sq.pth"))


# ---- --features-from: the head reads an earlier part of the backbone ------------------------------------------


def _pooled_output_of(model, part, x):
    seen = {}
    handle = model.backbone.get_submodule(part).register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    with torch.no_grad():
        model.embed(x)
    handle.remove()
    return seen["o"].mean(dim=(2, 3))


def test_features_from_cuts_the_backbone_and_the_head_reads_that_part():
    torch.manual_seed(0)
    whole = ImageClassifier("resnet18", 1, 10, image_size=16).eval()
    cut = ImageClassifier("resnet18", 1, 10, image_size=16, features_from="layer3").eval()
    assert cut.embedding_dim == 256 and cut.head[-1].in_features == 256
    assert not any(k.startswith("backbone.layer4") for k in cut.state_dict())
    cut.backbone.load_state_dict({k: v for k, v in whole.backbone.state_dict().items()
                                  if k in cut.backbone.state_dict()})
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(cut.embed(x), _pooled_output_of(whole, "layer3", x))
        assert cut(x).shape == (3, 10)


def test_features_from_cuts_a_whole_pretrained_backbone_after_loading_it(tmp_path):
    torch.manual_seed(1)
    pretrained = ImageClassifier("resnet18", 1, 10, image_size=16)
    path = tmp_path / "simclr.pt"
    torch.save({f"backbone.{k}": v for k, v in pretrained.backbone.state_dict().items()}, path)
    cut = ImageClassifier("resnet18", 1, 4, image_size=16, backbone_file=str(path), features_from="layer2",
                          freeze_backbone=True).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(cut.embed(x), _pooled_output_of(pretrained.eval(), "layer2", x))
    assert not any(p.requires_grad for p in cut.backbone.parameters())


def test_features_from_several_parts_gives_the_head_their_pooled_outputs_side_by_side(tmp_path):
    torch.manual_seed(2)
    whole = ImageClassifier("resnet18", 1, 10, image_size=16).eval()
    path = tmp_path / "simclr.pt"
    torch.save({f"backbone.{k}": v for k, v in whole.backbone.state_dict().items()}, path)
    # named in any order, read in the backbone's order
    cut = ImageClassifier("resnet18", 1, 10, image_size=16, backbone_file=str(path),
                          features_from="layer3, layer1,layer2").eval()
    assert cut.embedding_dim == 64 + 128 + 256 and cut.head[-1].in_features == 448
    assert not any(k.startswith("backbone.layer4") for k in cut.state_dict())
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = torch.cat([_pooled_output_of(whole, p, x) for p in ("layer1", "layer2", "layer3")], dim=1)
        torch.testing.assert_close(cut.embed(x), expected)
        assert cut(x).shape == (3, 10)


@pytest.mark.parametrize("parts", ["layer2,layer2", "layer2,", ","])
def test_features_from_an_empty_or_repeated_part_is_a_usage_error(parts):
    with pytest.raises(UsageError, match="give part names separated by commas, each once"):
        ImageClassifier("resnet18", 1, 10, features_from=parts)


def test_features_from_a_squeezenet_part_pools_its_map():
    cut = ImageClassifier("squeezenet1_1", 1, 3, features_from="9")
    assert cut.embedding_dim == 384 and cut(torch.rand(2, 1, 32, 32)).shape == (2, 3)


def test_features_from_an_unknown_part_names_the_parts():
    with pytest.raises(UsageError, match="has no part by that name; its parts: conv1, bn1, .*layer4"):
        ImageClassifier("resnet18", 1, 10, features_from="layer5")


def _out_of_order_spec(same_shapes: bool) -> ModelSpec:
    from torch import nn

    from alplug.models import ModelParts

    class OutOfOrder(nn.Module):
        """Registers its parts in another order than it runs them."""

        def __init__(self, channels):
            super().__init__()
            self.second = nn.Conv2d(4 if same_shapes else 8, 4, 3, padding=1)
            self.first = nn.Conv2d(channels, 4 if same_shapes else 8, 3, padding=1)

        def forward(self, x):
            return self.second(self.first(x)).mean(dim=(2, 3))

    return ModelSpec(f"out-of-order-{same_shapes}",
                     lambda c, n, w: ModelParts(OutOfOrder(c), nn.Linear(4, n), 4), min_input_size=8)


@pytest.mark.parametrize("same_shapes", [False, True])
def test_features_from_refuses_a_backbone_whose_parts_run_in_another_order(same_shapes):
    with pytest.raises(UsageError, match="one after another"):
        ImageClassifier(_out_of_order_spec(same_shapes), 4, 3, features_from="first")
