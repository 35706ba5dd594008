"""Training sequences: DAVIS-layout folders and generated sequences.

Every source yields short clips ``(frames, masks)``: frames float32 (n, H, W, 3) in
[0, 1], masks bool (n, H, W) of one object. Generated clips are

- *pasted*: an object cut from a still frame moves (random affine) over another
  frame used as a background;
- *warped*: a still frame and its mask move together (random affine + elastic);
- *cells*: a fluorescence-like time-lapse (bright cells with texture, noise, blur,
  drift, touching neighbours) and one target cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

DEFAULT_HOLDOUT = ("bear", "boat", "car-turn", "dance-jump", "kite-walk", "soccerball")


def read_davis_sequence(root: Path, name: str, max_side: int | None = None):
    """Frames uint8 (T, H, W, 3) and masks bool (T, H, W) of one DAVIS-2016 sequence."""
    import imageio.v3 as iio

    img_dir = Path(root) / "JPEGImages" / "480p" / name
    ann_dir = Path(root) / "Annotations" / "480p" / name
    files = sorted(img_dir.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no frames in {img_dir}")
    frames = np.stack([iio.imread(f) for f in files])
    masks = np.stack([iio.imread(ann_dir / (f.stem + ".png")) for f in files])
    if masks.ndim == 4:
        masks = masks[..., 0]
    return frames, masks > 0


def list_sequences(root: Path) -> list[str]:
    return sorted(p.name for p in (Path(root) / "JPEGImages" / "480p").iterdir() if p.is_dir())


def _affine_grid(h: int, w: int, rng, strength: float):
    """Random similarity transform as a sampling map (rows, cols) for ndimage."""
    angle = rng.normal(0, 0.08 * strength)
    scale = np.exp(rng.normal(0, 0.06 * strength))
    ty, tx = rng.normal(0, 0.04 * strength, 2) * (h, w)
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2, w / 2
    y, x = yy - cy - ty, xx - cx - tx
    return np.stack([c * y - s * x + cy, s * y + c * x + cx])


def _warp(img: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Sample ``img`` at ``coords`` (rows, cols) bilinearly (reflect for images, zero for masks)."""
    import torch
    import torch.nn.functional as F

    h, w = img.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x.permute(2, 0, 1)[None] if img.ndim == 3 else x[None, None]
    gy = torch.from_numpy(coords[0] / max(h - 1, 1) * 2 - 1)
    gx = torch.from_numpy(coords[1] / max(w - 1, 1) * 2 - 1)
    grid = torch.stack([gx, gy], -1)[None].float()
    pad = "reflection" if img.ndim == 3 else "zeros"
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode=pad, align_corners=True)[0]
    return out.permute(1, 2, 0).numpy() if img.ndim == 3 else out[0].numpy()


class ClipSampler:
    """Draws training clips of ``n`` frames from DAVIS sequences and generators."""

    def __init__(self, davis_root: Path | None, sequences: list[str], n_frames: int = 3, seed: int = 0,
                 mix=(0.45, 0.2, 0.1, 0.25)) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n_frames
        self.data = []
        if davis_root is not None:
            for name in sequences:
                frames, masks = read_davis_sequence(davis_root, name)
                keep = masks.reshape(len(masks), -1).sum(1) > 200
                self.data.append((name, frames, masks, np.flatnonzero(keep)))
        weights = np.asarray(mix, float)
        if not self.data:
            weights[:3] = 0  # only generated cells without DAVIS
        self.mix = weights / weights.sum()

    # -- sources ------------------------------------------------------------------
    def _davis_clip(self):
        rng = self.rng
        _, frames, masks, valid = self.data[rng.integers(len(self.data))]
        step = int(rng.integers(1, 4))
        span = step * (self.n - 1)
        starts = valid[valid + span < len(frames)]
        start = int(rng.choice(starts)) if len(starts) else 0
        idx = [min(start + i * step, len(frames) - 1) for i in range(self.n)]
        if rng.random() < 0.5:
            idx = idx[::-1]
        f = frames[idx].astype(np.float32) / 255.0
        m = masks[idx]
        if rng.random() < 0.5:
            f, m = f[:, :, ::-1], m[:, :, ::-1]
        return np.ascontiguousarray(f), np.ascontiguousarray(m)

    def _still(self):
        _, frames, masks, valid = self.data[self.rng.integers(len(self.data))]
        t = int(self.rng.choice(valid)) if len(valid) else 0
        return frames[t].astype(np.float32) / 255.0, masks[t]

    def _pasted_clip(self):
        rng = self.rng
        obj, mask = self._still()
        bg, _ = self._still()
        h, w = mask.shape
        fs, ms = [], []
        for i in range(self.n):
            co = _affine_grid(h, w, rng, 1.0 + i)
            cb = _affine_grid(h, w, rng, 0.3 * i)
            o, m = _warp(obj, co, 1), _warp(mask.astype(np.float32), co, 1) > 0.5
            b = _warp(bg, cb, 1)
            alpha = ndimage.gaussian_filter(m.astype(np.float32), 0.7)[..., None]
            fs.append(np.clip(alpha * o + (1 - alpha) * b, 0, 1))
            ms.append(m)
        return np.stack(fs), np.stack(ms)

    def _warped_clip(self):
        rng = self.rng
        img, mask = self._still()
        h, w = mask.shape
        fs, ms = [img], [mask]
        for i in range(1, self.n):
            c = _affine_grid(h, w, rng, 0.7 * i)
            fs.append(_warp(img, c, 1))
            ms.append(_warp(mask.astype(np.float32), c, 1) > 0.5)
        return np.stack(fs), np.stack(ms)

    def _cells_clip(self):
        return synthetic_cells(self.rng, self.n)

    def sample(self):
        """One clip ``(frames (n, H, W, 3) float32, masks (n, H, W) bool)`` with a visible object."""
        sources = [self._davis_clip, self._pasted_clip, self._warped_clip, self._cells_clip]
        for _ in range(20):
            f, m = sources[self.rng.choice(4, p=self.mix)]()
            if m[0].sum() > 64 and all(mi.sum() > 16 for mi in m):
                return f.astype(np.float32), m
        return f.astype(np.float32), m


def synthetic_cells(rng, n_frames: int, size: int | None = None, n_cells: int | None = None):
    """A fluorescence-like clip: bright textured cells that drift and touch.

    Returns frames (n, S, S, 3) float32 in [0, 1] (grey replicated) and the mask of
    one target cell per frame.
    """
    s = int(size or rng.integers(192, 320))
    k = int(n_cells or rng.integers(3, 14))
    radius = rng.uniform(10, 34, size=(k, 2))
    pos = rng.uniform(0.15, 0.85, size=(k, 2)) * s
    vel = rng.normal(0, 2.5, size=(k, 2))
    angle = rng.uniform(0, np.pi, k)
    bright = rng.uniform(0.35, 1.0, k)
    drift = rng.normal(0, 1.5, 2)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(size=(s, s)).astype(np.float32), 2.0)
    texture /= texture.std() + 1e-6
    target = int(rng.integers(k))
    blur = rng.uniform(0.6, 2.0)
    noise = rng.uniform(0.01, 0.08)
    frames, masks = [], []
    for t in range(n_frames):
        img = np.full((s, s), rng.uniform(0.02, 0.12), np.float32)
        label = np.zeros((s, s), np.int32)
        for i in range(k):
            cy, cx = pos[i] + t * (vel[i] + drift)
            ca, sa = np.cos(angle[i] + 0.05 * t), np.sin(angle[i] + 0.05 * t)
            dy, dx = yy - cy, xx - cx
            u = (ca * dy + sa * dx) / radius[i, 0]
            v = (-sa * dy + ca * dx) / radius[i, 1]
            r = u * u + v * v
            inside = r <= 1.0
            label[inside & (label == 0)] = i + 1
            img[inside] = np.maximum(img[inside], bright[i] * (0.75 + 0.15 * texture[inside] + 0.25 * (1 - r[inside])))
        img = ndimage.gaussian_filter(img, blur)
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        lo, hi = np.percentile(img, [0.5, 99.8])
        img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
        frames.append(np.repeat(img[..., None], 3, -1).astype(np.float32))
        masks.append(label == target + 1)
    return np.stack(frames), np.stack(masks)
