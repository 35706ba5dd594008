"""Writers for Labels layers: a TIFF stack, or DAVIS-style indexed PNGs.

- ``write_labels_tiff``: the whole label array in one (zlib-compressed) TIFF file.
- ``write_labels_davis``: a folder with one palette PNG per frame, ``00000.png``,
  ``00001.png``... using the DAVIS / PASCAL VOC palette (label k is colour k), as in
  DAVIS ``Annotations/480p/<sequence>``. Needs (T, H, W) labels below 256.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def davis_palette() -> np.ndarray:
    """The 256-colour DAVIS / PASCAL VOC palette, (256, 3) uint8."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _as_array(data) -> np.ndarray:
    if isinstance(data, (list, tuple)):  # multiscale: full resolution
        data = data[0]
    return np.asarray(data)


def write_labels_tiff(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: labels -> one TIFF stack."""
    import tifffile

    arr = _as_array(data)
    if arr.dtype.kind not in "iu" and arr.dtype != bool:
        raise ValueError(f"labels must be integers, got {arr.dtype}")
    if arr.dtype.kind == "i":
        if arr.min(initial=0) < 0:
            raise ValueError("negative labels cannot be written")
        arr = arr.astype(np.uint16 if arr.max(initial=0) < 65536 else np.uint32)
    out = Path(os.fspath(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, arr, compression="zlib", photometric="minisblack", metadata={"axes": _axes(arr.ndim)})
    return [str(out)]


def _axes(ndim: int) -> str:
    return {2: "YX", 3: "TYX", 4: "TZYX"}.get(ndim, "Q" * (ndim - 2) + "YX")


def write_labels_davis(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: (T, H, W) labels -> folder of indexed PNGs (DAVIS layout)."""
    from PIL import Image

    arr = _as_array(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"DAVIS PNG folders hold (T, H, W) labels; this layer has shape {arr.shape}. "
            "Save a 4D stack as a TIFF stack instead"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("DAVIS palette PNGs hold labels 0..255; save as a TIFF stack instead")
    folder = Path(os.fspath(path))
    folder.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().ravel().tolist()
    written = []
    for t in range(arr.shape[0]):
        im = Image.fromarray(np.ascontiguousarray(arr[t].astype(np.uint8)), mode="P")
        im.putpalette(palette)
        f = folder / f"{t:05d}.png"
        im.save(f, optimize=True)
        written.append(str(f))
    return [str(folder)]
