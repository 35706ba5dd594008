"""Which frames of a napari image layer form the sequence a Session works on.

No Qt here: this module turns an image layer (2D+t grayscale, RGB video, a 4D stack
(T, Z, Y, X), a 5D stack...) plus the user's choices (the axis to propagate along,
the index of every other leading axis, a colour channel) into

- a :class:`SequenceSpec`, hashable, that says where frame ``f`` sits in the layer
  (and in an output Labels layer of the same spatial shape), and
- a :class:`FrameView`, a lazy array-like ``(n, H, W)`` or ``(n, H, W, C)`` with
  ``shape``, ``dtype``, ``ndim`` and ``__getitem__`` that reads one frame from the
  layer data on demand (numpy, dask, zarr, a lazy video reader), never the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class UnsupportedLayerError(ValueError):
    """The layer cannot be segmented as a sequence (with what to do instead)."""


def layer_data(layer):
    """Full-resolution data of an image layer (level 0 of a multiscale pyramid)."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        data = data[0]
    return data


def spatial_shape(layer) -> tuple[int, ...]:
    """Shape without the colour axis of an RGB(A) layer: (..., H, W)."""
    shape = tuple(int(s) for s in layer_data(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def check_layer(layer) -> None:
    """Raise :class:`UnsupportedLayerError` when ``layer`` is not a sequence."""
    if layer is None:
        raise UnsupportedLayerError("no image layer: open a video, a time-lapse or a z-stack first")
    if type(layer).__name__ != "Image":
        raise UnsupportedLayerError(
            f"layer {layer.name!r} is a {type(layer).__name__} layer; choose an Image layer"
        )
    shape = spatial_shape(layer)
    rgb = getattr(layer, "rgb", False)
    if len(shape) < 3:
        kind = "an RGB image" if rgb else "a 2D image"
        raise UnsupportedLayerError(
            f"layer {layer.name!r} is {kind} of shape {tuple(layer_data(layer).shape)}: IPNet needs a "
            "sequence (time-lapse, video or z-stack) with at least one axis before Y, X. "
            "Open a stack, or stack several images (File > Open Files as Stack)"
        )
    if shape[-1] < 2 or shape[-2] < 2:
        raise UnsupportedLayerError(f"layer {layer.name!r} has frames of {shape[-2:]} pixels: too small")
    dtype = np.dtype(getattr(layer_data(layer), "dtype", np.float32))
    if dtype.kind not in "uifb":
        raise UnsupportedLayerError(f"layer {layer.name!r} holds {dtype} data, not image intensities")


@dataclass(frozen=True)
class SequenceSpec:
    """Where frame ``f`` of the sequence lives in a layer.

    ``ndim`` counts the spatial axes of the layer (without an RGB axis); the last two
    are Y, X. ``axis`` is the leading axis the sequence runs along; ``fixed`` gives
    the index of every other leading axis as ``((axis, index), ...)``. ``channel`` is
    None to use all colour channels of an RGB layer, or one channel index.
    """

    ndim: int
    axis: int
    fixed: tuple[tuple[int, int], ...] = ()
    channel: int | None = None

    def index(self, frame: int) -> tuple[int, ...]:
        """Index tuple of the leading axes for ``frame`` (then ``[..., y, x]``)."""
        idx = [0] * (self.ndim - 2)
        for ax, i in self.fixed:
            idx[ax] = int(i)
        idx[self.axis] = int(frame)
        return tuple(idx)

    def frame_of(self, position) -> tuple[int, SequenceSpec]:
        """(frame, spec) of a point ``position`` in layer data coordinates."""
        pos = [int(round(float(v))) for v in position[: self.ndim - 2]]
        fixed = tuple((ax, pos[ax]) for ax in range(self.ndim - 2) if ax != self.axis)
        return pos[self.axis], SequenceSpec(self.ndim, self.axis, fixed, self.channel)

    def describe(self, axis_labels=None) -> str:
        labels = list(axis_labels) if axis_labels else [f"axis {i}" for i in range(self.ndim)]
        text = f"along {labels[self.axis]}"
        if self.fixed:
            text += " at " + ", ".join(f"{labels[ax]}={i}" for ax, i in self.fixed)
        return text


def make_spec(layer, axis: int, position=None, channel: int | None = None) -> SequenceSpec:
    """Spec for ``layer`` running along ``axis``; other leading axes at ``position``.

    ``position`` is a point in the layer's data coordinates (at least the leading
    axes); missing or out-of-range values are clipped into the layer.
    """
    check_layer(layer)
    shape = spatial_shape(layer)
    ndim = len(shape)
    if not 0 <= axis < ndim - 2:
        raise UnsupportedLayerError(
            f"axis {axis} cannot be propagated along: layer {layer.name!r} has leading axes 0..{ndim - 3}"
        )
    pos = list(position) if position is not None else [0] * ndim
    fixed = []
    for ax in range(ndim - 2):
        if ax == axis:
            continue
        v = int(round(float(pos[ax]))) if ax < len(pos) else 0
        fixed.append((ax, int(np.clip(v, 0, shape[ax] - 1))))
    if channel is not None:
        if not getattr(layer, "rgb", False):
            channel = None
        else:
            n_ch = int(layer_data(layer).shape[-1])
            if not 0 <= channel < n_ch:
                raise UnsupportedLayerError(f"channel {channel} does not exist (the layer has {n_ch})")
    return SequenceSpec(ndim, axis, tuple(fixed), channel)


class FrameView:
    """Lazy ``(n, H, W[, C])`` view of the frames of ``spec`` in ``data``.

    ``view[f]`` reads only frame ``f`` from the layer data; nothing is copied up front.
    """

    def __init__(self, data, spec: SequenceSpec, rgb: bool = False) -> None:
        self._data = data
        self.spec = spec
        shape = tuple(int(s) for s in data.shape)
        self._rgb = bool(rgb)
        h, w = shape[spec.ndim - 2], shape[spec.ndim - 1]
        n = shape[spec.axis]
        if self._rgb and spec.channel is None:
            self.shape: tuple[int, ...] = (n, h, w, shape[-1])
        else:
            self.shape = (n, h, w)
        self.dtype = np.dtype(data.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, frame) -> np.ndarray:
        if isinstance(frame, (int, np.integer)):
            n = self.shape[0]
            f = int(frame)
            if f < 0:
                f += n
            if not 0 <= f < n:
                raise IndexError(f"frame {frame} out of range 0..{n - 1}")
            x = self._data[self.spec.index(f)]
            x = np.asarray(x)
            if self._rgb and self.spec.channel is not None:
                x = x[..., self.spec.channel]
            return x
        if isinstance(frame, slice):
            return np.stack([self[i] for i in range(*frame.indices(self.shape[0]))])
        raise TypeError(f"FrameView supports an integer frame index or a slice, got {frame!r}")

    def __array__(self, dtype=None, copy=None):  # pragma: no cover - convenience only
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def frame_view(layer, spec: SequenceSpec) -> FrameView:
    return FrameView(layer_data(layer), spec, rgb=getattr(layer, "rgb", False))
