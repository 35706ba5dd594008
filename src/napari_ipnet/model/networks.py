"""Interaction and propagation networks, reference fusion, and the model pair."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import ENCODERS
from .blocks import Decoder


class NetOutput(NamedTuple):
    """Output of either network, in ROI coordinates.

    logits: (B, 2, S, S) background / foreground scores at the ROI size.
    aux: coarser logits [p5, p4, p3] (used by the training losses).
    feature: r5 of this input (the interaction network's becomes the reference).
    """

    logits: torch.Tensor
    aux: list[torch.Tensor]
    feature: torch.Tensor


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a model pair."""

    encoder: str = "efficientnet_lite0"
    decoder_channels: int = 64
    decoder_mid_channels: int = 256
    #: side of the square region of interest the networks see (the paper: 256); a
    #: model runs best at the size it was trained at
    roi_size: int = 256
    #: fuse each new round's reference with the earlier ones (the paper). False keeps
    #: the reference of an object's first round: a model whose fusion is undertrained
    #: propagates better from it (see weights/README.md)
    fuse_references: bool = True
    #: a second propagation network (``propagation_ending``) that the session uses for
    #: objects that may end; the first one then serves objects that persist
    ending_network: bool = False

    @classmethod
    def paper(cls) -> ModelConfig:
        """The published IPNet architecture (ResNet-50, 256-channel decoder, 256 px ROI)."""
        return cls(encoder="resnet50", decoder_channels=256, decoder_mid_channels=1024, roi_size=256)

    def to_dict(self) -> dict:
        return asdict(self)


class InteractionNet(nn.Module):
    """Segments one frame from (RGB, previous mask, positive map, negative map)."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        enc = ENCODERS[config.encoder]
        self.Encoder = enc([("conv1_m", True), ("conv1_p", False), ("conv1_n", False)])
        c5, c4, c3, c2 = enc.channels
        self.Decoder = Decoder((c5, c4, c3, c2), config.decoder_channels)

    def forward(self, rgb, prev_mask, positive, negative) -> NetOutput:
        r5, r4, r3, r2 = self.Encoder(rgb, prev_mask, positive, negative)
        logits, aux = self.Decoder(r5, r4, r3, r2, rgb.shape[-2:])
        return NetOutput(logits, aux, r5)


class ReferenceFusion(nn.Module):
    """Fuses this round's reference feature with the previous round's fused one.

    concat -> global average pool -> fc1 -> relu -> fc2 -> (C, 2) -> softmax over the
    pair -> weighted sum of the two references.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, channels)
        self.fc2 = nn.Linear(channels, 2 * channels)

    def forward(self, current: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        if previous is None:
            return current
        both = torch.cat([current, previous], dim=1)
        w = self.fc2(F.relu(self.fc1(both.mean(dim=(2, 3)))))
        w = torch.softmax(w.view(w.shape[0], -1, 2), dim=2)  # outputs 2c, 2c+1 -> channel c
        return current * w[..., 0, None, None] + previous * w[..., 1, None, None]


class PropagationNet(nn.Module):
    """Segments a frame from (RGB, its previous-round mask, the neighbour's mask, reference)."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        enc = ENCODERS[config.encoder]
        self.Encoder = enc([("conv1_m", True), ("conv1_x", False)])
        c5, c4, c3, c2 = enc.channels
        self.SEFA = ReferenceFusion(c5)
        self.Decoder = Decoder(
            (2 * c5, c4, c3, c2), config.decoder_channels, config.decoder_mid_channels
        )

    def forward(self, rgb, prev_round_mask, neighbour_mask, reference) -> NetOutput:
        r5, r4, r3, r2 = self.Encoder(rgb, prev_round_mask, neighbour_mask)
        x5 = torch.cat([reference, r5], dim=1)
        logits, aux = self.Decoder(x5, r4, r3, r2, rgb.shape[-2:])
        return NetOutput(logits, aux, r5)


class IPNetModel(nn.Module):
    """The interaction / propagation pair, in eval mode, on one device.

    Attributes
    ----------
    name: where the weights came from ("default", "ipnet-paper", a path, or "random").
    config: the architecture.
    """

    def __init__(self, config: ModelConfig = ModelConfig(), name: str = "random") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.interaction = InteractionNet(config)
        self.propagation = PropagationNet(config)
        self.propagation_ending = PropagationNet(config) if config.ending_network else None
        self.use_autocast = False

    @property
    def parts(self) -> tuple[str, ...]:
        """Names of the networks this model holds (the keys' prefixes in a checkpoint)."""
        return ("interaction", "propagation") + (("propagation_ending",) if self.propagation_ending is not None else ())

    @property
    def uses_objects_may_end(self) -> bool:
        """Whether the model acts on a session's ``objects_may_end``."""
        return bool(self.config.ending_network)

    def propagation_for(self, may_end: bool) -> PropagationNet:
        """The propagation network for objects that may end (``may_end``) or persist."""
        if may_end and self.propagation_ending is not None:
            return self.propagation_ending
        return self.propagation

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def image_features(self, rgb: torch.Tensor) -> torch.Tensor:
        """Unit-length image features of ROI crops, for the memory readout.

        The interaction network's encoder on ``rgb`` (B, 3, S, S) alone (its mask and
        stroke inputs zero); its stride-8 and stride-16 features, each scaled to unit
        length, side by side at stride 8 and scaled to unit length together:
        (B, C3 + C4, S / 8, S / 8).
        """
        zero = torch.zeros_like(rgb[:, :1])
        _, r4, r3, _ = self.interaction.Encoder(rgb, zero, zero, zero, stop_at_r4=True)
        r4 = F.interpolate(r4, size=r3.shape[-2:], mode="bilinear", align_corners=True)
        return F.normalize(torch.cat([F.normalize(r3, dim=1), F.normalize(r4, dim=1)], dim=1), dim=1)

    def autocast(self):
        """Mixed precision on CUDA when enabled, a no-op otherwise."""
        if self.use_autocast and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"IPNetModel(name={self.name!r}, encoder={self.config.encoder!r}, params={n/1e6:.1f}M, device={self.device})"


def build_model(config: ModelConfig | None = None, name: str = "random") -> IPNetModel:
    """A model pair with random weights (for training or tests), in eval mode."""
    return IPNetModel(config or ModelConfig(), name=name).eval()
