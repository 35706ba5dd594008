"""Frame access and normalisation: lazy, robust to hot pixels, any dtype."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ipnet.frames import FrameSource


def test_uint8_color_is_scaled_by_255():
    x = np.random.default_rng(0).integers(0, 256, (2, 10, 12, 3), dtype=np.uint8)
    fs = FrameSource(x)
    out = fs.rgb(1)
    assert out.dtype == np.float32 and out.shape == (10, 12, 3)
    np.testing.assert_allclose(out, x[1] / 255.0, atol=1e-6)


def test_uint16_grayscale_ignores_a_few_hot_pixels():
    rng = np.random.default_rng(1)
    x = rng.integers(1000, 5001, (3, 48, 64)).astype(np.uint16)
    hot = rng.integers(0, 48 * 64, 4)
    for t in range(3):
        x[t].flat[hot] = 65535  # 4 of 3072 pixels per frame
    fs = FrameSource(x)
    lo, hi = fs.intensity_range
    assert 1000 <= lo < 1050 and 4950 < hi <= 5000
    out = fs.rgb(0)
    assert out.shape == (48, 64, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    assert out.min() == 0.0 and out.max() == 1.0
    normal = np.ones((48, 64), bool)
    normal.flat[hot] = False
    assert abs(float(np.median(out[..., 0][normal])) - 0.5) < 0.03  # contrast kept
    assert np.all(out[..., 0].flat[hot] == 1.0)


def test_float_and_negative_values():
    x = np.linspace(-3.0, 7.0, 2 * 40 * 50).reshape(2, 40, 50).astype(np.float64)
    fs = FrameSource(x)
    lo, hi = fs.intensity_range
    assert lo == pytest.approx(-3.0, abs=0.1) and hi == pytest.approx(7.0, abs=0.1)
    out = fs.rgb(0)
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    assert out[0, 0, 0] == 0.0 and out[-1, -1, 0] == pytest.approx(0.5, abs=0.02)


def test_grayscale_uint8_channel_axis_and_rgba():
    rng = np.random.default_rng(2)
    gray = rng.integers(20, 200, (2, 30, 40), dtype=np.uint8)
    one = FrameSource(gray[..., None]).rgb(0)
    np.testing.assert_array_equal(one, FrameSource(gray).rgb(0))
    assert one.shape == (30, 40, 3)
    rgba = rng.integers(0, 256, (2, 30, 40, 4), dtype=np.uint8)
    np.testing.assert_allclose(FrameSource(rgba).rgb(0), rgba[0, ..., :3] / 255.0, atol=1e-6)


def test_flat_and_bool_frames():
    flat = np.full((2, 10, 10), 7, np.uint16)
    out = FrameSource(flat).rgb(0)
    assert np.isfinite(out).all() and out.max() == 0.0
    b = np.zeros((2, 10, 10), bool)
    b[0, 2:4, 2:4] = True
    out = FrameSource(b).rgb(0)
    assert out[3, 3, 0] == 1.0 and out[0, 0, 0] == 0.0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="single 2D image"):
        FrameSource(np.zeros((10, 10)))
    with pytest.raises(ValueError, match="T, Z, Y, X"):
        FrameSource(np.zeros((2, 3, 10, 10, 2)))
    with pytest.raises(ValueError, match="5 channels"):
        FrameSource(np.zeros((2, 10, 10, 5)))
    with pytest.raises(ValueError, match="not images"):
        FrameSource(np.zeros((2, 10, 10), complex))
    fs = FrameSource(np.zeros((3, 10, 10), np.float32))
    with pytest.raises(IndexError, match="out of range.*3 frames"):
        fs.rgb(3)
    with pytest.raises(IndexError):
        fs.rgb(-1)
    with pytest.raises(TypeError):
        fs.rgb(1.0)


def test_nan_frames():
    x = np.random.default_rng(0).random((3, 10, 10)).astype(np.float32)
    x[1, 2, 3] = np.nan
    fs = FrameSource(x)
    assert np.isfinite(fs.rgb(0)).all()  # the range ignores the NaN
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        fs.rgb(1)
    all_nan = FrameSource(np.full((2, 5, 5), np.nan))
    with pytest.raises(ValueError, match="frame 0 contains NaN"):
        all_nan.rgb(0)
    with pytest.raises(ValueError, match="no finite values"):
        all_nan.intensity_range


def test_lazy_access_and_cache(counting_frames):
    data = np.random.default_rng(0).integers(0, 4000, (100, 20, 30)).astype(np.uint16)
    frames = counting_frames(data)
    fs = FrameSource(frames, cache_size=4)
    assert frames.keys == []  # construction reads nothing
    fs.rgb(50)
    n = len(frames.keys)
    assert n <= 13  # a sample of frames for the intensity range, then the frame itself
    fs.rgb(50)
    assert len(frames.keys) == n  # cached
    for t in range(5):
        fs.rgb(t)
    fs.rgb(50)  # evicted from the 4-frame cache: read again
    assert len(frames.keys) == n + 6
    np.testing.assert_array_equal(fs.raw(7), data[7])


def test_cache_is_bounded_in_bytes_not_frames(counting_frames, monkeypatch):
    """Big frames: the cache keeps what fits in its budget, however many frames are read."""
    data = np.random.default_rng(0).integers(0, 256, (12, 300, 400, 3), dtype=np.uint8)
    frame_bytes = 300 * 400 * 3 * 4  # float32 RGB: 1.4 MB
    fs = FrameSource(counting_frames(data), cache_bytes=int(2.5 * frame_bytes))
    for t in range(12):
        fs.rgb(t)
        assert fs.cached_bytes <= 2.5 * frame_bytes
    assert sorted(fs._cache) == [10, 11]
    assert fs.cached_bytes == sum(x.nbytes for x in fs._cache.values()) == 2 * frame_bytes
    # a budget below one frame still keeps the frame just read
    frames = counting_frames(data)
    tiny = FrameSource(frames, cache_bytes=1000)
    for t in (3, 4, 5):
        tiny.rgb(t)
        assert list(tiny._cache) == [t] and tiny.cached_bytes == frame_bytes
    n = len(frames.keys)
    np.testing.assert_allclose(tiny.rgb(5), data[5] / 255.0, atol=1e-6)
    assert len(frames.keys) == n  # served from the cache
    # the default budget is 512 MiB (8000 x 8000 frames: one at a time, not 8 x 768 MB)
    assert FrameSource(data)._cache_bytes == 512 * 2**20
    monkeypatch.setenv("NAPARI_IPNET_FRAME_CACHE_MB", "1.5")
    assert FrameSource(data)._cache_bytes == int(1.5 * 2**20)
    monkeypatch.setenv("NAPARI_IPNET_FRAME_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="NAPARI_IPNET_FRAME_CACHE_MB must be a number of MiB"):
        FrameSource(data)
    with pytest.raises(ValueError, match="cache_bytes"):
        FrameSource(data, cache_bytes=-1)
