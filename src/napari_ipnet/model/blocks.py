"""Decoder building blocks shared by both networks: ResBlock, Refine, Decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample(x: torch.Tensor, scale: float | None = None, size=None) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` (the semantics the method was trained with)."""
    return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=True)


class ResBlock(nn.Module):
    """Pre-activation residual block without normalisation.

    ``out = skip(x) + conv2(relu(conv1(relu(x))))``; the skip is the identity or a
    3x3 convolution named ``downsample`` when the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels != out_channels:
            self.downsample = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        else:
            self.downsample = None
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.relu(x))
        r = self.conv2(F.relu(r))
        skip = x if self.downsample is None else self.downsample(x)
        return skip + r


class Refine(nn.Module):
    """Refinement module: ``ResMM(ResFS(skip) + upsample_x2(coarser))``."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.ResFS = ResBlock(in_channels, channels)
        self.ResMM = ResBlock(channels, channels)

    def forward(self, skip: torch.Tensor, coarser: torch.Tensor) -> torch.Tensor:
        s = self.ResFS(skip)
        return self.ResMM(s + upsample(coarser, size=s.shape[-2:]))


class Decoder(nn.Module):
    """Coarse-to-fine decoder with a 2-class head at every scale.

    Parameters
    ----------
    in_channels:
        Channels of (r5, r4, r3, r2). r5 may already be a concatenation (propagation).
    channels:
        Width of the decoder (256 in the paper).
    mid_channels:
        When given, r5 goes through two blocks (``ResFM1``: in->mid, ``ResFM2``:
        mid->channels) as in the propagation network; otherwise one block ``ResFM``.
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int, int],
        channels: int = 256,
        mid_channels: int | None = None,
    ) -> None:
        super().__init__()
        c5, c4, c3, c2 = in_channels
        self.two_stage = mid_channels is not None
        if self.two_stage:
            self.ResFM1 = ResBlock(c5, mid_channels)
            self.ResFM2 = ResBlock(mid_channels, channels)
        else:
            self.ResFM = ResBlock(c5, channels)
        self.RF4 = Refine(c4, channels)
        self.RF3 = Refine(c3, channels)
        self.RF2 = Refine(c2, channels)
        self.pred5 = nn.Conv2d(channels, 2, 3, padding=1)
        self.pred4 = nn.Conv2d(channels, 2, 3, padding=1)
        self.pred3 = nn.Conv2d(channels, 2, 3, padding=1)
        self.pred2 = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, r5, r4, r3, r2, out_size) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return full-size logits (B, 2, H, W) and the coarser logits [p5, p4, p3]."""
        if self.two_stage:
            m5 = self.ResFM2(self.ResFM1(r5))
        else:
            m5 = self.ResFM(r5)
        m4 = self.RF4(r4, m5)
        m3 = self.RF3(r3, m4)
        m2 = self.RF2(r2, m3)
        p5 = self.pred5(F.relu(m5))
        p4 = self.pred4(F.relu(m4))
        p3 = self.pred3(F.relu(m3))
        p2 = self.pred2(F.relu(m2))
        return upsample(p2, size=out_size), [p5, p4, p3]
