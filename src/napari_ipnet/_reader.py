"""Reader: videos (mp4, avi, mov, ...) and folders of frames, decoded lazily.

- A video becomes a dask array (T, H, W, 3) uint8 whose chunks are single frames,
  decoded on demand with imageio's ffmpeg plugin (``imageio-ffmpeg``); a small cache
  keeps the last decoded frames and the decoder is reused for sequential access.
- A folder of frames (e.g. a DAVIS ``JPEGImages/480p/<sequence>`` folder) becomes a
  dask array of its images in natural order, each file read on demand. A folder of
  palette (indexed) PNGs, like DAVIS ``Annotations``, opens as a Labels layer.

No torch here: this module is imported when napari asks which plugin opens a path.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".m4v", ".mkv", ".webm")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_CACHE_FRAMES = 32


def napari_get_reader(path):
    """npe2 reader hook: a reader function for ``path``, or None if not ours."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(os.fspath(path))
    if p.is_dir():
        return read_frame_folder if frame_files(p) else None
    if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
        return read_video
    return None


def _natural_key(name: str):
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def frame_files(folder) -> list[Path]:
    """Image files of a folder in natural order (00002.jpg before 00010.jpg)."""
    folder = Path(folder)
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FRAME_EXTENSIONS and not f.name.startswith(".")]
    return sorted(files, key=lambda f: _natural_key(f.name))


# ---------------------------------------------------------------------- video
class VideoFrames:
    """Random access to the frames of a video file, decoded on demand (thread-safe)."""

    def __init__(self, path) -> None:
        import imageio.v2 as iio2

        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._reader = iio2.get_reader(str(self.path), format="ffmpeg")
        except Exception as err:  # noqa: BLE001
            raise OSError(
                f"cannot open video {self.path}: {err}. Video support needs the imageio-ffmpeg "
                "package (pip install imageio-ffmpeg)"
            ) from err
        meta = self._reader.get_meta_data()
        self.fps = float(meta.get("fps") or 0.0)
        first = np.asarray(self._reader.get_data(0))
        self.frame_shape = first.shape
        self.dtype = first.dtype
        n = self._reader.count_frames()
        if not n or n < 1:
            raise OSError(f"{self.path} has no decodable frames")
        self.n_frames = int(n)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict({0: first})
        # stop the ffmpeg process when the array (and so this object) is dropped
        weakref.finalize(self, _close_quietly, self._reader)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_frames, *self.frame_shape)

    def frame(self, i: int) -> np.ndarray:
        i = int(i)
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
            try:
                x = np.asarray(self._reader.get_data(i))
            except IndexError:
                # count_frames can exceed what the decoder yields at the very end
                x = self._cache[max(self._cache)] if self._cache else np.zeros(self.frame_shape, self.dtype)
            self._cache[i] = x
            if len(self._cache) > _CACHE_FRAMES:
                self._cache.popitem(last=False)
            return x

    def close(self) -> None:
        with self._lock:
            self._reader.close()


def _close_quietly(reader) -> None:
    try:
        reader.close()
    except Exception:  # noqa: BLE001 - interpreter shutting down, already closed
        pass


def _lazy_stack(n: int, frame_shape: tuple[int, ...], dtype, load):
    """Dask array (n, *frame_shape), one chunk per frame, ``load(i)`` on demand."""
    import dask.array as da

    def block(block_id=None):
        return np.asarray(load(block_id[0]))[None]

    chunks = ((1,) * n,) + tuple((s,) for s in frame_shape)
    return da.map_blocks(block, dtype=dtype, chunks=chunks, meta=np.empty((0,) * (1 + len(frame_shape)), dtype))


def video_array(path):
    """Lazy dask array (T, H, W, C) of a video file."""
    video = VideoFrames(path)
    return _lazy_stack(video.n_frames, video.frame_shape, video.dtype, video.frame), video


def read_video(path):
    p = Path(os.fspath(path[0] if isinstance(path, (list, tuple)) else path))
    data, video = video_array(p)
    meta = {"name": p.stem, "rgb": data.shape[-1] in (3, 4), "metadata": {"source": str(p), "fps": video.fps}}
    return [(data, meta, "image")]


# ---------------------------------------------------------------------- frame folders
def _is_palette_png(path: Path) -> bool:
    if path.suffix.lower() != ".png":
        return False
    from PIL import Image

    with Image.open(path) as im:
        return im.mode == "P"


def _read_file(path: Path, palette: bool) -> np.ndarray:
    if palette:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im)  # palette indices, not colours
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def folder_array(folder):
    """Lazy dask array of a folder of frames and whether they are palette labels."""
    from PIL import Image

    files = frame_files(folder)
    if not files:
        raise OSError(f"{folder} holds no image files ({', '.join(FRAME_EXTENSIONS)})")
    palette = _is_palette_png(files[0])
    first = _read_file(files[0], palette)
    size = (first.shape[1], first.shape[0])
    for f in files[1:]:
        with Image.open(f) as im:  # header only
            if im.size != size:
                raise OSError(f"{f.name} is {im.size[0]}x{im.size[1]} but {files[0].name} is {size[0]}x{size[1]}: "
                              "all frames of a folder must have the same size")

    def load(i):
        return first if i == 0 else _read_file(files[i], palette)

    return _lazy_stack(len(files), first.shape, first.dtype, load), palette


def read_frame_folder(path):
    p = Path(os.fspath(path[0] if isinstance(path, (list, tuple)) else path))
    data, palette = folder_array(p)
    name = p.name
    if palette:
        return [(data, {"name": f"{name} labels", "metadata": {"source": str(p)}}, "labels")]
    rgb = data.ndim == 4 and data.shape[-1] in (3, 4)
    return [(data, {"name": name, "rgb": rgb, "metadata": {"source": str(p)}}, "image")]
