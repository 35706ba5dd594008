"""napari scribbles (Shapes, Points, painted Labels) -> boolean maps of one frame.

No Qt here. Paths and lines become one-pixel polylines dilated by
:data:`napari_ipnet.scribbles.STROKE_RADIUS` (a thin brush stroke, like DAVIS
scribbles); closed shapes (polygon, rectangle, ellipse) are filled; a point (a click)
becomes a small disk of radius :data:`CLICK_RADIUS`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import disk, ellipse, line, polygon

from ..scribbles import STROKE_RADIUS

CLICK_RADIUS = 3
#: brush label reserved for negative (background) strokes in the brush Labels layer
NEGATIVE_LABEL = 255


def polyline_map(yx: np.ndarray, height: int, width: int, radius: int = STROKE_RADIUS) -> np.ndarray:
    """Boolean (H, W) map of a polyline through ``yx`` (N, 2) pixel coordinates."""
    out = np.zeros((height, width), bool)
    pts = np.rint(np.asarray(yx, dtype=np.float64).reshape(-1, 2)).astype(int)
    if pts.size == 0:
        return out
    if len(pts) == 1:
        pts = np.concatenate([pts, pts])
    for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:]):
        rr, cc = line(r0, c0, r1, c1)
        keep = (rr >= 0) & (rr < height) & (cc >= 0) & (cc < width)
        out[rr[keep], cc[keep]] = True
    if radius > 0 and out.any():
        out = ndimage.binary_dilation(out, iterations=radius)
    return out


def filled_map(yx: np.ndarray, shape_type: str, height: int, width: int) -> np.ndarray:
    """Boolean (H, W) map of a filled polygon, rectangle or ellipse."""
    out = np.zeros((height, width), bool)
    pts = np.asarray(yx, dtype=np.float64).reshape(-1, 2)
    if shape_type == "ellipse":
        # napari stores an ellipse as the 4 corners of its bounding box
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2
        radii = np.maximum((hi - lo) / 2, 0.5)
        rr, cc = ellipse(centre[0], centre[1], radii[0], radii[1], shape=(height, width))
    else:
        rr, cc = polygon(pts[:, 0], pts[:, 1], shape=(height, width))
    out[rr, cc] = True
    # the outline too, so that thin shapes are not empty
    closed = np.concatenate([pts, pts[:1]]) if shape_type != "ellipse" else np.empty((0, 2))
    if len(closed):
        out |= polyline_map(closed, height, width, radius=0)
    return out


def shape_map(yx: np.ndarray, shape_type: str, height: int, width: int) -> np.ndarray:
    """Map of one napari shape given its Y, X vertices."""
    if shape_type in ("path", "line", "polyline"):
        return polyline_map(yx, height, width)
    if shape_type in ("polygon", "rectangle", "ellipse"):
        return filled_map(yx, shape_type, height, width)
    raise ValueError(f"unsupported shape type {shape_type!r}")


def click_map(yx: np.ndarray, height: int, width: int, radius: int = CLICK_RADIUS) -> np.ndarray:
    """Boolean (H, W) map of small disks at points ``yx`` (N, 2)."""
    out = np.zeros((height, width), bool)
    for y, x in np.asarray(yx, dtype=np.float64).reshape(-1, 2):
        rr, cc = disk((y, x), radius, shape=(height, width))
        out[rr, cc] = True
    return out


def same_transform(a, b) -> bool:
    """Whether two layers map data to world coordinates the same way."""
    try:
        return (
            a.ndim == b.ndim
            and np.allclose(a.scale, b.scale)
            and np.allclose(a.translate, b.translate)
            and np.allclose(a.rotate, b.rotate)
            and np.allclose(a.shear, b.shear)
            and np.allclose(a.affine.affine_matrix, b.affine.affine_matrix)
        )
    except Exception:  # noqa: BLE001 - any mismatch in the attributes means "no"
        return False


def to_layer_coords(src, dst, pts: np.ndarray) -> np.ndarray:
    """Convert points (N, src.ndim) from ``src`` data coordinates to ``dst`` data coordinates."""
    pts = np.asarray(pts, dtype=np.float64)
    if same_transform(src, dst):
        return pts
    return np.asarray([dst.world_to_data(src.data_to_world(p)) for p in pts], dtype=np.float64)


def paint_bounds(atoms, ndim: int) -> list[tuple[int, ...]] | None:
    """Leading-axis indices touched by a Labels paint event (one history item).

    Works with both kinds of napari history atoms: mask-based edits (with a
    ``slice_key``) and ``(indices, old, new)`` tuples. Returns None when the event
    carries something unknown (the caller then falls back to the viewer position).
    """
    lead = ndim - 2
    found: set[tuple[int, ...]] = set()
    try:
        for atom in atoms:
            key = getattr(atom, "slice_key", None)
            if key is not None:
                ranges = []
                for s in key[:lead]:
                    if isinstance(s, slice):
                        ranges.append(range(s.start or 0, s.stop))
                    else:
                        ranges.append(range(int(s), int(s) + 1))
                grids = np.meshgrid(*[np.asarray(r) for r in ranges], indexing="ij") if lead else []
                for combo in zip(*(g.ravel() for g in grids)):
                    found.add(tuple(int(c) for c in combo))
                continue
            indices = atom[0]
            if lead == 0:
                continue
            lead_idx = np.stack([np.asarray(i).ravel() for i in indices[:lead]], axis=1)
            for combo in np.unique(lead_idx, axis=0):
                found.add(tuple(int(c) for c in combo))
    except Exception:  # noqa: BLE001 - unknown atom format
        return None
    return sorted(found)
