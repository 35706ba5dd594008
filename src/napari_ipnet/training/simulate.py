"""Fast simulated user corrections for training (a cheap cousin of the evaluation robot).

For each of foreground and background, the error region is opened with the adaptive
disk of the DAVIS robot and medial-axis skeletonised; components of at least 4 skeleton pixels,
dilated by one pixel, become the stroke maps. The evaluation robot additionally keeps
only the longest path of each component; the full skeleton here is a slightly richer
stroke, which is harmless for training and much cheaper.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import medial_axis

from ..evaluation.robot import disk_opening


def _medial_axis_fast(mask: np.ndarray, seed: int, max_side: int = 160) -> np.ndarray:
    """Medial axis of ``mask``, computed on a subsampled grid for large regions.

    ``seed`` fixes the tie-breaking (scikit-image draws an unseeded one otherwise, and
    training would not be repeatable).
    """
    f = int(np.ceil(max(mask.shape) / max_side))
    if f <= 1:
        return medial_axis(mask, rng=seed)
    small = medial_axis(mask[::f, ::f], rng=seed)
    out = np.zeros_like(mask)
    ys, xs = np.nonzero(small)
    out[ys * f, xs * f] = True
    out = ndimage.binary_dilation(out, iterations=max(1, f // 2)) & mask
    return out


def _strokes(region: np.ndarray, rng, keep_prob: float = 1.0) -> np.ndarray:
    area = int(region.sum())
    out = np.zeros_like(region, dtype=bool)
    if area == 0:
        return out
    radius = min(0.2 * np.sqrt(area) / 2.0, 16.0)
    opened = region
    while radius >= 1:
        opened = disk_opening(region, radius)
        if opened.any():
            break
        radius *= 0.9
    if not opened.any():
        opened = region
    skel = _medial_axis_fast(opened, int(rng.integers(2**31)))
    lab, n = ndimage.label(skel, structure=np.ones((3, 3)))
    if n == 0:
        return out
    sizes = ndimage.sum(skel, lab, index=np.arange(1, n + 1))
    keep = [i + 1 for i, s in enumerate(sizes) if s >= 4 and (rng.random() < keep_prob)]
    if not keep and sizes.max() >= 1:
        keep = [int(np.argmax(sizes)) + 1]
    out = np.isin(lab, keep)
    return ndimage.binary_dilation(out)


def _strokes_cropped(region: np.ndarray, rng, keep_prob: float) -> np.ndarray:
    """:func:`_strokes` computed on the bounding box of ``region`` only (same result, faster)."""
    out = np.zeros(region.shape, dtype=bool)
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return out
    cols = np.flatnonzero(region.any(axis=0))
    y0, y1 = max(rows[0] - 2, 0), rows[-1] + 3
    x0, x1 = max(cols[0] - 2, 0), cols[-1] + 3
    out[y0:y1, x0:x1] = _strokes(region[y0:y1, x0:x1], rng, keep_prob)
    return out


def simulate_scribbles(gt: np.ndarray, pred: np.ndarray, rng, work_side: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative stroke maps correcting ``pred`` towards ``gt`` (bool maps).

    Large frames are processed on a grid subsampled to about ``work_side`` pixels and
    the strokes scaled back (they come out ``f`` pixels wide).
    """
    gt = np.asarray(gt, bool)
    pred = np.asarray(pred, bool)
    h, w = gt.shape
    f = max(1, int(round(max(h, w) / work_side)))
    g, p = gt[::f, ::f], pred[::f, ::f]
    pos = _strokes_cropped(g & ~p, rng, keep_prob=0.8)
    neg = _strokes_cropped(~g & p, rng, keep_prob=0.8)
    if f > 1:
        up = np.ones((f, f), bool)
        pos = np.kron(pos, up)[:h, :w] & gt
        neg = np.kron(neg, up)[:h, :w] & ~gt
    return pos, neg
