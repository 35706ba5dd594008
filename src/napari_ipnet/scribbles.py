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
    for t, strokes in enumerate(frames):
        if not isinstance(strokes, list):
            raise ValueError(f"frame {t} of 'scribbles' is a {type(strokes).__name__}, not a list of strokes")
    return frames


def check_path(path) -> np.ndarray:
    """A stroke's path as float (N, 2) ``(x, y)`` points; ValueError if it is not one.

    DAVIS writes ``[[x, y], ...]``; a flat ``[x0, y0, x1, y1, ...]`` is accepted too.
    Coordinates must be finite numbers.
    """
    if isinstance(path, (str, bytes, Mapping)) or not hasattr(path, "__len__"):
        raise ValueError(f"the path must be a list of [x, y] points, got a {type(path).__name__}")
    try:
        pts = np.asarray(path, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the path must be a list of [x, y] number pairs ({err})") from None
    if pts.size == 0:
        return np.zeros((0, 2))
    if pts.ndim == 1:
        if pts.size % 2:
            raise ValueError(f"the flat path has an odd number of coordinates ({pts.size}); expected x, y pairs")
        pts = pts.reshape(-1, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"the path must be a list of [x, y] points, got an array of shape {pts.shape}")
    if not np.isfinite(pts).all():
        bad = int(np.flatnonzero(~np.isfinite(pts).all(axis=1))[0])
        raise ValueError(f"point {bad} of the path is not finite: {pts[bad].tolist()}")
    return pts


def scribble_map(m, shape: tuple[int, int], name: str = "scribble") -> np.ndarray:
    """A scribble map (H, W) as bool, refusing maps that are not masks.

    Accepts booleans, integers 0 / 1 and floats that are exactly 0 or 1; anything
    else (a probability map such as 0.3 everywhere, labels 0..k) would silently turn
    every non-zero pixel into a stroke, so it is a ValueError. ``None`` is an empty map.
    """
    if m is None:
        return np.zeros(shape, bool)
    m = np.asarray(m)
    if m.shape != tuple(shape):
        raise ValueError(f"{name} scribble map has shape {m.shape}, expected (H, W) = {tuple(shape)}")
    if m.dtype == bool:
        return m
    if m.dtype.kind not in "iuf":
        raise ValueError(f"{name} scribble map has dtype {m.dtype}; expected a boolean mask")
    odd = (m != 0) & (m != 1)
    if odd.any():
        value = m[odd].flat[0]
        raise ValueError(
            f"{name} scribble map must hold only 0 and 1 (a mask), but has {value!r} "
            f"at {np.argwhere(odd)[0].tolist()}; threshold a probability map first (e.g. map > 0.5)"
        )
    return m.astype(bool)


def annotated_frames(scribbles: Mapping) -> list[int]:
    """Indices of the frames that carry at least one stroke."""
    return [t for t, strokes in enumerate(_check_scribble_dict(scribbles)) if strokes]


def rasterize_path(path, height: int, width: int, radius: int = STROKE_RADIUS) -> np.ndarray:
    """Boolean (H, W) map of one normalised polyline, dilated by ``radius`` pixels."""
    out = np.zeros((height, width), dtype=bool)
    pts = check_path(path)
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
    for i, stroke in enumerate(frames[frame]):
        obj, path = _check_stroke(stroke, frame, i)
        m = rasterize_path(path, height, width)
        maps[obj] = maps[obj] | m if obj in maps else m
    return frame, maps


def _check_stroke(stroke, frame: int, index: int) -> tuple[int, np.ndarray]:
    """(object_id, path) of one stroke; ValueError naming the frame and the stroke."""
    where = f"frame {frame}, stroke {index}"
    if not isinstance(stroke, Mapping):
        raise ValueError(f"{where} is a {type(stroke).__name__} ({stroke!r:.40}), not a dict with 'path' and 'object_id'")
    missing = [k for k in ("path", "object_id") if k not in stroke]
    if missing:
        raise ValueError(f"{where} has no {' and no '.join(repr(k) for k in missing)} (keys: {sorted(map(str, stroke))})")
    obj = stroke["object_id"]
    if isinstance(obj, float) and obj.is_integer():
        obj = int(obj)
    if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)) or obj < 0:
        raise ValueError(f"{where}: object_id must be an integer >= 0 (0 is background), got {obj!r}")
    try:
        path = check_path(stroke["path"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return int(obj), path


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
