"""Training sequences: DAVIS-layout folders and generated sequences.

Every source yields short clips ``(frames, masks)``: frames float32 (n, H, W, 3) in
[0, 1], masks bool (n, H, W) of one object. Generated clips are

- *DAVIS clips*, half of them with a distractor: another sequence's object pasted in,
  moving, in front of or behind the target (it is not the target);
- *pasted*: an object cut from a still frame moves (random affine) over another
  frame used as a background (whose own object is then a distractor);
- *warped*: a still frame and its mask move together (random affine + elastic);
- *cells*: a fluorescence-like time-lapse (bright cells with texture, noise, blur,
  drift, touching neighbours) and one target cell;
- *nuclei*: stained nuclei closer to real ones (irregular outlines, punctate foci,
  nucleoli, dim and touching neighbours, shot noise), as a time-lapse or as a focal
  series along z;
- *rods*: a dense colony of touching rod-shaped bacteria that drifts, grows and
  divides, in phase contrast or fluorescence (a share ``rods_share`` of the generated
  cells; none by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

DEFAULT_HOLDOUT = ("bear", "boat", "car-turn", "dance-jump", "kite-walk", "soccerball")


def check_davis_root(root) -> Path:
    """``root`` as a Path if it has the DAVIS layout, else a FileNotFoundError saying what is missing."""
    root = Path(root)
    layout = "expected JPEGImages/480p/<sequence>/*.jpg and Annotations/480p/<sequence>/*.png"
    if not root.exists():
        raise FileNotFoundError(f"the DAVIS folder {root} does not exist ({layout})")
    if not root.is_dir():
        raise FileNotFoundError(f"the DAVIS folder {root} is a file, not a folder ({layout})")
    for sub in ("JPEGImages", "Annotations"):
        if not (root / sub / "480p").is_dir():
            raise FileNotFoundError(f"{root} is not a DAVIS folder: it has no {sub}/480p folder ({layout})")
    return root


def read_davis_sequence(root: Path, name: str, max_side: int | None = None):
    """Frames uint8 (T, H, W, 3) and masks bool (T, H, W) of one DAVIS-2016 sequence."""
    import imageio.v3 as iio

    img_dir = Path(root) / "JPEGImages" / "480p" / name
    ann_dir = Path(root) / "Annotations" / "480p" / name
    files = sorted(img_dir.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no frames in {img_dir}")
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"sequence {name!r} has frames but no annotations: {ann_dir} is missing")
    missing = [f.stem + ".png" for f in files if not (ann_dir / (f.stem + ".png")).is_file()]
    if missing:
        raise FileNotFoundError(
            f"sequence {name!r}: {len(missing)} frame(s) have no annotation in {ann_dir}, e.g. {missing[:3]}"
        )
    frames = np.stack([iio.imread(f) for f in files])
    masks = np.stack([iio.imread(ann_dir / (f.stem + ".png")) for f in files])
    if masks.ndim == 4:
        masks = masks[..., 0]
    return frames, masks > 0


def list_sequences(root: Path) -> list[str]:
    """Names of the sequences of a DAVIS folder (checked by :func:`check_davis_root`)."""
    root = check_davis_root(root)
    return sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir())


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
                 mix=(0.35, 0.25, 0.1, 0.3), nuclei_share: float = 0.7, distractor_prob: float = 0.5,
                 nuclei_ending: float = 0.0, dim_frames: float = 0.0, rods_share: float = 0.0) -> None:
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
        self.nuclei_share = float(nuclei_share)
        self.distractor_prob = float(distractor_prob)
        self.nuclei_ending = float(nuclei_ending)
        self.dim_frames = float(dim_frames)
        self.rods_share = float(rods_share)

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
        f, m = np.ascontiguousarray(f), np.ascontiguousarray(m)
        if rng.random() < self.distractor_prob:
            f, m = self._add_distractor(f, m)
        return f, m

    def _add_distractor(self, frames, masks):
        """Paste another object, moving, into the clip: it is not the target.

        DAVIS-2016 has one salient object per sequence, so a model trained on it alone
        learns to segment whatever is salient and to ignore the scribbles. A second,
        equally salient object that must stay background teaches it to follow them.
        In front of the target half of the time (occluding it), behind it otherwise.
        """
        rng = self.rng
        obj, omask = self._still()
        h, w = masks.shape[1:]
        if obj.shape[:2] != (h, w):
            return frames, masks
        # shrink and move the object to a random place, then let it drift
        zoom = rng.uniform(0.35, 0.9)
        ys, xs = np.nonzero(omask)
        if len(ys) == 0:
            return frames, masks
        oy, ox = ys.mean(), xs.mean()
        ty, tx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        vy, vx = rng.normal(0, 0.03, 2) * (h, w)
        in_front = rng.random() < 0.5
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        out_f, out_m = frames.copy(), masks.copy()
        for i in range(len(frames)):
            cy, cx = ty + i * vy, tx + i * vx
            coords = np.stack([(yy - cy) / zoom + oy, (xx - cx) / zoom + ox])
            d = _warp(omask.astype(np.float32), coords, 1) > 0.5
            if not in_front:
                d &= ~masks[i]
            if not d.any():
                continue
            o = _warp(obj, coords, 1)
            alpha = ndimage.gaussian_filter(d.astype(np.float32), 0.7)[..., None]
            out_f[i] = np.clip(alpha * o + (1 - alpha) * out_f[i], 0, 1)
            out_m[i] = masks[i] & ~d
        return out_f, out_m

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
        # rods only draw from the generator when asked for: the default keeps the clips of a seed
        if self.rods_share > 0 and self.rng.random() < self.rods_share:
            return synthetic_rods(self.rng, self.n)
        if self.rng.random() < self.nuclei_share:
            return synthetic_nuclei(self.rng, self.n, ending=self.nuclei_ending)
        return synthetic_cells(self.rng, self.n)

    def sample(self):
        """One clip ``(frames (n, H, W, 3) float32, masks (n, H, W) bool)``.

        The object is visible in the first frame. Only generated nuclei clips may lose it
        later (with ``nuclei_ending``: a nucleus that ends within a z-stack); in the
        others it stays visible. With probability ``dim_frames`` one frame of the clip
        is darkened to 35-70 % (a dim frame of a time-lapse), its mask unchanged: a dim
        object is not a vanished one.
        """
        sources = [self._davis_clip, self._pasted_clip, self._warped_clip, self._cells_clip]
        for _ in range(20):
            which = self.rng.choice(4, p=self.mix)
            f, m = sources[which]()
            if m[0].sum() > 64 and (which == 3 or all(mi.sum() > 16 for mi in m)):
                break
        f = f.astype(np.float32)
        if self.dim_frames and self.rng.random() < self.dim_frames:
            f[int(self.rng.integers(len(f)))] *= self.rng.uniform(0.35, 0.7)
        return f, m


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


def _smooth_noise(rng, shape, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    n = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-6)


def synthetic_nuclei(rng, n_frames: int, size: int | None = None, n_cells: int | None = None,
                     along_z: bool | None = None, irregular: float | None = None, ending: float = 0.0):
    """A fluorescence-nuclei clip: irregular, textured nuclei, some dim, many touching.

    Closer to real stained nuclei than :func:`synthetic_cells`: star-convex outlines,
    a mid-grey body with bright punctate foci and dark nucleoli (texture that moves
    with the nucleus), neighbours that touch and split the contact zone, shot-like
    noise, and one intensity range for the whole clip (as :class:`FrameSource` does).
    With ``along_z`` the clip is a focal series instead of a time series: each nucleus
    has its own depth; it grows or shrinks, blurs and dims from plane to plane, and
    beyond its top or bottom it leaves the mask while a faint out-of-focus glow stays
    in the image, as in real z-stacks. The target stays in the mask, except in a share
    ``ending`` of the focal series, where it ends inside the clip (empty mask from
    there on). A model trained with ``ending=0.5`` learnt that objects can end, and
    then dropped dim cells of time-lapses (see the model card), hence 0 by default.
    ``irregular`` scales the outline harmonics (kidney-like, lobed nuclei); some
    nuclei get a dim fold across them, which must not split them.

    Returns frames (n, H, W, 3) float32 in [0, 1] and the mask of one target nucleus.
    """
    h = int(size or rng.integers(224, 400))
    w = int(size or rng.integers(224, 400))
    k = int(n_cells or rng.integers(3, 12))
    z_mode = bool(rng.random() < 0.5) if along_z is None else bool(along_z)
    r_mean = rng.uniform(16, 46)
    radius = r_mean * rng.uniform(0.75, 1.25, size=(k, 2))
    # place centres so that some nuclei touch: each new one near an earlier one half the time
    pos = np.zeros((k, 2))
    pos[0] = rng.uniform(0.3, 0.7, 2) * (h, w)
    for i in range(1, k):
        if rng.random() < 0.5:
            j = int(rng.integers(i))
            a = rng.uniform(0, 2 * np.pi)
            d = (radius[i].mean() + radius[j].mean()) * rng.uniform(0.8, 1.05)
            pos[i] = pos[j] + d * np.array([np.sin(a), np.cos(a)])
        else:
            pos[i] = rng.uniform(0.05, 0.95, 2) * (h, w)
    angle = rng.uniform(0, np.pi, k)
    shape_scale = rng.uniform(0.5, 3.0, size=(k, 1, 1)) if irregular is None else np.full((k, 1, 1), irregular)
    harm = shape_scale * rng.normal(0, 0.035, size=(k, 4, 2)) / np.arange(1, 5)[None, :, None] ** 0.5  # harmonics 2..5
    # a dim fold (a groove across the nucleus) in a third of them: (offset, angle, width, depth)
    folds = [(rng.uniform(-0.4, 0.4), rng.uniform(0, np.pi), rng.uniform(0.05, 0.15), rng.uniform(0.3, 0.6))
             if rng.random() < 0.33 else None for _ in range(k)]
    body = rng.uniform(0.15, 1.0, k) ** 1.5
    foci = rng.uniform(0.0, 2.0, k)
    vel = rng.normal(0, 2.0, size=(k, 2))
    spin = rng.normal(0, 0.04, k)
    # a texture field per nucleus, sampled in nucleus-local coordinates
    tex_side = 96
    speck = [_smooth_noise(rng, (tex_side, tex_side), rng.uniform(0.7, 1.4)) for _ in range(k)]
    coarse = [_smooth_noise(rng, (tex_side, tex_side), 6.0) for _ in range(k)]
    nucleoli = []
    for _ in range(k):
        spots = []
        for _ in range(int(rng.integers(0, 4))):
            spots.append((rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.12, 0.3)))
        nucleoli.append(spots)
    target = int(rng.integers(k))
    body[target] = max(body[target], 0.25)  # the target is never invisible where it is in the mask
    ends = False
    if z_mode:  # a focal series: each nucleus' centre plane, the target's in or near the clip
        z_scale = rng.uniform(0.1, 0.5)  # nucleus half-depths per plane
        focus = rng.uniform(-0.5, 1.5) * (n_frames - 1) + rng.normal(0, 0.6 / z_scale, k)
        ends = bool(rng.random() < ending)
        if ends:  # the target ends between two planes of the clip
            focus[target] = rng.uniform(0.3, max(n_frames - 1.3, 0.6)) - 1.0 / z_scale
        else:
            focus[target] = rng.uniform(-0.3, 1.3) * (n_frames - 1)
    bg = rng.uniform(0.01, 0.08)
    gain = rng.uniform(20, 200)  # photons at intensity 1: sets the shot noise
    read = rng.uniform(0.002, 0.02)
    blur0 = rng.uniform(0.5, 1.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames, masks = [], []
    for t in range(n_frames):
        img = np.full((h, w), bg, np.float32)
        best = np.full((h, w), np.inf, np.float32)  # normalised radius of the owning nucleus
        label = np.zeros((h, w), np.int32)
        for i in range(k):
            if z_mode:
                # within |dz| < 1 the nucleus shrinks a little and dims but keeps its texture;
                # beyond, it is out of the mask and only a faint, blurred glow remains
                dz = abs(float((t - focus[i]) * z_scale))
                if i == target and not ends:
                    dz = min(dz, 0.95)  # the target stays (small, dim and blurred far from focus)
                present = dz < 1.0
                if present:
                    size_f, dim, blur_i = float(np.sqrt(1.0 - 0.6 * dz * dz)), float(np.exp(-1.2 * dz * dz)), 1.5 * dz
                else:
                    size_f, dim, blur_i = 0.65, 0.22 * float(np.exp(-1.5 * (dz - 1.0))), min(4.0 + 3.0 * (dz - 1.0), 7.0)
            else:
                present, size_f, dim, blur_i = True, 1.0, 1.0, 0.0
            cy, cx = pos[i] + t * vel[i]
            th = angle[i] + spin[i] * t
            ca, sa = np.cos(th), np.sin(th)
            ry, rx = radius[i] * size_f
            reach = max(ry, rx) * 1.5
            y0, y1 = int(max(cy - reach, 0)), int(min(cy + reach + 1, h))
            x0, x1 = int(max(cx - reach, 0)), int(min(cx + reach + 1, w))
            if y1 <= y0 or x1 <= x0:
                continue
            dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
            u = (ca * dy + sa * dx) / ry
            v = (-sa * dy + ca * dx) / rx
            phi = np.arctan2(u, v)
            outline = 1.0 + sum(harm[i, j, 0] * np.cos((j + 2) * phi) + harm[i, j, 1] * np.sin((j + 2) * phi)
                                for j in range(4))
            r = np.sqrt(u * u + v * v) / outline
            inside = r <= 1.0
            own = inside & (r < best[y0:y1, x0:x1]) & present
            best[y0:y1, x0:x1][own] = r[own]
            label[y0:y1, x0:x1][own] = i + 1
            # texture in local coordinates (moves and turns with the nucleus)
            tu = np.clip((u + 1.5) / 3.0 * (tex_side - 1), 0, tex_side - 1)
            tv = np.clip((v + 1.5) / 3.0 * (tex_side - 1), 0, tex_side - 1)
            s = ndimage.map_coordinates(speck[i], [tu, tv], order=1)
            c = ndimage.map_coordinates(coarse[i], [tu, tv], order=1)
            val = body[i] * (1.0 + 0.2 * c) * (0.9 + 0.25 * np.sqrt(np.clip(r, 0, 1)))
            val = val + body[i] * foci[i] * np.clip(s - rng.uniform(0.5, 1.2), 0, None)
            for ny, nx, nr in nucleoli[i]:
                d2 = ((u - ny) ** 2 + (v - nx) ** 2) / (nr * nr)
                val = val * (1.0 - 0.6 * np.exp(-d2))
            if folds[i] is not None:
                off, fa, fw, depth = folds[i]
                d = (np.cos(fa) * u + np.sin(fa) * v - off) / fw
                val = val * (1.0 - depth * np.exp(-d * d))
            # soft edge
            edge = np.clip((1.0 - r) * max(ry, rx) / 1.5, 0, 1)
            val = val * edge * dim
            if blur_i > 0.3:  # out of focus: this nucleus alone is blurred further
                val = ndimage.gaussian_filter(val, blur_i)
            sub = img[y0:y1, x0:x1]
            np.maximum(sub, bg + val, out=sub)
        img = ndimage.gaussian_filter(img, blur0)
        img = rng.poisson(np.clip(img, 0, None) * gain).astype(np.float32) / gain
        img = img + rng.normal(0, read, img.shape).astype(np.float32)
        frames.append(img)
        masks.append(label == target + 1)
    stack = np.stack(frames)
    lo, hi = np.percentile(stack, [0.5, 99.8])
    stack = np.clip((stack - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    return np.repeat(stack[..., None], 3, -1), np.stack(masks)


def _segment_distance(p, q, ends_p, ends_q) -> float:
    """Smallest distance between two segments (centre, half-axis vector each), sampled."""
    s = np.linspace(-1.0, 1.0, 9)[:, None]
    a = p + s * ends_p  # points along the first segment
    d = q - a  # to the second segment's centre
    # project each point on the second segment, clipped to its ends
    ee = float(ends_q @ ends_q) or 1e-9
    u = np.clip(-(d @ ends_q) / ee, -1.0, 1.0)
    closest = q + u[:, None] * ends_q
    best = float(np.min(np.linalg.norm(a - closest, axis=1)))
    b = q + s * ends_q
    d = p - b
    ep = float(ends_p @ ends_p) or 1e-9
    u = np.clip(-(d @ ends_p) / ep, -1.0, 1.0)
    closest = p + u[:, None] * ends_p
    return min(best, float(np.min(np.linalg.norm(b - closest, axis=1))))


def _rod_colony(rng, k: int, width: float, gap: tuple[float, float], radius: float):
    """Centres (k, 2), angles (k,) and lengths (k,) of rods packed into a colony.

    Each new rod is put beside an earlier one (side by side, nearly parallel, shifted
    along it) or, a quarter of the time, end to end with it (as after a division), at a
    distance ``width + gap`` from it, and kept where it overlaps no other rod and lies
    within ``radius`` of the colony's centre: touching rods in locally aligned groups,
    as in a bacterial micro-colony. Fewer than ``k`` rods come back when the colony is full.
    """
    centres, angles, lengths = [np.zeros(2)], [rng.uniform(0, np.pi)], [width * rng.uniform(2.5, 6.0)]

    def axis(a, length):
        return 0.5 * max(length - width, 0.0) * np.array([np.sin(a), np.cos(a)])

    while len(centres) < k:
        found = []  # valid places for the next rod; the one nearest the centre is kept (a compact colony)
        for _ in range(40):
            j = int(rng.integers(len(centres)))
            a = angles[j] + rng.normal(0, 0.12)
            length = width * rng.uniform(2.5, 6.0)
            g = rng.uniform(*gap)
            along = np.array([np.sin(angles[j]), np.cos(angles[j])])
            across = np.array([along[1], -along[0]])
            if rng.random() < 0.25:  # end to end
                off = (0.5 * (lengths[j] + length) + g) * along * rng.choice([-1, 1]) + rng.normal(0, 0.1 * width) * across
            else:  # side by side
                off = (width + g) * across * rng.choice([-1, 1]) + rng.uniform(-0.5, 0.5) * lengths[j] * along
            c = centres[j] + off
            if np.linalg.norm(c) + 0.5 * length > radius:
                continue
            ends = axis(a, length)
            if all(_segment_distance(c, ci, ends, axis(ai, li)) >= width + gap[0] - 0.5
                   for ci, ai, li in zip(centres, angles, lengths)):
                found.append((float(np.linalg.norm(c)), c, a, length))
                if len(found) == 6:
                    break
        if not found:
            break
        _, c, a, length = min(found, key=lambda f: f[0])
        centres.append(c)
        angles.append(a)
        lengths.append(length)
    return np.array(centres), np.array(angles), np.array(lengths)


def synthetic_rods(rng, n_frames: int, size: int | None = None, n_cells: int | None = None,
                   division: float = 0.5, phase: bool | None = None, return_labels: bool = False):
    """A clip of a dense colony of rod-shaped bacteria that drifts and grows.

    Matched to the trpL time-lapse of ``../shared/data/microscopy`` (phase contrast):
    rods are capsules (spherocylinders) 9-22 px wide and 2.5-6 widths long (trpL: 19-21 px
    wide, 50-125 px long), packed side by side or end to end in locally aligned groups
    with gaps of 0-0.2 widths between neighbours; in phase contrast they are dark
    (0.3-0.65 of the background) inside a bright halo that also fills the thin gaps
    between them (trpL: 1.2-1.75, up to 2.3 in the gaps), on a mottled background with
    a few bright rings and dark specks that stay where they are while the colony drifts
    (trpL: 10-100 px a frame of 1026; here up to 8 % of the side a frame). A quarter of
    the clips (``phase=False``) are fluorescence-like instead: bright rods, dim gaps,
    no halo. Every rod grows along its axis (0-10 % a frame), moves and turns a little
    on its own; the colony drifts, turns slowly and spreads as it grows.

    With probability ``division`` one rod at least 5 widths long (the target half of the
    time, if it is that long) divides: a septum pinches it for a frame, then it is two daughters, each a new rod. The target
    then follows the daughter that overlaps its previous mask most, as the evaluation's
    :func:`~napari_ipnet.evaluation.datasets.link_by_overlap` links a reference
    segmentation's labels; the other daughter is a distractor beside it.

    Returns frames (n, H, W, 3) float32 in [0, 1] and the mask (n, H, W) bool of one
    target rod, like :func:`synthetic_nuclei`; with ``return_labels`` also the instance
    labels (n, H, W) int32, linked through the clip as above (the target is the id of
    ``masks``, the daughter that does not take over the mother's id gets a new one).
    """
    h = int(size or rng.integers(224, 400))
    w = int(size or rng.integers(224, 400))
    k = int(n_cells or rng.integers(4, 21))
    phase = bool(rng.random() < 0.75) if phase is None else bool(phase)
    width = rng.uniform(9, 22)
    gap = (0.0, rng.uniform(0.02, 0.2) * width)
    radius = 0.42 * min(h, w)
    pos, ang, length = _rod_colony(rng, k, width, gap, radius)
    k = len(pos)
    # motion: colony drift (px/frame), slow colony turn and spread; per-rod jitter, turn, growth
    speed = rng.uniform(0, 0.08) * min(h, w)
    heading = rng.uniform(0, 2 * np.pi)
    drift = speed * np.array([np.sin(heading), np.cos(heading)])
    turn = rng.normal(0, 0.015)
    growth = rng.uniform(0, 0.1, k)
    spread = float(growth.mean())  # the colony spreads along the rods as they grow end to end
    jitter = rng.normal(0, rng.uniform(0.2, 0.8), size=(n_frames, k, 2)).cumsum(0)
    spin = rng.normal(0, 0.012, k)
    # the colony's centre mid-clip lies near the image centre
    centre0 = np.array([h, w]) / 2 - drift * (n_frames - 1) / 2 + rng.normal(0, 0.05, 2) * (h, w)
    target = int(rng.integers(k))
    divides, t_div = -1, n_frames
    if n_frames > 1 and rng.random() < division:
        # a long rod (at least 5 widths: trpL's rods divide at 110-155 px, 5.5-7.5 widths) divides
        long = np.flatnonzero(length >= 5 * width)
        if len(long):
            divides = target if (rng.random() < 0.5 and target in long) else int(rng.choice(long))
            t_div = int(rng.integers(1, n_frames))
    depth = rng.uniform(0.45, 0.7) if phase else 0.0
    rod_level = rng.uniform(0.85, 1.15, k)  # per-rod darkness (phase) or brightness (fluorescence)
    halo_amp = rng.uniform(0.6, 1.3)
    fluo_gain = rng.uniform(0.6, 0.9)
    halo_sigma = rng.uniform(0.5, 1.0) * width
    bg = rng.uniform(0.4, 0.6) if phase else rng.uniform(0.02, 0.1)
    illum = _smooth_noise(rng, (h, w), rng.uniform(8, 30))
    mottle = _smooth_noise(rng, (h, w), rng.uniform(1.5, 4))
    specks = [(rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 8), rng.random() < 0.6)
              for _ in range(int(rng.integers(0, 10)))]
    noise = rng.uniform(0.01, 0.03)
    blur = rng.uniform(0.5, 1.3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    back = bg * (1 + 0.03 * illum + 0.02 * mottle)
    for sy, sx, sr, ring in specks:  # bright rings (beads) and dark specks, fixed in the image
        d = np.sqrt((yy - sy) ** 2 + (xx - sx) ** 2)
        back = back + (bg * 0.5 * np.exp(-((d - sr) ** 2) / 1.5) if ring else -bg * 0.4 * np.exp(-(d * d) / (sr * sr)))

    swap = [False]  # set when the daughters swap ids (see below)
    level_of = np.append(rod_level, rod_level[divides] if divides >= 0 else 1.0)

    def rods_at(t):
        """(centre, angle, length, id, septum) of every rod in frame t."""
        rot = turn * t
        c, s = np.cos(rot), np.sin(rot)
        out = []
        for i in range(k):
            along = np.array([np.sin(ang[i]), np.cos(ang[i])])
            rel = pos[i] + along * float(along @ pos[i]) * ((1 + spread) ** t - 1)
            rel = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1]])
            centre = centre0 + t * drift + rel + jitter[t, i]
            a = ang[i] + rot + spin[i] * t
            L = length[i] * (1 + growth[i]) ** t
            if i != divides or t < t_div - 1:
                out.append((centre, a, L, i + 1, False))
            elif t == t_div - 1:
                out.append((centre, a, L, i + 1, True))  # pinched, still one rod
            else:  # two daughters with a thin cut between them, the mother's length in all
                cut = max(0.5 * gap[1], 1.5)
                half = 0.5 * (L - cut)
                along = np.array([np.sin(a), np.cos(a)])
                ids = (i + 1, k + 1) if not swap[0] else (k + 1, i + 1)
                for sign, new_id in zip((-1, 1), ids):
                    out.append((centre + sign * 0.5 * (half + cut) * along, a + sign * 0.03 * (t - t_div + 1),
                                half, new_id, False))
        return out

    frames, labels = [], []
    for t in range(n_frames):
        best = np.full((h, w), np.inf, np.float32)  # distance to the owning rod's axis, over its half-width
        label = np.zeros((h, w), np.int32)
        occ = np.zeros((h, w), np.float32)  # rod coverage (anti-aliased)
        level = np.zeros((h, w), np.float32)
        for centre, a, L, rid, septum in rods_at(t):
            reach = 0.5 * L + width
            y0, y1 = int(max(centre[0] - reach, 0)), int(min(centre[0] + reach + 1, h))
            x0, x1 = int(max(centre[1] - reach, 0)), int(min(centre[1] + reach + 1, w))
            if y1 <= y0 or x1 <= x0:
                continue
            dy, dx = yy[y0:y1, x0:x1] - centre[0], xx[y0:y1, x0:x1] - centre[1]
            u = np.sin(a) * dy + np.cos(a) * dx  # along the rod
            v = np.cos(a) * dy - np.sin(a) * dx  # across
            half_axis = max(0.5 * L - 0.5 * width, 0.0)
            d = np.sqrt(np.clip(np.abs(u) - half_axis, 0, None) ** 2 + v * v)  # distance to the axis segment
            r = d / (0.5 * width)
            cover = np.clip(0.5 * width - d + 0.5, 0, 1)
            if septum:  # a constriction across the middle: the image only, the mask stays one rod
                cover = cover * (1 - 0.6 * np.exp(-(u * u) / (0.02 * width * width)))
            own = (r <= 1.0) & (r < best[y0:y1, x0:x1])
            best[y0:y1, x0:x1][own] = r[own]
            label[y0:y1, x0:x1][own] = rid
            sub = occ[y0:y1, x0:x1]
            np.maximum(sub, cover, out=sub)
            lv = level[y0:y1, x0:x1]
            # darker (brighter in fluorescence) at the rim than along the middle
            np.maximum(lv, cover * level_of[rid - 1] * (0.85 + 0.15 * np.clip(r, 0, 1)), out=lv)
        if divides >= 0 and t == t_div:
            # the mother's id (the target's, if it divides) goes to the daughter that overlaps the
            # mother's previous mask most, as link_by_overlap links them; the other is a new rod
            prev = labels[-1] == divides + 1
            ious = []
            for rid in (divides + 1, k + 1):
                cur = label == rid
                union = (cur | prev).sum()
                ious.append((cur & prev).sum() / union if union else 0.0)
            if ious[1] > ious[0]:  # the other daughter takes over the mother's id from now on
                swap[0] = True
                a_, b_ = label == divides + 1, label == k + 1
                label[a_], label[b_] = k + 1, divides + 1
        if phase:
            halo = np.clip(ndimage.gaussian_filter(occ, halo_sigma) * 1.6 - occ, 0, None)
            img = back * (1 - depth * level) + bg * halo_amp * halo * (1 - occ)
        else:
            img = back + level * fluo_gain * (1 + 0.1 * mottle)
        img = ndimage.gaussian_filter(img, blur)
        img = img + rng.normal(0, noise * (bg if phase else 0.5), img.shape).astype(np.float32)
        frames.append(img.astype(np.float32))
        labels.append(label)
    stack = np.stack(frames)
    lo, hi = np.percentile(stack, [0.5, 99.8])
    stack = np.clip((stack - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    labels = np.stack(labels)
    masks = labels == target + 1
    frames = np.repeat(stack[..., None], 3, -1)
    return (frames, masks, labels) if return_labels else (frames, masks)
