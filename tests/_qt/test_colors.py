"""The object palette (napari_ipnet._qt._colors): bright colours, neighbours far apart."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ipnet._qt._colors import N_COLORS, label_colormap, object_color, object_colors


def _linear(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, float)[..., :3]
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG 2 relative luminance of sRGB colours in [0, 1]."""
    return _linear(rgb) @ np.array([0.2126, 0.7152, 0.0722])


def cielab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours in [0, 1]."""
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = _linear(rgb) @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference."""
    return np.linalg.norm(cielab(a) - cielab(b), axis=-1)


def test_every_colour_is_bright():
    colors = object_colors(N_COLORS)
    assert colors.shape == (N_COLORS, 4) and (colors[:, 3] == 1).all()
    lum = relative_luminance(colors)
    assert lum[:50].min() >= 0.35 and lum.min() >= 0.35  # napari's defaults go down to ~0.15
    # on a black background the contrast ratio is at least 8:1
    assert ((lum + 0.05) / 0.05).min() >= 8


def test_neighbouring_ids_look_different():
    colors = object_colors(50)
    for gap, threshold in ((1, 45.0), (2, 20.0), (3, 20.0)):
        d = delta_e(colors[:-gap], colors[gap:])
        assert d.min() >= threshold, f"ids {gap} apart: delta E {d.min():.1f}"
    first12 = object_colors(12)
    pairs = [delta_e(first12[i], first12[j]) for i in range(12) for j in range(i + 1, 12)]
    assert min(pairs) >= 15.0  # a dozen objects: no two alike
    negative = np.array([1.0, 0x30 / 255, 0x30 / 255])  # the negative strokes' red
    assert delta_e(colors, negative).min() >= 30.0


def test_one_palette_for_the_colormap_and_the_objects():
    cmap = label_colormap()
    ids = np.arange(0, 300)
    mapped = cmap.map(ids)
    np.testing.assert_array_equal(mapped[0], 0)  # background transparent
    np.testing.assert_allclose(mapped[1:51], object_colors(50), atol=1e-6)
    np.testing.assert_allclose(mapped[N_COLORS + 1], object_color(1), atol=1e-6)  # then it cycles
    np.testing.assert_allclose(object_color(7), object_colors(7)[-1])
    np.testing.assert_array_equal(object_color(0), 0)


@pytest.mark.parametrize("k", [1, 12, 13, 254])
def test_object_color_is_a_copy(k):
    c = object_color(k)
    c[:] = 0
    assert object_color(k).any()
