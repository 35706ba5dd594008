"""Region (J) and boundary (F) accuracy of label maps, as in the DAVIS benchmarks.

- **J** is the region Jaccard index (IoU) of one object on one frame; 1 when the object
  is absent from both the ground truth and the prediction.
- **F** is the boundary F-measure: boundary pixels of the prediction within
  ``ceil(0.008 * image diagonal)`` pixels of a ground-truth boundary pixel (precision)
  and the other way round (recall). The boundary map and the empty-boundary rules follow
  the DAVIS evaluation; the dilation by a disk of that radius is computed exactly as a
  nearest-neighbour query between boundary pixels (``d <= r``), for all frames at once.

All functions take (T, H, W) stacks (a single (H, W) frame is accepted too) and are
vectorised over frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

BOUNDARY_TOLERANCE = 0.008


def _as_stack(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected masks shaped (T, H, W) or (H, W), got {a.shape}")
    return a


def _check_pair(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = _as_stack(gt), _as_stack(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    return gt, pred


def boundary_tolerance(height: int, width: int, tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """Tolerance of the boundary measure in pixels: ``ceil(0.008 * diagonal)``."""
    return int(math.ceil(tolerance * math.hypot(height, width)))


def _count(masks: np.ndarray) -> np.ndarray:
    """Number of True pixels per frame of a bool stack (a loop is faster than axis=)."""
    return np.fromiter((np.count_nonzero(m) for m in masks), np.int64, len(masks))


def jaccard(gt, pred) -> np.ndarray:
    """J per frame of binary masks (T, H, W) -> (T,) float64; 1 where both are empty."""
    gt, pred = _check_pair(gt, pred)
    gt, pred = gt.astype(bool, copy=False), pred.astype(bool, copy=False)
    inter = _count(gt & pred)
    union = _count(gt) + _count(pred) - inter
    out = np.ones(len(gt), np.float64)
    nz = union > 0
    out[nz] = inter[nz] / union[nz]
    return out


def boundary_map(masks) -> np.ndarray:
    """One-pixel boundary of binary masks (T, H, W): pixels that differ from their
    right, lower or lower-right neighbour (the DAVIS ``seg2bmap`` rule for same-size maps).

    The image border is not a boundary: an object touching it has no contour there.
    """
    m = _as_stack(masks).astype(bool, copy=False)
    e = np.zeros_like(m)
    s = np.zeros_like(m)
    se = np.zeros_like(m)
    e[:, :, :-1] = m[:, :, 1:]
    s[:, :-1, :] = m[:, 1:, :]
    se[:, :-1, :-1] = m[:, 1:, 1:]
    b = (m ^ e) | (m ^ s) | (m ^ se)
    b[:, -1, :] = m[:, -1, :] ^ e[:, -1, :]
    b[:, :, -1] = m[:, :, -1] ^ s[:, :, -1]
    b[:, -1, -1] = False
    return b


def _matched(src: np.ndarray, dst: np.ndarray, radius: int) -> np.ndarray:
    """For each point of ``src`` (N, 3) = (t, y, x): is a ``dst`` point of the same frame
    within Euclidean distance ``radius`` (inclusive)?"""
    if len(src) == 0:
        return np.zeros(0, bool)
    if len(dst) == 0:
        return np.zeros(len(src), bool)
    from scipy.spatial import cKDTree

    # frames are kept apart by a gap far larger than any in-frame distance
    gap = 2.0 * (radius + 1)
    scale = np.array([gap, 1.0, 1.0])
    tree = cKDTree(dst * scale)
    # squared distances are integers: d <= r  <=>  d < sqrt(r^2 + 0.5)
    d, _ = tree.query(
        src * scale, k=1, distance_upper_bound=math.sqrt(radius * radius + 0.5), workers=-1
    )
    return np.isfinite(d)


def _boundary_points(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, y, x) coordinates of the boundary pixels of two bool stacks.

    Each frame is cropped to the bounding box of ``gt | pred`` grown by one pixel, which
    gives the same boundary as the whole frame (the rule looks right and down only, and
    the image-border special case applies where the crop touches the border).
    """
    T, H, W = gt.shape
    union = gt | pred
    rows = union.any(axis=2)
    cols = union.any(axis=1)
    gpts, ppts = [], []
    for t in np.flatnonzero(rows.any(axis=1)):
        r = np.flatnonzero(rows[t])
        c = np.flatnonzero(cols[t])
        y0, y1 = max(int(r[0]) - 1, 0), min(int(r[-1]) + 2, H)
        x0, x1 = max(int(c[0]) - 1, 0), min(int(c[-1]) + 2, W)
        off = np.array([t, y0, x0])
        for src, dst in ((gt, gpts), (pred, ppts)):
            crop = src[t, y0:y1, x0:x1]
            if crop.any():
                dst.append(np.argwhere(boundary_map(crop)[0]) @ np.eye(2, 3, 1, dtype=np.int64) + off)
    empty = np.zeros((0, 3), np.int64)
    return (np.concatenate(gpts) if gpts else empty), (np.concatenate(ppts) if ppts else empty)


def f_measure(gt, pred, tolerance: float = BOUNDARY_TOLERANCE, radius: int | None = None) -> np.ndarray:
    """Boundary F per frame of binary masks (T, H, W) -> (T,) float64.

    ``radius`` overrides the tolerance in pixels (default ``ceil(tolerance * diagonal)``).
    Empty boundaries follow the DAVIS rules: both empty -> 1; only one empty -> 0.
    """
    gt, pred = _check_pair(gt, pred)
    gt, pred = gt.astype(bool, copy=False), pred.astype(bool, copy=False)
    n = len(gt)
    if radius is None:
        radius = boundary_tolerance(gt.shape[1], gt.shape[2], tolerance)
    gpts, ppts = _boundary_points(gt, pred)
    n_gt = np.bincount(gpts[:, 0], minlength=n)
    n_pr = np.bincount(ppts[:, 0], minlength=n)
    pr_match = np.bincount(ppts[_matched(ppts, gpts, radius), 0], minlength=n)
    gt_match = np.bincount(gpts[_matched(gpts, ppts, radius), 0], minlength=n)

    precision = np.ones(n, np.float64)
    recall = np.ones(n, np.float64)
    has_p, has_g = n_pr > 0, n_gt > 0
    precision[has_p] = pr_match[has_p] / n_pr[has_p]
    recall[has_g] = gt_match[has_g] / n_gt[has_g]
    recall[~has_p & has_g] = 0.0  # nothing predicted: precision 1, recall 0
    precision[has_p & ~has_g] = 0.0  # nothing to find: precision 0, recall 1
    denom = precision + recall
    f = np.zeros(n, np.float64)
    ok = denom > 0
    f[ok] = 2.0 * precision[ok] * recall[ok] / denom[ok]
    return f


def object_ids(labels, void: int | None = 255) -> list[int]:
    """Sorted non-zero label values (the ``void`` value excluded)."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "ub" and labels.dtype.itemsize <= 2:
        ids = np.flatnonzero(np.bincount(labels.reshape(-1).view(np.uint8 if labels.dtype.itemsize == 1 else np.uint16)))
    else:
        ids = np.unique(labels)
    return [int(i) for i in ids if i != 0 and (void is None or i != void)]


def evaluate_labels(
    gt,
    pred,
    objects: Iterable[int] | None = None,
    boundary: bool = True,
    tolerance: float = BOUNDARY_TOLERANCE,
) -> dict:
    """J (and F) per object and frame for label maps (T, H, W).

    Parameters
    ----------
    gt, pred:
        Integer label stacks of the same shape (0 = background).
    objects:
        Object ids to score (default: the non-zero ids of ``gt``, 255 excluded).
    boundary:
        Also compute F (the slower half).

    Returns
    -------
    dict
        ``objects`` (list of ids), ``J`` and ``F`` arrays shaped (T, K) (F is None
        without ``boundary``).
    """
    gt, pred = _check_pair(gt, pred)
    ids = object_ids(gt) if objects is None else [int(k) for k in objects]
    T = len(gt)
    J = np.ones((T, len(ids)), np.float64)
    F = np.ones((T, len(ids)), np.float64) if boundary else None
    for i, k in enumerate(ids):
        g, p = gt == k, pred == k
        J[:, i] = jaccard(g, p)
        if boundary:
            F[:, i] = f_measure(g, p, tolerance)
    return {"objects": ids, "J": J, "F": F}
