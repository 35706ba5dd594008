"""Memory readout: propagation also reads the object's annotated frames (no training).

The propagation network sees only the neighbouring frame's mask and the first
round's reference feature. From a near-perfect mask, one step loses much of the
object's boundary: it re-segments instead of tracking, and a correction made on one
frame reaches the next frames only through that one neighbour mask.

The memory readout adds what video object segmentation models built on memory do
(STM, XMem, MiVOS): every frame the user annotated is kept as image features with the
object's label, and each propagated frame looks up, pixel by pixel, the most similar
pixels of those frames and of the frame it came from (a top-k readout on cosine
similarity). The result is a second foreground probability that follows the image's
own appearance; it is averaged with the propagation network's.

The features are the interaction network's encoder run on the image alone (strokes
and mask inputs zero), at strides 8 and 16, on each object's region of interest
resampled to :attr:`MemorySettings.feature_size`.
Nothing is learnt: the readout has no parameters beyond those of :class:`MemorySettings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MemorySettings:
    """How the memory readout reads and how much it counts.

    weight:
        share of the readout in the propagated probability (the network keeps
        ``1 - weight``).
    top_k:
        memory pixels each query pixel reads from.
    temperature:
        softmax temperature over the top-k cosine similarities.
    previous_frame:
        also read from the frame the propagation comes from (its label as just
        propagated), not only from the annotated frames.
    feature_size:
        side in pixels of the region of interest the features are computed on (the
        network's ROI is resampled to it): 128 costs less than half of the 192 px
        ROI and reads nearly as well (see the model card).
    min_cells:
        an object that covers fewer feature cells than this (its mean area over the
        memory frames; a cell is ``roi_size / feature_size * 8`` ROI pixels across)
        gets a proportionally smaller ``weight``: the readout is as coarse as the cells,
        and a small object's boundary is finer than that. 0: the full weight always.
    """

    weight: float = 0.5
    top_k: int = 20
    temperature: float = 0.05
    previous_frame: bool = True
    feature_size: int = 128
    min_cells: float = 16.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {self.weight}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.feature_size < 32:
            raise ValueError(f"feature_size must be at least 32 pixels, got {self.feature_size}")


@dataclass
class MemoryFrame:
    """One frame of an object's memory, in the object's region of interest there.

    feature: (C, s, s) unit-length feature vectors; label: (s, s) the object's share
    of each feature cell, in [0, 1].
    """

    feature: torch.Tensor
    label: torch.Tensor


@dataclass
class ObjectMemory:
    """An object's memory for one round: its annotated frames and the last frame read.

    The last frame is the one propagated just before (its index, features and region
    of interest); the next frame reads it with the object's label as propagated there.
    """

    annotated: list[MemoryFrame] = field(default_factory=list)
    last_frame: int | None = None
    last_feature: torch.Tensor | None = None
    last_box: Any = None


def label_cells(roi_mask: torch.Tensor, size: int) -> torch.Tensor:
    """The share of each of the ``size`` x ``size`` feature cells that a (1, 1, S, S) ROI mask covers."""
    return F.adaptive_avg_pool2d(roi_mask.float(), size)[0, 0]


def readout(query: torch.Tensor, memory: list[MemoryFrame], settings: MemorySettings) -> torch.Tensor:
    """The object's probability at each query cell, read from ``memory``.

    Parameters
    ----------
    query:
        (C, s, s) unit-length features of the frame being propagated.
    memory:
        The frames to read from (at least one).

    Returns
    -------
    torch.Tensor
        (s, s) probabilities: for each query cell, the softmax-weighted mean label of
        its ``top_k`` most similar memory cells.
    """
    if not memory:
        raise ValueError("the memory is empty")
    c, h, w = query.shape
    q = query.reshape(c, -1).T.float()  # (N, C)
    keys = torch.cat([m.feature.reshape(c, -1) for m in memory], dim=1).float()  # (C, M)
    labels = torch.cat([m.label.reshape(-1).to(query.device) for m in memory]).float()  # (M,)
    similarity = q @ keys
    k = min(settings.top_k, similarity.shape[1])
    top, index = similarity.topk(k, dim=1)
    weights = torch.softmax(top / settings.temperature, dim=1)
    return (weights * labels[index]).sum(dim=1).reshape(h, w)


def object_weight(memory: list[MemoryFrame], settings: MemorySettings) -> float:
    """The memory's weight for an object read from ``memory`` (see ``min_cells``)."""
    if settings.min_cells <= 0:
        return settings.weight
    cells = float(np.mean([float(m.label.sum()) for m in memory]))
    return settings.weight * min(1.0, cells / settings.min_cells)


def fuse(network: np.ndarray, memory: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * network + weight * memory`` as float32 (two probability maps)."""
    return ((1.0 - weight) * np.asarray(network, np.float32) + weight * np.asarray(memory, np.float32)).astype(np.float32)
