"""Writers for Labels layers: a TIFF stack, or DAVIS-style indexed PNGs.

- ``write_labels``: the plugin's writer (``viewer.layers.save(path, plugin="napari-ipnet")``),
  which picks the format from the path (:func:`labels_target`): a folder or a ``.png``
  name gives DAVIS PNGs, ``.tif`` / ``.tiff`` a TIFF stack, a name without a suffix a
  TIFF stack with ``.tif`` added.
- ``write_labels_tiff``: the whole label array in one (zlib-compressed) TIFF file,
  marked as labels so that the plugin's reader opens it as a Labels layer again.
- ``write_labels_davis``: a folder with one palette PNG per frame, ``00000.png``,
  ``00001.png``... using the DAVIS / PASCAL VOC palette (label k is colour k), as in
  DAVIS ``Annotations/480p/<sequence>``. Needs (T, H, W) labels below 256. The
  folder is written beside the target and swapped in, so it never mixes two runs.

Labels must be integers (or booleans) >= 0; anything else is a ValueError, never a
silent truncation or wrap-around.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
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


def _check_labels(arr: np.ndarray, top: int | None = None, hint: str = "") -> tuple[int, int]:
    """Refuse what is not a label image: non-integers, negatives, labels above ``top``.

    Returns the (min, max) label (0, 0 for an empty array).
    """
    if arr.dtype != bool and arr.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be integers (or booleans), got {arr.dtype}; convert them first "
            "(e.g. np.rint(labels).astype(np.uint16)) so that no label is truncated"
        )
    if arr.size == 0:
        return 0, 0
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"negative labels cannot be written (the smallest label is {lo})")
    if top is not None and hi > top:
        raise ValueError(f"labels above {top} cannot be written here (the largest label is {hi}){hint}")
    return lo, hi


#: key of the TIFF description (tifffile's JSON "shaped" metadata) that marks the label
#: stacks this plugin writes, so that its reader opens them as Labels again
LABELS_KEY = "napari-ipnet"


def write_labels_tiff(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: labels -> one TIFF stack.

    Labels are written unsigned, in the smallest of uint16, uint32 and uint64 that holds
    them when the layer's dtype is signed or 64-bit; uint8, uint16, uint32 and bool
    layers are written as they are. The file is marked (``{"napari-ipnet": "labels"}``
    in its description) so that the plugin's reader opens it as a Labels layer.
    """
    import tifffile

    arr = _as_array(data)
    _, hi = _check_labels(arr)
    if arr.dtype.kind == "i" or arr.dtype.itemsize > 4:
        arr = arr.astype(np.uint16 if hi < 2**16 else np.uint32 if hi < 2**32 else np.uint64)
    out = Path(os.fspath(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, arr, compression="zlib", photometric="minisblack", metadata={"axes": _axes(arr.ndim), LABELS_KEY: "labels"})
    return [str(out)]


#: the suffixes of a TIFF stack; ``TIFF_SUFFIXES[0]`` is added to a name without one
TIFF_SUFFIXES = (".tif", ".tiff")
#: the suffix that asks for DAVIS PNGs (written as a folder of the name without it)
PNG_SUFFIX = ".png"


def labels_target(path: str | os.PathLike) -> tuple[str, Path]:
    """The format and the path that :func:`write_labels` writes for ``path``.

    - a folder (an existing directory, or a path that ends with a separator):
      ``("davis", folder)``, one PNG per frame in it;
    - ``NAME.png``: ``("davis", NAME)``, the folder of PNGs named without the suffix;
    - ``NAME.tif`` / ``NAME.tiff`` (any case): ``("tiff", path)``;
    - any other name: ``("tiff", path + ".tif")``.

    napari adds the plugin's first suffix (``.tif``) to a name that has none before
    calling the writer, so a folder path ``"out/"`` arrives as ``"out/.tif"``: a bare
    ``.tif`` file name counts as the folder it was added to.

    Parameters
    ----------
    path:
        The path the user asked for.

    Returns
    -------
    tuple
        ``("tiff" | "davis", path to write)``.
    """
    text = os.fspath(path)
    seps = tuple(s for s in (os.sep, os.altsep, "/") if s)
    target = Path(text)
    if text.endswith(seps) or target.is_dir():
        return "davis", target
    if target.name.lower() == TIFF_SUFFIXES[0]:  # "folder/" + the suffix napari added
        return "davis", target.parent
    suffix = target.suffix.lower()
    if suffix == PNG_SUFFIX:
        return "davis", target.with_suffix("")
    if suffix in TIFF_SUFFIXES:
        return "tiff", target
    return "tiff", target.with_name(target.name + TIFF_SUFFIXES[0])


def write_labels(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: labels -> a TIFF stack or DAVIS PNGs, chosen from ``path``.

    Parameters
    ----------
    path:
        Where to write; :func:`labels_target` says what each kind of path gives.
    data:
        The Labels layer's data (integers or booleans >= 0).
    meta:
        The layer's metadata (unused).

    Returns
    -------
    list of str
        The file (TIFF) or the folder (PNGs) written.
    """
    kind, target = labels_target(path)
    if kind == "davis":
        return write_labels_davis(str(target), data, meta)
    return write_labels_tiff(str(target), data, meta)


def _axes(ndim: int) -> str:
    return {2: "YX", 3: "TYX", 4: "TZYX"}.get(ndim, "Q" * (ndim - 2) + "YX")


_FRAME_NAME = re.compile(r"\d+\.png")
_SYSTEM_FILES = ("Thumbs.db", "desktop.ini")  # hidden files (.DS_Store) too: replaced with the folder


def _replaceable(p: Path) -> bool:
    """Whether the file ``p`` of an existing label folder may go when it is replaced."""
    return p.is_file() and (_FRAME_NAME.fullmatch(p.name) is not None or p.name.startswith(".") or p.name in _SYSTEM_FILES)


def write_labels_davis(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: (T, H, W) labels -> folder of indexed PNGs (DAVIS layout).

    The frames are written into a temporary folder beside ``path`` that then replaces
    it: a folder written earlier (more frames, other labels) is replaced as a whole,
    and on any failure the old folder is left untouched. An existing folder that holds
    anything but frame PNGs (``00000.png``...) is refused rather than replaced.
    """
    from PIL import Image

    arr = _as_array(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"DAVIS PNG folders hold (T, H, W) labels; this layer has shape {arr.shape}. "
            "Save a 4D stack as a TIFF stack instead"
        )
    _check_labels(arr, 255, hint=": DAVIS palette PNGs hold labels 0..255; save as a TIFF stack instead")
    folder = Path(os.fspath(path))
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"{folder} is a file; DAVIS labels are written as a folder of PNGs")
        others = sorted(p.name for p in folder.iterdir() if not _replaceable(p))
        if others:
            raise ValueError(
                f"{folder} holds other files than frame PNGs ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); it would be replaced as a whole, so "
                "choose a new or empty folder"
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().ravel().tolist()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        for t in range(arr.shape[0]):
            im = Image.fromarray(np.ascontiguousarray(arr[t].astype(np.uint8)), mode="P")
            im.putpalette(palette)
            im.save(tmp / f"{t:05d}.png", optimize=True)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [str(folder)]


def _swap_in(new: Path, target: Path) -> None:
    """Replace the folder ``target`` (if any) by ``new`` with renames only."""
    if not target.exists():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)  # a free name on the same file system
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)  # put the old folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
