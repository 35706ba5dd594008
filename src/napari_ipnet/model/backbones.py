"""Encoders with extra one-channel inputs, in plain torch.

Both encoders take an RGB image in [0, 1] plus a number of one-channel maps (mask,
scribbles, neighbour mask). The RGB is normalised inside the encoder by the ``mean``
and ``std`` buffers; each extra map has its own stride-2 convolution whose output is
added to the stem convolution of the RGB before the first BatchNorm. They return the
features ``(r5, r4, r3, r2)`` at strides 32, 16, 8 and 4 (``stop_at_r4=True``: r5 is
not computed and is None).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always uses its running statistics and never updates them.

    It keeps the parameter names of :class:`torch.nn.BatchNorm2d`, so checkpoints of
    either load; ``train()`` has no effect on it.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps)
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):  # noqa: D102 - always eval
        return super().train(False)


class _ExtraInputs(nn.Module):
    """RGB normalisation buffers and the per-map stem convolutions."""

    def _init_inputs(self, extra: Sequence[tuple[str, bool]], stem_channels: int, kernel: int):
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.extra_names = [name for name, _ in extra]
        for name, bias in extra:
            setattr(
                self,
                name,
                nn.Conv2d(1, stem_channels, kernel, stride=2, padding=kernel // 2, bias=bias),
            )

    def _stem(self, rgb: torch.Tensor, maps: Sequence[torch.Tensor], stem: nn.Conv2d):
        if len(maps) != len(self.extra_names):
            raise ValueError(f"expected {len(self.extra_names)} extra maps, got {len(maps)}")
        x = stem((rgb - self.mean) / self.std)
        for name, m in zip(self.extra_names, maps):
            x = x + getattr(self, name)(m)
        return x


class Bottleneck(nn.Module):
    """ResNet bottleneck; the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out)
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), FrozenBatchNorm2d(out)
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(y + skip)


def _resnet_stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Encoder(_ExtraInputs):
    """ResNet-50 in the paper's layout (``conv1, bn1, res2..res5``)."""

    channels = (2048, 1024, 512, 256)

    def __init__(self, extra: Sequence[tuple[str, bool]]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self._init_inputs(extra, 64, 7)
        self.bn1 = FrozenBatchNorm2d(64)
        self.res2 = _resnet_stage(64, 64, 3, 1)
        self.res3 = _resnet_stage(256, 128, 4, 2)
        self.res4 = _resnet_stage(512, 256, 6, 2)
        self.res5 = _resnet_stage(1024, 512, 3, 2)

    def forward(self, rgb: torch.Tensor, *maps: torch.Tensor, stop_at_r4: bool = False):
        x = F.relu(self.bn1(self._stem(rgb, maps, self.conv1)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        r2 = self.res2(x)
        r3 = self.res3(r2)
        r4 = self.res4(r3)
        r5 = None if stop_at_r4 else self.res5(r4)
        return r5, r4, r3, r2


def _tensor_state(t: torch.Tensor) -> tuple:
    """What changes when a tensor is replaced or written in place."""
    try:
        version = t._version
    except RuntimeError:  # an inference tensor keeps no version counter (and cannot be written later)
        version = None
    return t.data_ptr(), version, t.dtype


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (ReLU6, no squeeze-excitation)."""

    #: without autograd, run each convolution with its BatchNorm folded in (see
    #: :meth:`_conv_bn`); off only to measure what the folding saves (benchmarks/speed.py)
    fold_batchnorm: bool = True

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int):
        super().__init__()
        hidden = in_channels * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = FrozenBatchNorm2d(hidden, eps=1e-3)
        self._depthwise_conv = nn.Conv2d(
            hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False
        )
        self._bn1 = FrozenBatchNorm2d(hidden, eps=1e-3)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = FrozenBatchNorm2d(out_channels, eps=1e-3)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._conv_bn(y, self._expand_conv, self._bn0))
        y = F.relu6(self._conv_bn(y, self._depthwise_conv, self._bn1))
        y = self._conv_bn(y, self._project_conv, self._bn2)
        return x + y if self.residual else y

    def _conv_bn(self, x: torch.Tensor, conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> torch.Tensor:
        """``bn(conv(x))``; without autograd, as one convolution with the BatchNorm folded in.

        The folded weights are cached per (conv, bn) and made again whenever a tensor of
        either changes (loading weights, moving device), so parameters and checkpoints
        keep the ImageNet layout and training is unaffected.
        """
        if torch.is_grad_enabled() or not self.fold_batchnorm:
            return bn(conv(x))
        key = tuple(_tensor_state(t) for t in (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var))
        cache = self.__dict__.setdefault("_folded", {})
        entry = cache.get(id(conv))
        if entry is None or entry[0] != key:
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            weight = (conv.weight * scale.view(-1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
            entry = cache[id(conv)] = (key, weight, bn.bias - bn.running_mean * scale)
        return F.conv2d(x, entry[1], entry[2], conv.stride, conv.padding, conv.dilation, conv.groups)


# (expand, kernel, stride, out_channels, repeats) of EfficientNet-Lite0
_LITE0_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
# indices of the last block at stride 4, 8, 16, 32
_LITE0_TAPS = (2, 4, 10, 15)


class EfficientNetLite0Encoder(_ExtraInputs):
    """EfficientNet-Lite0 trunk (parameter names of the ImageNet checkpoint).

    Features: r2 = 24 ch (stride 4), r3 = 40 (8), r4 = 112 (16), r5 = 320 (32).
    The ImageNet head (``_conv_head``, ``_fc``) is not part of the encoder.
    """

    channels = (320, 112, 40, 24)

    def __init__(self, extra: Sequence[tuple[str, bool]]) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._init_inputs(extra, 32, 3)
        self._bn0 = FrozenBatchNorm2d(32, eps=1e-3)
        blocks = []
        c = 32
        for expand, kernel, stride, out, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c, out, expand, kernel, stride if i == 0 else 1))
                c = out
        self._blocks = nn.ModuleList(blocks)

    def forward(self, rgb: torch.Tensor, *maps: torch.Tensor, stop_at_r4: bool = False):
        x = F.relu6(self._bn0(self._stem(rgb, maps, self._conv_stem)))
        feats = []
        last = _LITE0_TAPS[2] if stop_at_r4 else len(self._blocks) - 1
        for i, block in enumerate(self._blocks[: last + 1]):
            x = block(x)
            if i in _LITE0_TAPS:
                feats.append(x)
        r2, r3, r4, r5 = feats if not stop_at_r4 else feats + [None]
        return r5, r4, r3, r2

    def load_imagenet(self, path) -> int:
        """Copy the ImageNet weights of ``efficientnet-lite0-*.pth`` into this trunk.

        Returns the number of tensors copied. Extra-map convolutions stay as initialised.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.state_dict()
        copied = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in copied and k.startswith(("_blocks", "_bn0", "_conv_stem"))]
        if missing:
            raise ValueError(f"ImageNet checkpoint {path} lacks {len(missing)} tensors, e.g. {missing[:3]}")
        self.load_state_dict(copied, strict=False)
        return len(copied)


ENCODERS = {"resnet50": ResNet50Encoder, "efficientnet_lite0": EfficientNetLite0Encoder}
