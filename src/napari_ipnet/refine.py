"""Refine a network's probability with image evidence and scribble constraints.

A random walker with a prior (Grady, "Multilabel random walker image segmentation
using prior models", CVPR 2005), solved on the object's region of interest:

    x = argmin  sum_ij w_ij (x_i - x_j)^2  +  sum_i lam_i (x_i - q_i)^2

over the 4-connected pixel grid, with ``x = 1`` under positive strokes and ``x = 0``
under negative strokes (hard constraints; a negative stroke's at its core, since its
rim may lie on a thin part of the object). ``q`` is the network's probability,
``w_ij = exp(-beta * |I_i - I_j|^2 / mean |I_i - I_j|^2)`` follows image edges, and
the prior's weight ``lam`` is lowered near this round's strokes so that a stroke
spreads over the region it lies in even where the network disagrees, while far from
the strokes the network's answer holds.

A negative stroke drawn through the middle of a part of the object (a piece of it,
split at its necks) that holds none of its positive strokes removes that part
(:func:`drop_crossed_pieces`): "this cell is not the object", as a user says it when
an object sits on the wrong cell or has leaked onto a touching one.

No training, no Qt: NumPy, SciPy and scikit-image only. Cost: one sparse solve
(preconditioned conjugate gradients) on at most ``max_side`` x ``max_side`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import cg, spsolve


@dataclass(frozen=True)
class RefineSettings:
    """Parameters of :func:`refine_probability`.

    beta: edge sensitivity (larger: the walker stops at weaker edges).
    prior_weight: weight of the network's probability against the image term.
    stroke_radius: where the prior gives way to the strokes, as a fraction of the
        region's side (the prior's weight is ``1 - exp(-d^2 / 2r^2)`` of its full
        value at distance ``d`` from the nearest stroke).
    max_side: the solve runs on a grid of at most this side (the region is
        resampled), then the result is resampled back.
    negative_core: the hard background constraints are each negative stroke's core
        (:func:`stroke_core`), not its rim, which may lie on a thin part of the object;
        off: every stroke pixel.
    positive_core: a positive stroke that runs along the edge of the object's mask
        before the interaction constrains at its core only (:func:`edge_stroke_core`):
        such a stroke corrects a thin missed rim, and its outer ring lies on the
        background (as a hard constraint it grew small cells 2-4 px past their edge).
        Other positive strokes (a first stroke, one on a missed part away from the
        mask, which may be thin) constrain every pixel. Off: every stroke pixel.
    drop_crossed: a part of the object (a piece of it, split at its necks) that a
        negative stroke crosses through its middle, and that holds none of the
        object's positive strokes, is removed (:func:`drop_crossed_pieces`); off: the
        stroke only cuts where it lies.
    drop_depth: how far a stroke must cross a part: its deepest pixel's distance to
        the edge, and its length, each at least this fraction of the part's
        half-width (its largest distance to the edge).
    """

    beta: float = 8.0
    prior_weight: float = 0.1
    stroke_radius: float = 0.08
    max_side: int = 160
    negative_core: bool = True
    positive_core: bool = True
    drop_crossed: bool = True
    drop_depth: float = 0.75


def _edge_weights(img: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the vertical (h-1, w) and horizontal (h, w-1) grid edges."""
    dv = ((img[1:] - img[:-1]) ** 2).sum(-1)
    dh = ((img[:, 1:] - img[:, :-1]) ** 2).sum(-1)
    scale = float(np.concatenate([dv.ravel(), dh.ravel()]).mean()) + 1e-10
    return np.exp(-beta * dv / scale), np.exp(-beta * dh / scale)


def _laplacian(wv: np.ndarray, wh: np.ndarray, h: int, w: int) -> sparse.csr_matrix:
    idx = np.arange(h * w).reshape(h, w)
    i = np.concatenate([idx[:-1].ravel(), idx[:, :-1].ravel()])
    j = np.concatenate([idx[1:].ravel(), idx[:, 1:].ravel()])
    v = np.concatenate([wv.ravel(), wh.ravel()])
    W = sparse.coo_matrix((np.concatenate([v, v]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(h * w, h * w))
    deg = np.asarray(W.sum(axis=1)).ravel()
    return (sparse.diags(deg) - W).tocsr()


def _resize(a: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    if a.shape[:2] == tuple(shape):
        return a
    zoom = (shape[0] / a.shape[0], shape[1] / a.shape[1]) + (1,) * (a.ndim - 2)
    out = ndimage.zoom(a, zoom, order=order, mode="nearest", grid_mode=True)
    return out[: shape[0], : shape[1]]


def _shrink_mask(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean map resampled so that every stroke keeps at least one pixel."""
    if m.shape == tuple(shape):
        return m
    ys, xs = np.nonzero(m)
    out = np.zeros(shape, bool)
    out[(ys * shape[0] // m.shape[0]).clip(0, shape[0] - 1), (xs * shape[1] // m.shape[1]).clip(0, shape[1] - 1)] = True
    return out


def _solve(A: sparse.csr_matrix, b: np.ndarray) -> np.ndarray:
    """``A x = b`` for the walker's symmetric positive definite system.

    Conjugate gradients with a Jacobi preconditioner to a relative residual of 1e-6
    (about 4x faster than a sparse LU on a 160 x 160 grid; the answers differ by
    about 1e-5, below the 1/255 steps masks are stored in); a sparse LU where it does
    not converge.
    """
    if b.size == 0:
        return b
    diagonal = A.diagonal()
    if (diagonal > 0).all():
        x, info = cg(A, b, rtol=1e-6, maxiter=2000, M=sparse.diags(1.0 / diagonal))
        if info == 0:
            return x
    return spsolve(A.tocsc(), b)


def stroke_core(m: np.ndarray | None) -> np.ndarray | None:
    """The strokes of ``m`` without their outer ring of pixels, never less than their
    centre lines: what a stroke surely covers.

    A stroke's edge is its least certain part: the robot's paths are drawn one pixel
    wide on each side (:data:`~napari_ipnet.scribbles.STROKE_RADIUS`) and a brush's
    rim overlaps the object's boundary, so a background stroke along a thin part
    (a leg, a gap between cells) covers part of the object itself.
    """
    if m is None or not m.any():
        return m
    from skimage.morphology import skeletonize

    m = np.asarray(m, bool)
    return ndimage.binary_erosion(m, structure=np.ones((3, 3), bool)) | skeletonize(m)


def edge_stroke_core(
    positive: np.ndarray | None, previous: np.ndarray | None, reach: int = 2, share: float = 0.5
) -> np.ndarray | None:
    """``positive`` with each stroke that runs along the edge of ``previous`` reduced to
    its core (:func:`stroke_core`).

    A stroke (a connected part of ``positive``) runs along the edge when at least
    ``share`` of its pixels lie within ``reach`` pixels of the mask ``previous >= 0.5``
    (the object before the interaction). Such a stroke corrects a thin rim that the
    mask missed, and its outer ring of pixels lies beyond the object's edge. Strokes
    away from the mask, and every stroke where there was no mask, are kept whole.
    """
    if positive is None or previous is None or not positive.any():
        return positive
    mask = np.asarray(previous) >= 0.5
    if not mask.any():
        return positive
    positive = np.asarray(positive, bool)
    near = ndimage.binary_dilation(mask, iterations=reach)
    strokes, n = ndimage.label(positive, structure=np.ones((3, 3), bool))
    size = np.bincount(strokes.ravel(), minlength=n + 1)
    close = np.bincount(strokes[near], minlength=n + 1)
    along = np.flatnonzero(close >= share * size)
    along = along[along > 0]
    if along.size == 0:
        return positive
    on_edge = np.isin(strokes, along)
    return np.where(on_edge, stroke_core(positive), positive)


def refine_probability(
    image: np.ndarray,
    prior: np.ndarray,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    settings: RefineSettings = RefineSettings(),
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """The network's probability ``prior`` refined by image edges and hard strokes.

    Parameters
    ----------
    image : (h, w) or (h, w, C) float array, values about in [0, 1]
        The region of the frame.
    prior : (h, w) float array in [0, 1]
        The network's foreground probability over the same region.
    positive, negative : (h, w) bool arrays, optional
        This round's strokes over the region: the result is 1 under positive and 0
        under negative strokes (a pixel under both counts as negative).
    settings : RefineSettings
    previous : (h, w) float array in [0, 1], optional
        The object's probability over the region before this interaction: the mask
        the strokes correct (for ``settings.drop_crossed``).

    Returns
    -------
    numpy.ndarray
        (h, w) float32 probability.
    """
    h, w = prior.shape
    if h < 2 or w < 2:
        return prior.astype(np.float32)
    if settings.negative_core:
        negative = stroke_core(negative)
    if settings.positive_core:
        positive = edge_stroke_core(positive, previous)
    out = _random_walk(image, prior, positive, negative, settings)
    if settings.drop_crossed and negative is not None:
        out = drop_crossed_pieces(out, negative, positive, [prior, previous], settings.drop_depth,
                                  settings.max_side)
    return out


def _random_walk(image, prior, positive, negative, settings: RefineSettings) -> np.ndarray:
    """The walker itself; ``negative`` holds the hard background constraints."""
    h, w = prior.shape
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    scale = min(1.0, settings.max_side / max(h, w))
    gh, gw = max(2, int(round(h * scale))), max(2, int(round(w * scale)))
    img_s = _resize(img, (gh, gw))
    q = np.clip(_resize(prior.astype(np.float32), (gh, gw)), 0.0, 1.0).ravel()
    pos = _shrink_mask(positive, (gh, gw)) if positive is not None else np.zeros((gh, gw), bool)
    neg = _shrink_mask(negative, (gh, gw)) if negative is not None else np.zeros((gh, gw), bool)
    pos &= ~neg
    strokes = pos | neg
    lam = np.full((gh, gw), settings.prior_weight, np.float64)
    if strokes.any():
        r = settings.stroke_radius * max(gh, gw)
        d = ndimage.distance_transform_edt(~strokes)
        lam *= 1.0 - np.exp(-(d**2) / (2.0 * r * r))
    lam = lam.ravel()
    L = _laplacian(*_edge_weights(img_s, settings.beta), gh, gw)
    seeded = strokes.ravel()
    x = q.astype(np.float64).copy()
    x[pos.ravel()] = 1.0
    x[neg.ravel()] = 0.0
    free = ~seeded
    A = (L + sparse.diags(lam)).tocsr()
    A_ff = A[free][:, free]
    rhs = lam[free] * q[free]
    if seeded.any():
        rhs -= A[free][:, seeded] @ x[seeded]
    x[free] = _solve(A_ff, rhs)
    x = np.clip(x, 0.0, 1.0).reshape(gh, gw).astype(np.float32)
    out = np.clip(_resize(x, (h, w)), 0.0, 1.0)
    if positive is not None:
        out[positive & ~(negative if negative is not None else False)] = 1.0
    if negative is not None:
        out[negative] = 0.0
    return out.astype(np.float32)


def drop_crossed_pieces(
    prob: np.ndarray,
    negative: np.ndarray,
    positive: np.ndarray | None = None,
    context: list[np.ndarray | None] = (),
    depth: float = 0.75,
    max_side: int = 160,
) -> np.ndarray:
    """Remove the parts of an object that a negative stroke crosses through the middle.

    A piece is a connected part of the object: its mask (``prob >= 0.5``) together
    with the ``context`` masks (the network's answer, the mask before the
    interaction, each ``>= 0.5``) and the stroke itself, closed over 4 pixels so that
    the groove a stroke cuts does not split it. Each piece a stroke touches is split
    at its necks (:func:`split_at_necks`: touching cells come apart). A part is
    removed (``prob`` set to 0 over it) when no ``positive`` stroke lies in it and
    the ``negative`` strokes cross it: they reach at least ``depth`` of the way from
    its edge to its middle (chessboard distance to the piece's edge, against the
    part's largest, its half-width), and are at least ``depth`` times its half-width long (pixels of
    ``negative`` in it: pass the strokes' core, about one pixel wide). A stroke along
    a part's edge, in a thin part, or a short one in a gap of a large part (between
    an animal's legs) only cuts where it lies.

    The parts are found and judged on a grid of at most ``max_side`` pixels a side
    (the pieces' box resampled), as the walker is solved.

    Returns ``prob`` itself when nothing is removed, otherwise a copy.
    """
    negative = np.asarray(negative, bool)
    fg = prob >= 0.5
    if not negative.any() or not fg.any():
        return prob
    solid = fg | negative
    for m in context:
        if m is not None:
            solid |= np.asarray(m) >= 0.5
    solid |= ndimage.binary_closing(solid, iterations=4)
    pieces, _ = ndimage.label(solid)
    crossed = np.unique(pieces[negative])
    crossed = crossed[crossed > 0]
    if crossed.size == 0:
        return prob
    # work on the box around the crossed pieces, each split at its necks into basins
    # (touching cells are one piece): a stroke across one cell removes that cell only
    hit = np.isin(pieces, crossed)
    rows, cols = np.nonzero(hit)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    region = hit[box]
    neg, pos = negative[box], (None if positive is None else np.asarray(positive, bool)[box])
    full = region.shape
    scale = min(1.0, max_side / max(full))
    if scale < 1.0:  # decide on a coarser grid, as the walker solves on one
        small = (max(2, int(round(full[0] * scale))), max(2, int(round(full[1] * scale))))
        region = _resize(region.astype(np.float32), small, order=0) > 0.5
        neg = _shrink_mask(neg, small) & region
        pos = None if pos is None else _shrink_mask(pos, small)
    basins, dist = split_at_necks(region)
    extents = ndimage.find_objects(basins)
    drop = np.zeros_like(region)
    for i in np.unique(basins[neg & region]):
        if i == 0:
            continue
        sl = extents[i - 1]
        inside = basins[sl] == i
        deepest = dist[sl][inside].max()
        crossing = inside & neg[sl]
        reached = dist[sl][crossing].max()
        length = int(crossing.sum())
        kept = pos is not None and bool(pos[sl][inside].any())
        if reached >= depth * deepest and length >= depth * deepest and not kept:
            drop[sl] |= inside
    if not drop.any():
        return prob
    if drop.shape != full:
        ys = np.minimum(np.arange(full[0]) * drop.shape[0] // full[0], drop.shape[0] - 1)
        xs = np.minimum(np.arange(full[1]) * drop.shape[1] // full[1], drop.shape[1] - 1)
        inside = (basins > 0)[np.ix_(ys, xs)]
        drop = drop[np.ix_(ys, xs)]
        # the coarse grid's cells straddle the part's edge: the part's own pixels in
        # cells outside every part would stay, a ring of specks that the propagation
        # carries on; they go with it (never pixels of a part that stays)
        fringe = ndimage.binary_dilation(drop, iterations=int(np.ceil(1.0 / scale))) & ~inside
        drop = (drop | fringe) & hit[box]
    out = prob.copy()
    out[box][drop] = 0.0
    return out


def split_at_necks(mask: np.ndarray, neck: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Split a mask into basins at its necks: touching round cells come apart.

    A watershed of the chessboard distance to the mask's edge (in pixels, as a
    stroke's length is counted), from its maxima that stand at least ``neck`` pixels
    above their surroundings (h-maxima); a connected part without such a maximum
    (a thin one) is one basin. Returns the basins' labels (0 outside the mask) and
    the distance map.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    dist = ndimage.distance_transform_cdt(np.pad(mask, 1), metric="chessboard")[1:-1, 1:-1]
    markers, n = ndimage.label(h_maxima(dist, neck))
    parts, n_parts = ndimage.label(mask)
    if n_parts:
        unmarked = np.setdiff1d(np.arange(1, n_parts + 1), np.unique(parts[markers > 0]))
        for k, part in enumerate(unmarked, start=n + 1):
            markers[(parts == part) & (dist == dist[parts == part].max())] = k
    return watershed(-dist, markers, mask=mask), dist
