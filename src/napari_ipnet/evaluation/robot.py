"""The scribble robot of the DAVIS interactive protocol (this project's implementation).

Given one frame's ground-truth and predicted label maps, the robot plays a user who
corrects the prediction. For every label ``k`` (background 0 included):

1. error region: pixels whose ground truth is ``k`` and whose prediction is not;
2. opening with a disk of radius ``min(kernel_size * sqrt(area) / 2, max_radius)``
   (``kernel_size = 0.2``, ``max_radius = 16``), the radius shrunk by 0.9 until the
   opened region is not empty (no opening once the radius is 1 px or less);
3. medial-axis skeleton (:func:`skimage.morphology.medial_axis`, fixed tie-break seed);
4. for every 8-connected skeleton component with at least ``min_nodes`` pixels, the
   longest path of its spanning tree (two farthest-node passes), drawn as a polyline;
5. this project's addition: when no component is long enough (the medial axis of a
   disk or of a nearly round cell is a single point), a straight stroke along the
   opened region's principal axis (:func:`axis_stroke`), so that a round object still
   gets a scribble instead of none.

The output is a DAVIS scribble dict for that one frame, in this project's normalised
coordinates ``(x / (W - 1), y / (H - 1))``: :func:`napari_ipnet.scribbles.rasterize_path`
with ``radius=0`` gives back exactly the skeleton pixels of each path.

Deterministic: the same input always gives the same scribbles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..scribbles import maps_to_davis

_EIGHT = np.ones((3, 3), bool)


def _crop_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, h)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, w)),
    )


def disk_opening(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary opening with the Euclidean disk ``{dy^2 + dx^2 <= radius^2}``.

    Computed exactly with distance transforms: erosion keeps the pixels farther than
    ``radius`` from the background, dilation adds the pixels within ``radius`` of what
    is left. Pixels outside the image are ignored (neither object nor background), as
    with rank filters.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    # a one-pixel background margin keeps the transforms exact inside the crop
    sl = _crop_box(mask, 1)
    crop = mask[sl]
    if crop.all():  # no background anywhere: the opening keeps everything
        return mask.copy()
    eroded = ndimage.distance_transform_edt(crop) > radius
    out = np.zeros_like(mask)
    if eroded.any():
        out[sl] = ndimage.distance_transform_edt(~eroded) <= radius
    return out


def _path_in_tree(adj, start: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.sparse.csgraph import dijkstra

    dist, pred = dijkstra(adj, directed=False, indices=start, return_predecessors=True)
    return dist, pred


def longest_path(coords: np.ndarray) -> np.ndarray:
    """Longest path through 8-connected pixels ``coords`` (N, 2) of one component.

    The pixel graph (edges of length 1 or sqrt(2)) is reduced to its minimum spanning
    tree, which drops the diagonal shortcuts of the skeleton's small loops; the path is
    the tree's diameter, found by two farthest-node passes. Returns (M, 2) (row, col)
    pixels in order along the path.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    coords = np.asarray(coords, np.int64)
    n = len(coords)
    if n == 1:
        return coords.copy()
    order = np.lexsort((coords[:, 1], coords[:, 0]))
    coords = coords[order]
    h = int(coords[:, 0].max()) + 2
    w = int(coords[:, 1].max()) + 2
    index = np.full((h + 1, w + 1), -1, np.int64)
    index[coords[:, 0] + 1, coords[:, 1] + 1] = np.arange(n)
    rows, cols, weights = [], [], []
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each undirected edge once
        other = index[coords[:, 0] + 1 + dy, coords[:, 1] + 1 + dx]
        ok = other >= 0
        rows.append(np.flatnonzero(ok))
        cols.append(other[ok])
        weights.append(np.full(int(ok.sum()), np.sqrt(2.0) if dx and dy else 1.0))
    r, c, wts = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    graph = coo_matrix((wts, (r, c)), shape=(n, n)).tocsr()
    tree = minimum_spanning_tree(graph)
    tree = tree + tree.T
    dist, _ = _path_in_tree(tree, 0)
    a = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    dist, pred = _path_in_tree(tree, a)
    b = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return coords[np.asarray(path[::-1])]


def axis_stroke(region: np.ndarray, min_nodes: int = 4) -> np.ndarray | None:
    """A straight stroke through a blob whose skeleton is too short to draw.

    The medial axis of a disk (or of a nearly round cell) is one point, which the
    ``min_nodes`` rule drops, so the robot would draw nothing at all on a round object.
    A person draws a line through its middle instead: this is the region's principal
    axis through its centroid, over the middle half of its extent, as 8-connected
    pixels inside the region (the longest inside run). ``None`` when the region is
    smaller than ``min_nodes`` pixels along that axis.
    """
    pts = np.argwhere(np.asarray(region, bool)).astype(np.float64)
    if len(pts) < min_nodes:
        return None
    centre = pts.mean(axis=0)
    cov = np.cov((pts - centre).T) if len(pts) > 1 else np.eye(2)
    vals, vecs = np.linalg.eigh(cov + 1e-9 * np.eye(2))
    axis = vecs[:, int(np.argmax(vals))]
    if axis[1] < 0 or (axis[1] == 0 and axis[0] < 0):  # a fixed orientation: left to right
        axis = -axis
    extent = (pts - centre) @ axis
    half = 0.5 * float(extent.max() - extent.min()) / 2.0
    steps = np.arange(-half, half + 0.25, 0.5)
    line = np.rint(centre + steps[:, None] * axis).astype(int)
    keep = np.concatenate([[True], np.any(line[1:] != line[:-1], axis=1)])
    line = line[keep]
    h, w = region.shape
    ok = (line[:, 0] >= 0) & (line[:, 0] < h) & (line[:, 1] >= 0) & (line[:, 1] < w)
    inside = np.zeros(len(line), bool)
    inside[ok] = np.asarray(region, bool)[line[ok, 0], line[ok, 1]]
    # the longest run of consecutive pixels inside the region
    best, run_start = (0, 0), None
    for i, v in enumerate(np.append(inside, False)):
        if v and run_start is None:
            run_start = i
        elif not v and run_start is not None:
            if i - run_start > best[1] - best[0]:
                best = (run_start, i)
            run_start = None
    path = line[best[0] : best[1]]
    return path if len(path) >= min_nodes else None


def _compress(path: np.ndarray) -> np.ndarray:
    """Drop the inner points of straight runs (same step repeated): a line drawn between
    the kept points visits exactly the dropped pixels again."""
    if len(path) <= 2:
        return path
    steps = np.diff(path, axis=0)
    turn = np.any(steps[1:] != steps[:-1], axis=1)
    keep = np.concatenate([[True], turn, [True]])
    return path[keep]


@dataclass(frozen=True)
class ScribbleRobot:
    """The DAVIS interactive robot.

    Parameters
    ----------
    kernel_size:
        Fraction of ``sqrt(area)`` used as the opening disk's diameter.
    max_radius:
        Upper bound of the opening disk's radius, in pixels.
    min_nodes:
        Skeleton components with fewer pixels are dropped.
    shrink:
        Factor applied to the radius while the opened region is empty.
    seed:
        Tie-break seed of the medial axis (kept fixed for determinism).
    """

    kernel_size: float = 0.2
    max_radius: float = 16.0
    min_nodes: int = 4
    shrink: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.kernel_size < 1:
            raise ValueError(f"kernel_size must be in [0, 1), got {self.kernel_size}")
        if not 0 < self.shrink < 1:
            raise ValueError(f"shrink must be in (0, 1), got {self.shrink}")

    # ------------------------------------------------------------------ steps
    def opening_radius(self, area: int) -> float:
        return min(self.kernel_size * float(np.sqrt(area)) * 0.5, self.max_radius)

    def open_region(self, error: np.ndarray) -> np.ndarray:
        """The error region opened with the adaptive disk (shrunk until not empty)."""
        error = np.asarray(error, bool)
        radius = self.opening_radius(int(error.sum()))
        while radius > 1.0:
            opened = disk_opening(error, radius)
            if opened.any():
                return opened
            radius *= self.shrink
        return error.copy()

    def skeleton(self, region: np.ndarray) -> np.ndarray:
        """Medial axis of a region (the image border counts as background)."""
        from skimage.morphology import medial_axis

        region = np.asarray(region, bool)
        out = np.zeros_like(region)
        if not region.any():
            return out
        sl = _crop_box(region, 1)
        crop = np.pad(region[sl], 1)
        out[sl] = medial_axis(crop, rng=self.seed)[1:-1, 1:-1]
        return out

    def paths(self, error: np.ndarray) -> list[np.ndarray]:
        """Polylines (row, col) of the scribbles correcting one error region."""
        region = self.open_region(error)
        skel = self.skeleton(region)
        if not skel.any():
            return []
        comp, n = ndimage.label(skel, structure=_EIGHT)
        out = []
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        objects = ndimage.find_objects(comp)
        for i in range(1, n + 1):
            if sizes[i] < self.min_nodes:
                continue
            sl = objects[i - 1]
            local = np.argwhere(comp[sl] == i)
            path = longest_path(local) + np.array([sl[0].start, sl[1].start])
            out.append(path)
        if not out:  # a round blob: its medial axis shrinks to a point
            out = [p for p in [axis_stroke(region, self.min_nodes)] if p is not None]
        # fixed order: by first pixel (row, col)
        out.sort(key=lambda p: (int(p[0, 0]), int(p[0, 1])))
        return out

    # ------------------------------------------------------------------ interface
    def scribble_paths(self, gt: np.ndarray, pred: np.ndarray, labels=None) -> dict[int, list[np.ndarray]]:
        """``{label: [(M, 2) row/col pixel paths]}`` for one frame (labels without error
        or without a long enough skeleton are left out)."""
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.ndim != 2 or gt.shape != pred.shape:
            raise ValueError(f"expected two (H, W) label maps of the same shape, got {gt.shape} and {pred.shape}")
        if labels is None:
            from .metrics import object_ids

            labels = [0] + object_ids(gt)
        out: dict[int, list[np.ndarray]] = {}
        for k in labels:
            error = (gt == k) & (pred != k)
            if not error.any():
                continue
            paths = self.paths(error)
            if paths:
                out[int(k)] = paths
        return out

    def interact(
        self,
        gt: np.ndarray,
        pred: np.ndarray,
        frame: int = 0,
        n_frames: int = 1,
        sequence: str = "",
        labels=None,
    ) -> dict:
        """DAVIS scribble dict correcting ``pred`` towards ``gt`` on one frame.

        Parameters
        ----------
        gt, pred:
            (H, W) integer label maps of that frame (0 = background; 255 in ``gt`` is
            void and never scribbled).
        frame, n_frames:
            Where the frame sits in its sequence (the dict has one list per frame).
        labels:
            Labels to correct (default: background and every object of ``gt``).

        Returns
        -------
        dict
            ``{"scribbles": [...], "sequence": name}`` with strokes on ``frame`` only
            (none when the prediction is already right).
        """
        gt = np.asarray(gt)
        h, w = gt.shape[:2]
        scale = np.array([w - 1, h - 1], np.float64)
        found = self.scribble_paths(gt, pred, labels)
        polylines = {
            k: [(_compress(p)[:, ::-1] / scale).tolist() for p in paths] for k, paths in found.items()
        }
        return maps_to_davis(polylines, n_frames, frame, sequence)


def n_strokes(scribbles: dict) -> int:
    """Number of strokes in a DAVIS scribble dict."""
    return sum(len(f) for f in scribbles.get("scribbles", []))
