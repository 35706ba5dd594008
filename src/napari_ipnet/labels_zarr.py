"""Label stacks as OME-Zarr (NGFF v0.4, zarr v2 layout), written without zarr installed.

:func:`write_labels_zarr` writes one multiscale level of (T, H, W) labels, one chunk
per frame (zlib-compressed, as numcodecs' ``zlib`` codec reads it), with the
``image-label`` metadata of the NGFF specification, so that napari (with
``napari-ome-zarr``, or its built-in zarr reader when ``zarr`` is installed), zarr
and ome-zarr-py open it. Frames are written one at a time from a callable, so that a
long stack never has to be held in memory. The store is written into a temporary
sibling folder that then replaces ``path``: an interrupted write leaves the previous
store as it was.

:func:`read_labels_zarr` reads such a store back (numpy only).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

NGFF_VERSION = "0.4"
_DTYPES = {np.dtype(np.uint8): "|u1", np.dtype(np.uint16): "<u2", np.dtype(np.uint32): "<u4"}


def write_labels_zarr(
    path: str | os.PathLike,
    frame: Callable[[int], np.ndarray] | np.ndarray,
    shape: tuple[int, int, int] | None = None,
    dtype=np.uint8,
    axis: str = "t",
    name: str = "labels",
    source: dict | None = None,
) -> Path:
    """Write (T, H, W) labels as an OME-Zarr label image (NGFF v0.4).

    Parameters
    ----------
    path : str or os.PathLike
        The store to write (a folder, conventionally ``*.zarr``); replaced if it exists.
    frame : callable or numpy.ndarray
        ``frame(t) -> (H, W)`` labels of frame ``t``, or the whole (T, H, W) array.
    shape : tuple of int, optional
        (T, H, W); needed when ``frame`` is a callable.
    dtype : numpy dtype
        uint8, uint16 or uint32 (the frames are cast to it; a label that does not fit
        is a ValueError).
    axis : str
        Name of the first axis: ``"t"`` (time, the default) or ``"z"``.
    name : str
        The image's name in the metadata.
    source : dict, optional
        Extra JSON-able provenance stored under ``image-label.source``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from ._writer import _swap_in

    if not callable(frame):
        arr = np.asarray(frame)
        if arr.ndim != 3:
            raise ValueError(f"labels must be (T, H, W), got shape {arr.shape}")
        shape, frame = arr.shape, arr.__getitem__
    if shape is None or len(shape) != 3:
        raise ValueError("shape (T, H, W) is needed when frame is a callable")
    dt = np.dtype(dtype)
    if dt not in _DTYPES:
        raise ValueError(f"labels dtype must be uint8, uint16 or uint32, got {dt}")
    if axis not in ("t", "z"):
        raise ValueError(f"axis must be 't' or 'z', got {axis!r}")
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        t_n, h, w = (int(s) for s in shape)
        axes = [
            {"name": axis, "type": "time" if axis == "t" else "space"},
            {"name": "y", "type": "space"},
            {"name": "x", "type": "space"},
        ]
        attrs = {
            "multiscales": [{
                "version": NGFF_VERSION,
                "name": name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
            }],
            "image-label": {"version": NGFF_VERSION, "source": source or {}},
        }
        (tmp / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        level = tmp / "0"
        level.mkdir()
        top = np.iinfo(dt).max
        for t in range(t_n):
            lab = np.asarray(frame(t))
            if lab.shape != (h, w):
                raise ValueError(f"frame {t} has shape {lab.shape}, expected {(h, w)}")
            if lab.size and (int(lab.min()) < 0 or int(lab.max()) > top):
                raise ValueError(f"frame {t} has labels outside 0..{top} ({dt})")
            data = np.ascontiguousarray(lab.astype(dt.newbyteorder("<"), copy=False)).tobytes()
            (level / f"{t}.0.0").write_bytes(zlib.compress(data, 5))
        (level / ".zarray").write_text(json.dumps({
            "zarr_format": 2, "shape": [t_n, h, w], "chunks": [1, h, w], "dtype": _DTYPES[dt],
            "compressor": {"id": "zlib", "level": 5}, "fill_value": 0, "order": "C", "filters": None,
            "dimension_separator": ".",
        }))
        (tmp / ".zattrs").write_text(json.dumps(attrs, indent=1))  # written last: marks a complete store
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_labels_zarr(path: str | os.PathLike) -> np.ndarray:
    """Read the (T, H, W) labels of a store :func:`write_labels_zarr` wrote.

    Raises
    ------
    ValueError
        If ``path`` is not such a store (no NGFF label metadata, another compressor).
    """
    root = Path(os.fspath(path))
    try:
        attrs = json.loads((root / ".zattrs").read_text())
        meta = json.loads((root / "0" / ".zarray").read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{root} is not an OME-Zarr label store ({err})") from err
    if "image-label" not in attrs or "multiscales" not in attrs:
        raise ValueError(f"{root} has no NGFF image-label metadata")
    if (meta.get("compressor") or {}).get("id") != "zlib" or meta.get("chunks", [None])[0] != 1:
        raise ValueError(f"{root}: only one-frame zlib chunks are read here (use zarr for other stores)")
    shape = tuple(meta["shape"])
    dt = np.dtype(meta["dtype"])
    out = np.zeros(shape, dt)
    for t in range(shape[0]):
        chunk = root / "0" / f"{t}.0.0"
        if chunk.exists():
            out[t] = np.frombuffer(zlib.decompress(chunk.read_bytes()), dt).reshape(shape[1:])
    return out
