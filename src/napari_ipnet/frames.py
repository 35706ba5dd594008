"""Lazy frame access and normalisation to RGB in [0, 1].

A :class:`FrameSource` wraps a (T, H, W) or (T, H, W, C) array-like (numpy, dask,
zarr, memmap, a lazy video reader) and reads one frame at a time. Colour uint8 video
is scaled by 1/255; everything else (grayscale, uint16 microscopy, float) is scaled
robustly between low and high percentiles estimated from a sample of frames, so that
a few hot pixels do not crush the contrast. One channel is replicated to RGB. The
last normalised frames are cached within a memory budget (512 MiB by default).
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.8
#: memory the cache of normalised frames may use (``$NAPARI_IPNET_FRAME_CACHE_MB`` overrides it)
DEFAULT_CACHE_BYTES = 512 * 2**20
CACHE_ENV = "NAPARI_IPNET_FRAME_CACHE_MB"
_SAMPLE_FRAMES = 12
_SAMPLE_PIXELS = 200_000


class FrameSource:
    """Read frames lazily and normalise them to float32 RGB (H, W, 3) in [0, 1].

    Parameters
    ----------
    frames:
        (T, H, W) grayscale or (T, H, W, C) with C in {1, 3, 4} (alpha is dropped).
    cache_size:
        Most normalised frames kept in memory.
    cache_bytes:
        Most bytes they may take (default ``DEFAULT_CACHE_BYTES``, 512 MiB, or
        ``$NAPARI_IPNET_FRAME_CACHE_MB``); the frame read last is always kept, so
        frames larger than this are cached one at a time.
    """

    def __init__(self, frames, cache_size: int = 8, cache_bytes: int | None = None) -> None:
        shape = tuple(getattr(frames, "shape", ()))
        if len(shape) == 2:
            raise ValueError(
                f"expected a sequence of frames (T, H, W) or (T, H, W, C), got a single 2D image "
                f"of shape {shape}; for one frame pass image[None]"
            )
        if len(shape) not in (3, 4):
            raise ValueError(
                f"expected frames shaped (T, H, W) or (T, H, W, C), got shape {shape}; "
                "for a 4D stack (T, Z, Y, X) choose one axis to propagate along and slice the other"
            )
        if len(shape) == 4 and shape[-1] not in (1, 3, 4):
            raise ValueError(
                f"the last axis has {shape[-1]} channels; expected 1, 3 (RGB) or 4 (RGBA). "
                "Pick one channel of a multichannel stack first"
            )
        if shape[0] < 1 or shape[1] < 2 or shape[2] < 2:
            raise ValueError(f"frames shaped {shape} are empty or too small")
        self._frames = frames
        self.shape = shape
        self.n_frames, self.height, self.width = (int(s) for s in shape[:3])
        self.dtype = np.dtype(getattr(frames, "dtype", np.float32))
        self.is_color = len(shape) == 4 and shape[-1] in (3, 4)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._cache_bytes = _cache_bytes(cache_bytes)
        self._cached_bytes = 0
        self._range: tuple[float, float] | None = None
        if self.dtype.kind not in "uifb":
            raise ValueError(f"frames of dtype {self.dtype} are not images")

    def __len__(self) -> int:
        return self.n_frames

    def raw(self, t: int) -> np.ndarray:
        """Frame ``t`` as stored (converted to a numpy array)."""
        self.check_index(t)
        return np.asarray(self._frames[t])

    def check_index(self, t: int) -> int:
        if not isinstance(t, (int, np.integer)) or isinstance(t, bool):
            raise TypeError(f"frame index must be an integer, got {t!r}")
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} is out of range: the sequence has {self.n_frames} frames (0..{self.n_frames - 1})")
        return int(t)

    @property
    def intensity_range(self) -> tuple[float, float]:
        """(low, high) values mapped to 0 and 1."""
        if self._range is None:
            self._range = self._estimate_range()
        return self._range

    def _estimate_range(self) -> tuple[float, float]:
        if self.dtype == np.uint8 and self.is_color:
            return 0.0, 255.0
        if self.dtype == np.bool_:
            return 0.0, 1.0
        idx = np.unique(np.linspace(0, self.n_frames - 1, min(self.n_frames, _SAMPLE_FRAMES)).astype(int))
        samples = []
        per = max(1, _SAMPLE_PIXELS // len(idx))
        rng = np.random.default_rng(0)
        for t in idx:
            v = np.asarray(self._frames[int(t)], dtype=np.float32).ravel()
            v = v[np.isfinite(v)]
            if v.size > per:
                v = rng.choice(v, per, replace=False)
            samples.append(v)
        values = np.concatenate(samples) if samples else np.zeros(1, np.float32)
        if values.size == 0:
            raise ValueError("frames contain no finite values (all NaN or inf)")
        lo, hi = np.percentile(values, [LOW_PERCENTILE, HIGH_PERCENTILE])
        if hi <= lo:  # flat image: fall back to the full range
            lo, hi = float(values.min()), float(values.max())
            if hi <= lo:
                hi = lo + 1.0
        return float(lo), float(hi)

    def rgb(self, t: int) -> np.ndarray:
        """Frame ``t`` as float32 RGB (H, W, 3) in [0, 1]."""
        t = self.check_index(t)
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        x = np.asarray(self._frames[t])
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"frame {t} contains NaN or infinite values; fill or mask them first")
        lo, hi = self.intensity_range
        x = (x.astype(np.float32) - lo) / (hi - lo)
        np.clip(x, 0.0, 1.0, out=x)
        if x.ndim == 2:
            x = np.repeat(x[..., None], 3, axis=-1)
        elif x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        elif x.shape[-1] == 4:
            x = x[..., :3]
        x = np.ascontiguousarray(x)
        self._cache[t] = x
        self._cached_bytes += x.nbytes
        while len(self._cache) > 1 and (
            len(self._cache) > self._cache_size or self._cached_bytes > self._cache_bytes
        ):
            self._cached_bytes -= self._cache.popitem(last=False)[1].nbytes
        return x

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the cache of normalised frames."""
        return self._cached_bytes


def _cache_bytes(value: int | None) -> int:
    """The cache budget in bytes: ``value``, else the environment, else the default."""
    if value is None:
        env = os.environ.get(CACHE_ENV)
        if not env:
            return DEFAULT_CACHE_BYTES
        try:
            value = int(float(env) * 2**20)
        except ValueError:
            raise ValueError(f"${CACHE_ENV} must be a number of MiB, got {env!r}") from None
    if isinstance(value, bool) or int(value) < 0:
        raise ValueError(f"cache_bytes must be a number of bytes >= 0, got {value!r}")
    return int(value)
