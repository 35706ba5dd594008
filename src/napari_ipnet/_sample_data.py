"""Sample sequences, built from images that ship inside installed packages (no download).

- :func:`make_colour_sequence`: an RGB video: a chestnut horse (a silhouette with
  cat-fur texture) walks across a slowly panning meadow, and a shaded ball crosses it,
  passing in front (occlusion). Built from scikit-image's bundled ``grass.png``,
  ``chelsea.png`` and ``horse.png`` (files inside the skimage wheel, read directly,
  never fetched).
- :func:`make_cell_timelapse`: a microscopy-like uint16 time-lapse: textured cells
  that drift, one of which divides, on an uneven background with shot and read noise.
- :func:`make_nuclei_zstack`: a uint16 focal series (z-stack) of nuclei, each with its
  own depth: they grow and shrink from plane to plane, blur and dim out of focus, and
  end inside the stack (only a faint glow beyond). Its axes are labelled z, y, x.

All three also return the ground-truth labels (for scripts, tests and the headless demo);
the napari sample entries only add the image.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from scipy import ndimage

COLOUR_SHAPE = (20, 180, 240)
CELL_SHAPE = (24, 128, 160)
ZSTACK_SHAPE = (16, 128, 160)


def _skimage_file(name: str) -> np.ndarray:
    """Read an image file bundled in the installed scikit-image wheel."""
    import imageio.v3 as iio

    path = resources.files("skimage.data") / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} is not bundled with this scikit-image installation ({path}); "
            "the napari-ipnet samples need scikit-image's bundled images"
        )
    with resources.as_file(path) as p:
        return np.asarray(iio.imread(p))


def _resize(img: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    from skimage.transform import resize

    out = resize(img, shape, order=order, preserve_range=True, anti_aliasing=order > 0)
    return out.astype(img.dtype) if order == 0 else out


def _meadow(height: int, width: int) -> np.ndarray:
    """A float RGB landscape: pale sky over a grass field (scikit-image's grass texture)."""
    grass = _skimage_file("grass.png").astype(np.float32) / 255.0
    grass = _resize(grass, (height, width))
    horizon = int(height * 0.3)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    # grass: darker and more saturated towards the viewer
    depth = np.clip((rows - 0.3) / 0.7, 0, 1)
    g = 0.55 + 0.45 * grass
    field = np.stack([(70 - 25 * depth) * g, (150 - 35 * depth) * g, (45 - 15 * depth) * g], axis=-1)
    sky = np.stack([np.full_like(rows, 170.0), 200 + 20 * rows, np.full_like(rows, 235.0)], axis=-1)
    sky = np.broadcast_to(sky, (height, width, 3))
    out = field.copy()
    out[:horizon] = sky[:horizon]
    return out


def make_colour_sequence(n_frames: int = COLOUR_SHAPE[0], height: int = COLOUR_SHAPE[1], width: int = COLOUR_SHAPE[2]):
    """RGB frames (T, H, W, 3) uint8 and labels (T, H, W) uint8 (1 horse, 2 ball)."""
    fur = _skimage_file("chelsea.png")[..., :3].astype(np.float32)
    horse = ~_skimage_file("horse.png").astype(bool)  # the file is white background
    if horse.ndim == 3:
        horse = ~(_skimage_file("horse.png")[..., 0] > 127)

    # background: a window panning across a meadow
    bg_h = int(height * 1.15)
    bg_w = int(width * 1.3)
    bg = _meadow(bg_h, bg_w)
    # horse: ~45% of the frame height, a chestnut coat with cat-fur texture
    hh = int(height * 0.45)
    hw = int(round(hh * horse.shape[1] / horse.shape[0]))
    hmask = _resize(horse.astype(np.float32), (hh, hw)) > 0.5
    lum = _resize(fur[0:90, 110:370].mean(axis=-1), (hh, hw)) / 255.0  # forehead fur, no eyes
    tex = (0.5 + 0.7 * lum)[..., None] * np.array([150.0, 80.0, 40.0], np.float32)
    # ball: shaded blue disk with a highlight
    r = max(6, int(height * 0.12))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    dist = np.sqrt(yy**2 + xx**2)
    bmask = dist <= r
    shade = np.clip(1.0 - 0.6 * (np.sqrt((yy + r / 3) ** 2 + (xx + r / 3) ** 2) / (1.6 * r)), 0.2, 1.0)
    ball = np.stack([40 * shade, 110 * shade, 235 * shade], axis=-1)
    ball += (np.exp(-((yy + r / 2.5) ** 2 + (xx + r / 2.5) ** 2) / (0.08 * r * r)) * 120)[..., None]

    frames = np.zeros((n_frames, height, width, 3), np.uint8)
    labels = np.zeros((n_frames, height, width), np.uint8)
    for t in range(n_frames):
        a = t / max(1, n_frames - 1)
        oy = int(round(a * (bg_h - height) * 0.5))
        ox = int(round(a * (bg_w - width)))
        img = bg[oy : oy + height, ox : ox + width].copy()
        lab = np.zeros((height, width), np.uint8)
        # horse walks right with a small bob
        hy = int(height * 0.42 + 4 * np.sin(2 * np.pi * 2 * a))
        hx = int(-0.1 * width + a * 0.75 * width)
        _paste(img, lab, tex, hmask, hy, hx, 1)
        # ball moves diagonally, right to left, in front of the horse
        by = int(height * 0.2 + a * height * 0.55)
        bx = int(width * 0.85 - a * width * 0.7)
        _paste(img, lab, ball, bmask, by, bx, 2)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        labels[t] = lab
    return frames, labels


def _paste(img, lab, tex, mask, y, x, label) -> None:
    h, w = mask.shape
    H, W = lab.shape
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(H, y + h), min(W, x + w)
    if y1 <= y0 or x1 <= x0:
        return
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    img[y0:y1, x0:x1][m] = tex[y0 - y : y1 - y, x0 - x : x1 - x][m]
    lab[y0:y1, x0:x1][m] = label


def make_cell_timelapse(n_frames: int = CELL_SHAPE[0], height: int = CELL_SHAPE[1], width: int = CELL_SHAPE[2], seed: int = 0):
    """uint16 frames (T, H, W) and labels (T, H, W) uint8 of drifting cells; cell 1 divides.

    A dividing cell keeps its label in both daughters (one object, as in video object
    segmentation).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # uneven illumination + low-frequency texture
    background = 300 + 80 * np.exp(-(((yy - height * 0.3) / height) ** 2 + ((xx - width * 0.7) / width) ** 2) * 2)
    background += ndimage.gaussian_filter(rng.normal(0, 40, (height, width)), 6)

    n_cells = 5
    pos = [(height * 0.5, width * 0.45)]  # the dividing cell, in the middle
    while len(pos) < n_cells:  # the others well apart from each other
        p = (rng.uniform(0.15, 0.85) * height, rng.uniform(0.1, 0.9) * width)
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 0.3 * min(height, width) for q in pos):
            pos.append(p)
    pos = np.asarray(pos)
    vel = rng.normal(0, 0.4, (n_cells, 2))
    radii = rng.uniform(0.07, 0.1, (n_cells, 2)) * min(height, width)
    radii[0] = (0.1 * min(height, width), 0.12 * min(height, width))
    angles = rng.uniform(0, np.pi, n_cells)
    bright = rng.uniform(1500, 2200, n_cells)
    t_div0, t_div1 = int(n_frames * 0.4), int(n_frames * 0.65)

    frames = np.zeros((n_frames, height, width), np.uint16)
    labels = np.zeros((n_frames, height, width), np.uint8)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 1.5)
    for t in range(n_frames):
        img = background.copy()
        lab = np.zeros((height, width), np.uint8)
        blobs = []  # (label, cy, cx, ry, rx, angle, brightness)
        for k in range(n_cells):
            cy, cx = pos[k] + vel[k] * t
            cy = float(np.clip(cy, radii[k, 0] + 2, height - radii[k, 0] - 2))
            cx = float(np.clip(cx, radii[k, 1] + 2, width - radii[k, 1] - 2))
            ang = angles[k] + 0.03 * t
            if k == 0 and t >= t_div0:
                # elongate, then split into two daughters moving apart
                s = min(1.0, (t - t_div0) / max(1, t_div1 - t_div0))
                d = radii[k, 1] * (0.2 + 1.1 * s)
                ry = radii[k, 0] * (1 - 0.25 * s)
                rx = radii[k, 1] * (1 - 0.35 * s)
                dy, dx = d * np.sin(ang), d * np.cos(ang)
                blobs.append((1, cy + dy, cx + dx, ry, rx, ang, bright[k]))
                blobs.append((1, cy - dy, cx - dx, ry, rx, ang, bright[k]))
            else:
                blobs.append((k + 1, cy, cx, radii[k, 0], radii[k, 1], ang, bright[k]))
        for label, cy, cx, ry, rx, ang, b in blobs:
            c, s_ = np.cos(ang), np.sin(ang)
            u = ((yy - cy) * s_ + (xx - cx) * c) / rx
            v = ((yy - cy) * c - (xx - cx) * s_) / ry
            rr = u**2 + v**2
            inside = rr <= 1.0
            profile = np.clip(1.0 - rr, 0, 1) ** 0.5
            nucleus = np.exp(-rr / 0.15) * 0.6
            img += b * (profile + nucleus) * (1 + 0.15 * texture)
            lab[inside & (lab == 0)] = label
        img = ndimage.gaussian_filter(img, 1.0)
        img = rng.poisson(np.clip(img, 0, None)).astype(np.float32) + rng.normal(100, 12, img.shape)
        frames[t] = np.clip(img, 0, 65535).astype(np.uint16)
        labels[t] = lab
    return frames, labels


def make_nuclei_zstack(n_planes: int = ZSTACK_SHAPE[0], height: int = ZSTACK_SHAPE[1], width: int = ZSTACK_SHAPE[2],
                       seed: int = 0):
    """uint16 planes (Z, H, W) and labels (Z, H, W) uint8 of ellipsoidal nuclei.

    Every nucleus is present in the middle plane and ends inside the stack, at its
    own depth above and below: a nucleus is labelled where the focal plane cuts it;
    beyond its ends it leaves only a faint, blurred glow in the image.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mid = (n_planes - 1) / 2
    pos, n_nuclei = [], 5
    while len(pos) < n_nuclei:
        p = (rng.uniform(0.18, 0.82) * height, rng.uniform(0.12, 0.88) * width)
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 0.3 * min(height, width) for q in pos):
            pos.append(p)
    radii = rng.uniform(0.11, 0.15, (n_nuclei, 2)) * min(height, width)
    angles = rng.uniform(0, np.pi, n_nuclei)
    centre_z = mid + rng.uniform(-0.15, 0.15, n_nuclei) * n_planes
    half_depth = rng.uniform(0.22, 0.4, n_nuclei) * n_planes
    half_depth = np.minimum(half_depth, np.minimum(centre_z, n_planes - 1 - centre_z) - 0.5)  # ends inside
    bright = rng.uniform(1400, 2200, n_nuclei)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 1.5)
    frames = np.zeros((n_planes, height, width), np.uint16)
    labels = np.zeros((n_planes, height, width), np.uint8)
    for z in range(n_planes):
        img = np.full((height, width), 250.0, np.float32)
        for k in range(n_nuclei):
            dz = (z - centre_z[k]) / half_depth[k]
            c, s_ = np.cos(angles[k]), np.sin(angles[k])
            u = ((yy - pos[k][0]) * s_ + (xx - pos[k][1]) * c) / radii[k, 1]
            v = ((yy - pos[k][0]) * c - (xx - pos[k][1]) * s_) / radii[k, 0]
            rr = u**2 + v**2
            if abs(dz) < 1:
                scale = np.sqrt(1 - dz**2)  # the focal plane's cut through the ellipsoid
                inside = rr <= scale**2
                body = bright[k] * (1 - 0.5 * abs(dz)) * np.clip(1 - rr / scale**2, 0, 1) ** 0.3
                body = ndimage.gaussian_filter(body * (1 + 0.2 * texture), 0.8 + 2.0 * abs(dz))
                labels[z][inside & (labels[z] == 0)] = k + 1
            else:  # beyond the nucleus: out-of-focus glow
                glow = bright[k] * 0.06 / abs(dz) * (rr <= 1.0)
                body = ndimage.gaussian_filter(glow.astype(np.float32), 5.0)
            img += body
        img = rng.poisson(np.clip(img, 0, None)).astype(np.float32) + rng.normal(100, 12, img.shape)
        frames[z] = np.clip(img, 0, 65535).astype(np.uint16)
    return frames, labels


def colour_sequence():
    """napari sample: the colour sequence (RGB video)."""
    frames, _ = make_colour_sequence()
    return [(frames, {"name": "IPNet colour sequence", "rgb": True}, "image")]


def cell_timelapse():
    """napari sample: the cell time-lapse (uint16, 2D + t)."""
    frames, _ = make_cell_timelapse()
    lo, hi = np.percentile(frames, [0.5, 99.8])
    return [(frames, {"name": "IPNet cell time-lapse", "colormap": "gray",
                      "contrast_limits": (float(lo), float(hi))}, "image")]


def nuclei_zstack():
    """napari sample: the nuclei z-stack (uint16, z, y, x)."""
    frames, _ = make_nuclei_zstack()
    lo, hi = np.percentile(frames, [0.5, 99.8])
    return [(frames, {"name": "IPNet nuclei z-stack", "colormap": "gray", "axis_labels": ("z", "y", "x"),
                      "contrast_limits": (float(lo), float(hi))}, "image")]
