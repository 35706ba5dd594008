"""Region (J) and boundary (F) accuracy of label maps, as in the DAVIS benchmarks.

- **J** is the region Jaccard index (IoU) of one object on one frame; 1 when the object
  is absent from both the ground truth and the prediction.
- **F** is the boundary F-measure: boundary pixels of the prediction within
  ``ceil(0.008 * image diagonal)`` pixels of a ground-truth boundary pixel (precision)
  and the other way round (recall). The boundary map and the empty-boundary rules follow
  the DAVIS evaluation; the dilation by a disk of that radius is computed exactly as a
  nearest-neighbour query between the boundary pixels of each frame (``d <= r``), on
  the bounding box of the object only.

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


def _nonzero_2d(mask: np.ndarray) -> np.ndarray:
    """(N, 2) row/col of the True pixels of a sparse 2D bool array (faster than
    ``argwhere``: whole 8-byte words of False are skipped at once)."""
    flat = np.ascontiguousarray(mask).reshape(-1)
    pad = (-flat.size) % 8
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, bool)])
    words = np.flatnonzero(flat.view(np.uint64))
    idx = (words[:, None] * 8 + np.arange(8)).ravel()
    idx = idx[flat[idx]]
    return np.stack(np.divmod(idx, mask.shape[1]), axis=1)


def _matched(src: np.ndarray, dst: np.ndarray, radius: int) -> int:
    """How many ``src`` points (N, 2) have a ``dst`` point within Euclidean ``radius``
    (inclusive)."""
    if len(src) == 0 or len(dst) == 0:
        return 0
    from scipy.spatial import cKDTree

    tree = cKDTree(dst, balanced_tree=False, compact_nodes=False)
    # squared distances are integers: d <= r  <=>  d < sqrt(r^2 + 0.5)
    d, _ = tree.query(src, k=1, distance_upper_bound=math.sqrt(radius * radius + 0.5))
    return int(np.isfinite(d).sum())


def _boundary_counts(gt: np.ndarray, pred: np.ndarray, radius: int) -> np.ndarray:
    """Per frame: boundary pixels of gt and pred, and how many of each are matched.

    Each frame is cropped to the bounding box of ``gt | pred`` grown by one pixel, which
    gives the same boundary as the whole frame (the rule looks right and down only, and
    the image-border special case applies where the crop touches the border). Returns
    (T, 4) int: n_gt, n_pred, matched gt, matched pred.
    """
    T, H, W = gt.shape
    out = np.zeros((T, 4), np.int64)
    union = gt | pred
    rows = union.any(axis=2)
    cols = union.any(axis=1)
    for t in np.flatnonzero(rows.any(axis=1)):
        r = np.flatnonzero(rows[t])
        c = np.flatnonzero(cols[t])
        y0, y1 = max(int(r[0]) - 1, 0), min(int(r[-1]) + 2, H)
        x0, x1 = max(int(c[0]) - 1, 0), min(int(c[-1]) + 2, W)
        gpts = _nonzero_2d(boundary_map(gt[t, y0:y1, x0:x1])[0])
        ppts = _nonzero_2d(boundary_map(pred[t, y0:y1, x0:x1])[0])
        out[t] = len(gpts), len(ppts), _matched(gpts, ppts, radius), _matched(ppts, gpts, radius)
    return out


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
    n_gt, n_pr, gt_match, pr_match = _boundary_counts(gt, pred, radius).T

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
    if labels.dtype.kind in "ub" and labels.dtype.itemsize <= 2 and labels.size:
        # a histogram in chunks (bincount casts to int64: chunks keep that small)
        flat = labels.reshape(-1).view(np.uint8 if labels.dtype.itemsize == 1 else np.uint16)
        counts = np.zeros(int(flat.max()) + 1, np.int64)
        step = 1 << 20
        for i in range(0, flat.size, step):
            counts += np.bincount(flat[i : i + step], minlength=counts.size)
        ids = np.flatnonzero(counts)
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
