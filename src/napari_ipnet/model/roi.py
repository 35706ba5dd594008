"""Region of interest: box rule, warp into a fixed-size crop and back.

All sampling uses ``align_corners=True``: pixel centre 0 maps to -1 and pixel
centre ``size - 1`` maps to +1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ROI_SIZE = 256
MIN_SIDE = 128.0
ENLARGE = 1.5
MARGIN = 5.0
THRESHOLD = 0.49
#: version of the box rule above (recorded in session files): bump it when the rule
#: changes, so that a replayed session says its regions may differ
ROI_RULE_VERSION = 1


@dataclass(frozen=True)
class Box:
    """A box in pixel coordinates (inclusive pixel centres), may extend past the frame."""

    y0: float
    x0: float
    y1: float
    x1: float

    def clip_int(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Integer pixel bounds ``(y0, x0, y1, x1)`` (exclusive end) inside the frame."""
        y0 = max(0, int(np.floor(self.y0)))
        x0 = max(0, int(np.floor(self.x0)))
        y1 = min(height, int(np.ceil(self.y1)) + 1)
        x1 = min(width, int(np.ceil(self.x1)) + 1)
        return y0, x0, max(y0, y1), max(x0, x1)


Bounds = tuple[int, int, int, int]  # (y0, x0, y1, x1) of foreground pixels, inclusive


def map_bounds(maps: list[np.ndarray | None]) -> Bounds | None:
    """Inclusive bounds of the pixels >= 0.49 in the union of ``maps`` (None: none)."""
    union = None
    for m in maps:
        if m is None:
            continue
        fg = np.asarray(m) >= THRESHOLD
        union = fg if union is None else (union | fg)
    if union is None or not union.any():
        return None
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def union_bounds(bounds: list[Bounds | None]) -> Bounds | None:
    """The bounds covering every non-None element of ``bounds``."""
    bounds = [b for b in bounds if b is not None]
    if not bounds:
        return None
    return (min(b[0] for b in bounds), min(b[1] for b in bounds),
            max(b[2] for b in bounds), max(b[3] for b in bounds))


def box_around(bounds: Bounds | None, height: int, width: int) -> Box:
    """The ROI about foreground ``bounds`` (None: the whole frame).

    Each side is grown to at least 128 px, the box is enlarged 1.5x about its centre
    and clamped to ``[-5, size + 5]``.
    """
    if bounds is None:
        y0, x0, y1, x1 = 0.0, 0.0, float(height - 1), float(width - 1)
    else:
        y0, x0, y1, x1 = (float(v) for v in bounds)
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    h = max(y1 - y0, MIN_SIDE) * ENLARGE
    w = max(x1 - x0, MIN_SIDE) * ENLARGE
    y0, y1 = cy - h / 2.0, cy + h / 2.0
    x0, x1 = cx - w / 2.0, cx + w / 2.0
    y0, x0 = max(y0, -MARGIN), max(x0, -MARGIN)
    y1, x1 = min(y1, height + MARGIN), min(x1, width + MARGIN)
    return Box(y0, x0, y1, x1)


def roi_box(maps: list[np.ndarray | None], height: int, width: int) -> Box:
    """The ROI rule: bounding box of pixels >= 0.49 in the union of ``maps``.

    Empty union -> the whole frame. Each side is grown to at least 128 px, the box
    is enlarged 1.5x about its centre and clamped to ``[-5, size + 5]``.
    """
    return box_around(map_bounds(maps), height, width)


def object_box(
    evidence: list[np.ndarray | None],
    height: int,
    width: int,
    negatives: list[np.ndarray | None] = (),
) -> Box:
    """The region of interest of one object: the rule of the engine and of training.

    The box comes from the object's own evidence only (``evidence``: its previous
    mask, its positive strokes, its mask on the neighbouring frame), by
    :func:`roi_box`. Negative strokes (the background's, and the other objects'
    strokes, which are negatives for this one) never stretch the box while the
    object has evidence: the network sees them inside the crop where they fall near
    the object, and nowhere else. With several objects on a frame, each object's crop
    is therefore sized to that object, not to the spread of all strokes.

    Only an object without evidence on the frame takes its box from ``negatives``
    (and with neither, the whole frame), as :func:`roi_box` does.
    """
    return object_box_from_bounds(map_bounds(list(evidence)), height, width, lambda: map_bounds(list(negatives)))


def object_box_from_bounds(evidence: Bounds | None, height: int, width: int, negatives=None) -> Box:
    """:func:`object_box` from the bounds of the object's evidence (see :func:`map_bounds`).

    ``negatives``: the bounds of the negative strokes, or a callable giving them, used
    only when there is no evidence.
    """
    if evidence is None and negatives is not None:
        evidence = negatives() if callable(negatives) else negatives
    return box_around(evidence, height, width)


def _roi_grid(box: Box, height: int, width: int, size: int, device, dtype) -> torch.Tensor:
    """The (1, size, size, 2) sampling grid of a box: ROI pixel -> frame-normalised (x, y).

    What ``F.affine_grid`` gives for the box's axis-aligned affine map (to 1.5e-7),
    built from two ramps instead of a batched matrix product (which took 1-9 ms per
    192 px crop on a loaded 2-core machine, against 0.1 ms here).
    """
    sx = (box.x1 - box.x0) / max(width - 1, 1)
    tx = (box.x0 + box.x1) / max(width - 1, 1) - 1.0
    sy = (box.y1 - box.y0) / max(height - 1, 1)
    ty = (box.y0 + box.y1) / max(height - 1, 1) - 1.0
    ramp = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    gx = (ramp * sx + tx)[None, :].expand(size, size)
    gy = (ramp * sy + ty)[:, None].expand(size, size)
    return torch.stack([gx, gy], dim=-1)[None]


def warp_in(x: torch.Tensor, box: Box, size: int = ROI_SIZE) -> torch.Tensor:
    """Resample the box of ``x`` (1, C, H, W) to (1, C, size, size), zeros outside."""
    _, _, h, w = x.shape
    grid = _roi_grid(box, h, w, size, x.device, x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warp_out(
    p: torch.Tensor, box: Box, height: int, width: int
) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """Warp an ROI map ``p`` (1, C, s, s) back onto the frame, only inside the box.

    Returns the integer crop ``(y0, x0, y1, x1)`` in the frame and the map over that
    crop (1, C, y1 - y0, x1 - x0); the frame is zero outside it.
    """
    y0, x0, y1, x1 = box.clip_int(height, width)
    ys = torch.arange(y0, y1, device=p.device, dtype=p.dtype)
    xs = torch.arange(x0, x1, device=p.device, dtype=p.dtype)
    # frame pixel -> ROI normalised coordinate in [-1, 1]
    gy = (ys - box.y0) / max(box.y1 - box.y0, 1e-6) * 2.0 - 1.0
    gx = (xs - box.x0) / max(box.x1 - box.x0, 1e-6) * 2.0 - 1.0
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(p, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (y0, x0, y1, x1), out
