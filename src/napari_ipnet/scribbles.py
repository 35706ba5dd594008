"""Scribbles: DAVIS scribble JSON <-> per-object boolean maps.

DAVIS paths are polylines in normalised coordinates ``(x / (W - 1), y / (H - 1))``.
They are rasterised as one-pixel lines between consecutive points, dilated slightly
(a 3x3 neighbourhood), like a thin brush stroke.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage
from skimage.draw import line

STROKE_RADIUS = 1


def _check_scribble_dict(scribbles: Mapping) -> list:
    if not isinstance(scribbles, Mapping) or "scribbles" not in scribbles:
        raise ValueError("expected a DAVIS scribble dict with a 'scribbles' list (one list per frame)")
    frames = scribbles["scribbles"]
    if not isinstance(frames, list):
        raise ValueError("'scribbles' must be a list with one list of strokes per frame")
    return frames


def annotated_frames(scribbles: Mapping) -> list[int]:
    """Indices of the frames that carry at least one stroke."""
    return [t for t, strokes in enumerate(_check_scribble_dict(scribbles)) if strokes]


def rasterize_path(path, height: int, width: int, radius: int = STROKE_RADIUS) -> np.ndarray:
    """Boolean (H, W) map of one normalised polyline, dilated by ``radius`` pixels."""
    out = np.zeros((height, width), dtype=bool)
    pts = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if pts.size == 0:
        return out
    cols = np.clip(np.rint(pts[:, 0] * (width - 1)), 0, width - 1).astype(int)
    rows = np.clip(np.rint(pts[:, 1] * (height - 1)), 0, height - 1).astype(int)
    out[rows, cols] = True
    for (r0, c0), (r1, c1) in zip(zip(rows[:-1], cols[:-1]), zip(rows[1:], cols[1:])):
        rr, cc = line(r0, c0, r1, c1)
        out[rr, cc] = True
    if radius > 0:
        out = ndimage.binary_dilation(out, structure=np.ones((3, 3), bool), iterations=radius)
    return out


def davis_to_maps(
    scribbles: Mapping, height: int, width: int, frame: int | None = None
) -> tuple[int, dict[int, np.ndarray]]:
    """Rasterise the strokes of one frame.

    Returns the frame index and a dict ``object_id -> bool (H, W)``; id 0 is background.
    Without ``frame`` the scribble dict must have exactly one non-empty frame.
    """
    frames = _check_scribble_dict(scribbles)
    if frame is None:
        nonempty = annotated_frames(scribbles)
        if not nonempty:
            raise ValueError("the scribble dict has no strokes")
        if len(nonempty) > 1:
            raise ValueError(f"strokes on several frames {nonempty}; pass frame= to choose one")
        frame = nonempty[0]
    if not 0 <= frame < len(frames):
        raise IndexError(f"frame {frame} is out of range for {len(frames)} scribble frames")
    maps: dict[int, np.ndarray] = {}
    for stroke in frames[frame]:
        obj = int(stroke["object_id"])
        m = rasterize_path(stroke["path"], height, width)
        maps[obj] = maps[obj] | m if obj in maps else m
    return frame, maps


def maps_to_davis(
    maps: Mapping[int, list], n_frames: int, frame: int, sequence: str = ""
) -> dict:
    """Build a DAVIS scribble dict from polylines ``{object_id: [path, ...]}`` on one frame."""
    strokes = [
        {"path": [list(map(float, p)) for p in path], "object_id": int(obj), "start_time": 0, "end_time": 0}
        for obj, paths in maps.items()
        for path in paths
    ]
    out = [[] for _ in range(n_frames)]
    out[frame] = strokes
    return {"scribbles": out, "sequence": sequence}
