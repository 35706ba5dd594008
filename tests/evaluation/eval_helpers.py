"""Shared helpers of the evaluation tests: synthetic DAVIS folders, stub sessions and
an independent reference for the boundary measure (the DAVIS way: disk dilation)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import disk

from napari_ipnet.scribbles import davis_to_maps


def rect(shape, y0, y1, x0, x1, value=1, dtype=np.uint8):
    m = np.zeros(shape, dtype)
    m[y0:y1, x0:x1] = value
    return m


def shift_right(labels: np.ndarray, k: int) -> np.ndarray:
    """Labels moved right by k pixels (zeros enter on the left)."""
    if k == 0:
        return labels.copy()
    out = np.zeros_like(labels)
    out[..., k:] = labels[..., :-k]
    return out


# ---------------------------------------------------------------- reference F (DAVIS way)
def ref_bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    h, w = seg.shape
    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            right = seg[y, x + 1] if x + 1 < w else None
            down = seg[y + 1, x] if y + 1 < h else None
            diag = seg[y + 1, x + 1] if (x + 1 < w and y + 1 < h) else None
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                b[y, x] = seg[y, x] != right
            elif x == w - 1:
                b[y, x] = seg[y, x] != down
            else:
                b[y, x] = seg[y, x] != right or seg[y, x] != down or seg[y, x] != diag
    return b


def ref_bmap_pad(seg: np.ndarray) -> np.ndarray:
    """The same rule, written as: repeat the last row and column, then compare each
    pixel with its right, lower and lower-right neighbours."""
    p = np.pad(seg.astype(bool), ((0, 1), (0, 1)), mode="edge")
    c = p[:-1, :-1]
    return (c != p[:-1, 1:]) | (c != p[1:, :-1]) | (c != p[1:, 1:])


def ref_f(gt: np.ndarray, pred: np.ndarray) -> float:
    """Boundary F of one frame with skimage disk dilation (independent of the package)."""
    h, w = gt.shape
    r = int(math.ceil(0.008 * math.sqrt(h * h + w * w)))
    gb, pb = ref_bmap_pad(gt), ref_bmap_pad(pred)
    gd = ndimage.binary_dilation(gb, disk(r)) if gb.any() else gb
    pd = ndimage.binary_dilation(pb, disk(r)) if pb.any() else pb
    n_p, n_g = pb.sum(), gb.sum()
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    p = (pb & gd).sum() / n_p
    rc = (gb & pd).sum() / n_g
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


def ref_j(gt: np.ndarray, pred: np.ndarray) -> float:
    g, p = gt.astype(bool), pred.astype(bool)
    u = (g | p).sum()
    return 1.0 if u == 0 else (g & p).sum() / u


# ---------------------------------------------------------------- synthetic DAVIS folder
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]  # 256 colours


def write_davis(root: Path, name: str, gt: np.ndarray, scribble: dict | None = None, palette=False):
    """Frames (noise + objects) as JPEG, annotations as binary or palette PNG."""
    img_dir = root / "JPEGImages" / "480p" / name
    ann_dir = root / "Annotations" / "480p" / name
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    for t, lab in enumerate(gt):
        rgb = (rng.random(lab.shape + (3,)) * 60 + 40).astype(np.uint8)
        rgb[lab == 1] = (200, 60, 60)
        rgb[lab == 2] = (60, 200, 60)
        Image.fromarray(rgb).save(img_dir / f"{t:05d}.jpg", quality=90)
        if palette:
            im = Image.fromarray(lab.astype(np.uint8), mode="P")
            im.putpalette(PALETTE)
        else:
            im = Image.fromarray(lab > 0).convert("1")
        im.save(ann_dir / f"{t:05d}.png")
    if scribble is not None:
        d = root / "Scribbles" / name
        d.mkdir(parents=True)
        (d / "001.json").write_text(json.dumps(scribble))


# ---------------------------------------------------------------- stub session
class ShiftStub:
    """A session whose accuracy is known: after the first interaction, every frame's
    labels are the ground truth moved right by ``shifts[t]`` pixels, and frames that were
    interacted on become exact. Records what it was given."""

    def __init__(self, gt: np.ndarray, shifts, delay: float = 0.0):
        self.gt = np.asarray(gt)
        self.shifts = list(shifts)
        self.delay = delay
        self.calls: list[tuple[int, dict]] = []
        self.annotated: set[int] = set()
        self._pending = None

    def interact_davis(self, scribble):
        T, H, W = self.gt.shape
        frame, maps = davis_to_maps(scribble, H, W)
        assert len(scribble["scribbles"]) == T
        self.calls.append((frame, maps))
        self._pending = frame
        time.sleep(self.delay)
        return frame

    def propagate(self):
        assert self._pending is not None, "propagate before interact"
        for t in range(len(self.gt)):
            if t != self._pending:
                time.sleep(self.delay)
                yield t
        self.annotated.add(self._pending)
        self._pending = None

    @property
    def labels(self):
        out = np.zeros_like(self.gt)
        if not self.calls:
            return out
        for t in range(len(self.gt)):
            k = 0 if t in self.annotated else self.shifts[t]
            out[t] = shift_right(self.gt[t], k)
        out[out == 255] = 0  # void is never predicted
        return out
