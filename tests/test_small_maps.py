"""Convolutions over 1x1 maps (alplug.models.small_maps): the same values and gradients as PyTorch's own."""
import pytest
import torch
from torch import nn

from alplug.models import ImageClassifier
from alplug.models import small_maps
from alplug.models.small_maps import SmallMapConv2d, use_small_map_convolutions


def _kernels_used(monkeypatch) -> list:
    """From now on, the kernel size of every convolution computed (a spy on ``F.conv2d``)."""
    kernels, real = [], small_maps.F.conv2d

    def spy(x, weight, *args, **kwargs):
        kernels.append(tuple(weight.shape[2:]))
        return real(x, weight, *args, **kwargs)

    monkeypatch.setattr(small_maps.F, "conv2d", spy)
    return kernels


def _pair(**kwargs):
    torch.manual_seed(0)
    stock = nn.Conv2d(**kwargs)
    ours = nn.Conv2d(**kwargs)
    ours.load_state_dict(stock.state_dict())
    assert use_small_map_convolutions(ours) == 1
    return stock, ours


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=8, out_channels=6, kernel_size=3, padding=1),
    dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, stride=2, bias=False),
    dict(in_channels=8, out_channels=6, kernel_size=5, padding=2),
    dict(in_channels=8, out_channels=6, kernel_size=(3, 5), padding=(1, 2)),
    dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, groups=2),
    dict(in_channels=8, out_channels=6, kernel_size=3, padding=2, dilation=2),
])
def test_one_by_one_maps_match_pytorch_values_and_gradients(kwargs, monkeypatch):
    stock, ours = _pair(**kwargs)
    x = torch.randn(5, 8, 1, 1)
    xs, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    ys = stock(xs)
    kernels = _kernels_used(monkeypatch)
    yo = ours(xo)
    assert kernels == [(1, 1)]
    torch.testing.assert_close(yo, ys)
    g = torch.randn_like(ys)
    ys.backward(g)
    yo.backward(g)
    torch.testing.assert_close(xo.grad, xs.grad)
    torch.testing.assert_close(ours.weight.grad, stock.weight.grad)
    if stock.bias is not None:
        torch.testing.assert_close(ours.bias.grad, stock.bias.grad)


@pytest.mark.parametrize("shape", [(2, 2), (1, 3), (4, 4)])
def test_larger_maps_take_pytorchs_path(shape, monkeypatch):
    stock, ours = _pair(in_channels=4, out_channels=4, kernel_size=3, padding=1)
    x = torch.randn(3, 4, *shape)
    expected = stock(x)
    kernels = _kernels_used(monkeypatch)
    assert torch.equal(ours(x), expected)
    assert kernels == [ours.kernel_size]


def test_a_kernel_that_never_meets_the_pixel_is_left_to_pytorch(monkeypatch):
    stock, ours = _pair(in_channels=4, out_channels=4, kernel_size=3, padding=3, stride=5)
    x = torch.randn(2, 4, 1, 1)
    expected = stock(x)
    kernels = _kernels_used(monkeypatch)
    assert torch.equal(ours(x), expected)
    assert kernels == [ours.kernel_size]


def test_conv2d_subclasses_keep_their_own_forward():
    class Padded(nn.Conv2d):
        pass

    model = nn.Sequential(nn.Conv2d(3, 4, 3), Padded(4, 4, 3))
    assert use_small_map_convolutions(model) == 1
    assert type(model[0]) is SmallMapConv2d and type(model[1]) is Padded


@pytest.mark.parametrize("arch", ["resnet18", "squeezenet1_1"])
def test_models_keep_their_state_dict_and_outputs(arch):
    """A model's weights load into torchvision's stock layers and give the same logits."""
    torch.manual_seed(0)
    ours = ImageClassifier(arch, 1, 10, image_size=None).eval()
    assert any(isinstance(m, SmallMapConv2d) for m in ours.backbone.modules())
    stock = ImageClassifier(arch, 1, 10, image_size=None).eval()
    for layer in stock.backbone.modules():
        if type(layer) is SmallMapConv2d:
            layer.__class__ = nn.Conv2d
    stock.load_state_dict(ours.state_dict())
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(ours(x), stock(x))
