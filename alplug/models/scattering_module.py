"""The scattering model's backbone as a torch module (imported only when a model is built: torch is slow to load)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError

ORIENTATIONS = 8  # kymatio's L


def coefficients(scales: int, orientations: int = ORIENTATIONS) -> int:
    """Coefficients per channel of a scattering transform of order 2: 1 + J·L + L²·J(J-1)/2."""
    return 1 + scales * orientations + orientations ** 2 * scales * (scales - 1) // 2


def _scattering_class():
    """kymatio's 2-D torch frontend, imported alone: ``kymatio.torch`` also imports the 3-D transform, which fails
    on SciPy 1.15 and later (``scipy.special.sph_harm`` is gone) and which alplug does not use."""
    try:
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D
    except ImportError as exc:
        raise UsageError(f"the scattering model needs kymatio ({exc}); install it with `pip install kymatio`") \
            from None
    return ScatteringTorch2D


class ScatteringBackbone(nn.Module):
    """Images (N, C, H, W) to log-scattering coefficients (N, C·K, H/2^J, W/2^J). No parameters, no state: kymatio
    builds its filters for one input shape, so one transform is kept per shape (and device) met."""

    def __init__(self, scales: int):
        super().__init__()
        self.scales = scales
        self._transforms: dict = {}

    def _transform(self, height: int, width: int, device):
        key = (height, width, str(device))
        if key not in self._transforms:
            if min(height, width) < 2 ** self.scales:
                raise UsageError(f"the scattering model with {self.scales} scales needs images of at least "
                                 f"{2 ** self.scales} px; pass a larger --image-size")
            self._transforms[key] = _scattering_class()(J=self.scales, shape=(height, width), L=ORIENTATIONS).to(device)
        return self._transforms[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if x.device.type == "meta":  # shapes only (alplug's output check): nothing is computed there
            return x.new_empty(n, c * coefficients(self.scales), h // 2 ** self.scales, w // 2 ** self.scales)
        s = self._transform(h, w, x.device)(x.float().contiguous())  # (N, C, K, h', w')
        # log(1 + 10·|S|) brings the orders' magnitudes together; the sign is kept for order 0, a local mean of
        # inputs normalised to about [-1, 1] (orders 1 and 2 are moduli)
        return (torch.sign(s) * torch.log1p(s.abs() * 10.0)).flatten(1, 2)

    def __getstate__(self):  # the transforms are rebuilt on use: pickles and deep copies stay small
        state = self.__dict__.copy()
        state["_transforms"] = {}
        return state


class CoefficientStandardize(nn.Module):
    """(x - mean) / std per coefficient (channel of the map), over the images and positions of the training set:
    fitted before each fit by ``alplug.estimators.FitHeadStatistics``. The log-coefficients' scales differ by
    coefficient, and a head trained by Adam on them as they are learned less (docs/low-budget.md's ablation). Per
    coefficient, not per position: one statistic per channel of the map is stable from a few labeled images, one
    per position was not."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    @torch.no_grad()
    def fit_statistics(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(dim=(0, 2, 3), keepdim=True).to(self.mean))
        self.std.copy_(features.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6).to(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ScatteringConvBackbone(nn.Module):
    """The scattering transform (``front``: fixed, no parameters) and a small convolutional ``trunk`` over its
    coefficient maps, ending in one pooled vector (N, width, 1, 1).

    Why a trunk of our own: no library has a learnable network over scattering coefficients sized for a CPU. The
    front being fixed is what makes self-supervised training of the trunk cheap: ``alplug.ssl`` computes the
    front's coefficients of a few fixed views of each pool image once and trains the trunk on them, instead of
    running the transform at every step (docs/low-budget.md). The trunk starts by standardising each coefficient
    (BatchNorm without affine parameters: during pretraining it learns the pool's statistics)."""

    def __init__(self, scales: int, in_channels: int, width: int):
        super().__init__()
        k = in_channels * coefficients(scales)
        self.front = ScatteringBackbone(scales)

        def block(cin: int, cout: int, size: int) -> list:
            return [nn.Conv2d(cin, cout, size, padding=size // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.trunk = nn.Sequential(nn.BatchNorm2d(k, affine=False), *block(k, width, 1), *block(width, width, 3),
                                   *block(width, width, 3), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.front(x))
