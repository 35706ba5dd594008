"""Object colours: one palette for the output Labels layer, the object list and the strokes.

napari's default label colours are random: some are too dark to see on dark
fluorescence images, and neighbouring ids can look alike. Here object ``k`` gets a
colour of fixed perceptual lightness (OKLab L 0.75 or 0.85, alternating) and a hue
that turns by the golden angle from one id to the next, so consecutive objects are
far apart on the colour wheel and every colour is bright. The reds around the
negative strokes' colour are left out. :func:`fit_object_colors` replaces the
colour of an object whose first mask hardly shows on the image under it. No Qt here;
napari only for the colormap.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: OKLab lightness of the colours, alternating from one id to the next
LIGHTNESS = (0.75, 0.85)
#: hue band (OKLCH degrees) left out: the reds of the negative strokes (#ff3030)
SKIPPED_HUES = (5.0, 45.0)
#: colours before the palette repeats (ids 1..N_COLORS; napari cycles after that)
N_COLORS = 255
_GOLDEN = (5**0.5 - 1) / 2  # hue turn per id, as a fraction of the circle
_HUE_START = 0.6  # object 1: a light blue

_LMS_FROM_OKLAB = np.array([
    [1.0, 0.3963377774, 0.2158037573],
    [1.0, -0.1055613458, -0.0638541728],
    [1.0, -0.0894841775, -1.2914855480],
])
_LINEAR_RGB_FROM_LMS = np.array([
    [4.0767416621, -3.3077115913, 0.2309699292],
    [-1.2684380046, 2.6097574011, -0.3413193965],
    [-0.0041960863, -0.7034186147, 1.7076147010],
])


def _oklch_to_linear_rgb(lightness: float, chroma: float, hue_deg: float) -> np.ndarray:
    h = np.deg2rad(hue_deg)
    lms = (_LMS_FROM_OKLAB @ np.array([lightness, chroma * np.cos(h), chroma * np.sin(h)])) ** 3
    return _LINEAR_RGB_FROM_LMS @ lms


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _hue(i: int) -> float:
    """OKLCH hue (degrees) of palette entry ``i`` (object ``i + 1``)."""
    frac = (_HUE_START + i * _GOLDEN) % 1.0
    lo, hi = SKIPPED_HUES
    return (hi + frac * (360.0 - (hi - lo))) % 360.0


def _color(i: int) -> np.ndarray:
    """sRGB in [0, 1] of palette entry ``i``: the most saturated in-gamut colour."""
    lightness, hue = LIGHTNESS[i % len(LIGHTNESS)], _hue(i)
    lo, hi = 0.0, 0.4
    for _ in range(30):  # bisect the largest chroma inside the sRGB gamut
        mid = (lo + hi) / 2
        rgb = _oklch_to_linear_rgb(lightness, mid, hue)
        if (rgb >= -1e-9).all() and (rgb <= 1 + 1e-9).all():
            lo = mid
        else:
            hi = mid
    return _srgb_encode(_oklch_to_linear_rgb(lightness, lo, hue))


@lru_cache(maxsize=1)
def _palette() -> np.ndarray:
    colors = np.ones((N_COLORS + 1, 4), np.float32)
    colors[0] = 0.0  # background: transparent
    for i in range(N_COLORS):
        colors[i + 1, :3] = _color(i)
    colors.setflags(write=False)
    return colors


def object_colors(n: int) -> np.ndarray:
    """RGBA colours (float32 in [0, 1]) of objects 1..n, shape (n, 4)."""
    ids = np.arange(1, n + 1)
    return _palette()[(ids - 1) % N_COLORS + 1].copy()


def object_color(k: int) -> np.ndarray:
    """RGBA colour (float32 in [0, 1]) of object ``k`` (label value ``k >= 1``)."""
    k = int(k)
    return _palette()[(k - 1) % N_COLORS + 1].copy() if k >= 1 else np.zeros(4, np.float32)


def label_colormap():
    """A napari label colormap with these colours (background 0 transparent)."""
    from napari.utils.colormaps import CyclicLabelColormap

    return CyclicLabelColormap(colors=np.array(_palette()), name="napari-ipnet objects")


#: OKLab distance under which an object's colour is hard to see on the image under it
LOW_CONTRAST = 0.3
_OKLAB_FROM_LMS = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
_LMS_FROM_LINEAR_RGB = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995253, 0.1073969766],
    [0.0883024619, 0.2817188376, 0.6299787005],
])


def to_oklab(rgb) -> np.ndarray:
    """OKLab of sRGB colours in [0, 1] (shape (..., 3))."""
    x = np.clip(np.asarray(rgb, float)[..., :3], 0.0, 1.0)
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    lms = np.cbrt(linear @ _LMS_FROM_LINEAR_RGB.T)
    return lms @ _OKLAB_FROM_LMS.T


def contrast(a, b) -> float:
    """How far apart two sRGB colours in [0, 1] look: their OKLab distance (0 .. about 1)."""
    return float(np.linalg.norm(to_oklab(a) - to_oklab(b)))


def most_contrasting(background, exclude=(), candidates: int = 32) -> int:
    """The palette entry (object colour ``k`` >= 1) that stands out most on ``background``.

    ``background`` is an sRGB colour in [0, 1] (the mean colour of the image under an
    object); palette entries in ``exclude`` (colours other objects show) are skipped.
    """
    palette = _palette()
    skip = {int(k) for k in exclude}
    best = max(
        (k for k in range(1, candidates + 1) if k not in skip),
        key=lambda k: contrast(palette[k, :3], background),
    )
    return int(best)


def label_colormap_with(colors: dict[int, np.ndarray]):
    """:func:`label_colormap` with the colours of some objects replaced (``{k: RGBA}``)."""
    from napari.utils.colormaps import CyclicLabelColormap

    palette = np.array(_palette())
    for k, rgba in colors.items():
        palette[(int(k) - 1) % N_COLORS + 1] = np.asarray(rgba, np.float32)[:4]
    return CyclicLabelColormap(colors=palette, name="napari-ipnet objects")


def shown_color(image, values: np.ndarray) -> np.ndarray | None:
    """The mean colour (sRGB in [0, 1]) ``image`` shows for its pixel ``values`` ((n,) or (n, C))."""
    if values.size == 0:
        return None
    lo, hi = (float(v) for v in image.contrast_limits)
    mean = (values.reshape(len(values), -1).mean(axis=0) - lo) / max(hi - lo, 1e-12)
    mean = np.clip(mean, 0.0, 1.0)
    if mean.size >= 3:
        return mean[:3]
    return np.asarray(image.colormap.map(np.asarray([mean[0]], float)), float).reshape(-1)[:3]


# ---------------------------------------------------------------------- colours of an output layer
#: output layer metadata: object -> RGBA chosen for its first mask (see :func:`fit_object_colors`)
COLORS_KEY = "napari_ipnet_colors"


def layer_object_color(layer, k: int) -> np.ndarray:
    """RGBA (float) of object ``k`` as the Labels ``layer`` shows it (the palette's when None)."""
    if layer is None:
        return np.asarray(object_color(k), dtype=float)
    return np.asarray(layer.colormap.map(np.asarray([k], dtype=np.int64)), dtype=float).reshape(-1)[:4]


def fit_object_colors(output, image, labels: np.ndarray, pixels: np.ndarray, object_ids, objects=()) -> dict | None:
    """Give an object whose first mask hardly shows on the image a colour that stands out.

    Once per object, on its first mask: when the object's colour in ``output`` is too
    close (:data:`LOW_CONTRAST`) to the mean colour ``image`` shows under the mask, the
    palette colour with the largest contrast there, and not shown by another object,
    replaces it. The colours chosen are kept in ``output.metadata[COLORS_KEY]``.

    Parameters
    ----------
    output : napari.layers.Labels
        The output layer (its colormap is replaced when a colour changes).
    image : napari.layers.Image
        The image layer (its contrast limits and colormap make the colour shown).
    labels : numpy.ndarray
        The output's labels of one frame (H, W).
    pixels : numpy.ndarray
        The image's pixels of that frame (H, W) or (H, W, C).
    object_ids : iterable of int
        The objects of the session (those without a colour yet are looked at).
    objects : iterable of int
        Every object of the widget (their colours are not chosen again).

    Returns
    -------
    dict or None
        ``{object: RGBA list}`` of every object placed so far when a colour changed
        (the strokes should follow), else None.
    """
    placed = output.metadata.setdefault(COLORS_KEY, {})
    labels = np.asarray(labels)
    changed = False
    for k in object_ids:
        mask = labels == k
        if k in placed or not mask.any():
            continue
        shown = shown_color(image, np.asarray(pixels)[mask])
        color = layer_object_color(output, k)
        if shown is not None and contrast(color[:3], shown) < LOW_CONTRAST:
            others = {int(j) for j in objects if j != k}
            color = object_color(most_contrasting(shown, exclude=others))
            changed = True
        placed[int(k)] = np.asarray(color, float).tolist()
    if not changed:
        return None
    output.colormap = label_colormap_with(placed)
    return dict(placed)
