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

import functools
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
_SKIP_AHEAD = 100  # forward jumps up to this many frames read through the open decoder


@functools.lru_cache(maxsize=None)
def _passthrough_args() -> tuple[str, ...]:
    """ffmpeg output options that pass every decoded frame through, once, in order.

    Without them ffmpeg drops or duplicates frames to keep a constant frame rate when
    timestamps are irregular (variable frame rate, AVI with B-frames), and the frame
    index would no longer be the decoded frame's index. ``-fps_mode`` replaced
    ``-vsync`` in ffmpeg 5.1.
    """
    import imageio_ffmpeg

    try:
        version = imageio_ffmpeg.get_ffmpeg_version()
    except Exception:  # noqa: BLE001 - assume a recent ffmpeg
        version = ""
    m = re.match(r"n?(\d+)\.(\d+)", version)
    if m and (int(m.group(1)), int(m.group(2))) < (5, 1):
        return ("-vsync", "passthrough")
    return ("-fps_mode", "passthrough")


def _ffmpeg_reason(err: BaseException) -> str:
    """The most telling line of an imageio-ffmpeg error (its ffmpeg log is long)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not ln.startswith("===")]
    for ln in reversed(lines):
        if any(w in ln.lower() for w in ("invalid", "error", "not found", "no such", "unknown", "could not")):
            return ln
    return lines[-1] if lines else type(err).__name__


class VideoFrames:
    """Random access to the frames of a video file, decoded on demand (thread-safe).

    Frame ``i`` is the ``i``-th frame the decoder yields. Reading forward uses the
    open decoder; any other access re-opens the file and lets ffmpeg decode forward
    from the start to the frame (``trim=start_frame=i``), so the frame is exact
    whatever the container's timestamps (seeking by time returns wrong frames in AVI
    files with B-frames). Going back therefore costs decoding the video up to there;
    a cache keeps the last frames read.
    """

    def __init__(self, path) -> None:
        try:
            import imageio_ffmpeg
        except ImportError as err:
            raise ImportError(
                f"cannot open video {path}: video support needs the imageio-ffmpeg package "
                "(pip install imageio-ffmpeg)"
            ) from err
        self.path = Path(path)
        self._lock = threading.Lock()
        self._state: dict = {"gen": None}  # the open decoder, shared with the finaliser
        self._next = 0  # index of the frame the open decoder yields next
        # stop the ffmpeg process when the array (and so this object) is dropped
        weakref.finalize(self, _close_decoder, self._state)
        meta = self._open(0)
        self.fps = float(meta.get("fps") or 0.0)
        width, height = meta["size"]
        self.frame_shape = (int(height), int(width), 3)
        self.dtype = np.dtype(np.uint8)
        first = self._read_next()
        if first is None:
            raise OSError(f"{self.path} has no decodable frames")
        try:
            n = imageio_ffmpeg.count_frames_and_secs(str(self.path))[0]
        except Exception as err:  # noqa: BLE001 - ffmpeg failed while decoding the whole file
            raise OSError(f"cannot count the frames of {self.path}: {_ffmpeg_reason(err)}") from err
        if not n or n < 1:
            raise OSError(f"{self.path} has no decodable frames")
        self.n_frames = int(n)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict({0: first})

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_frames, *self.frame_shape)

    def _open(self, start: int) -> dict:
        """(Re)start the decoder so that it yields frame ``start`` next; its metadata."""
        import imageio_ffmpeg

        _close_decoder(self._state)
        out = ["-map", "0:v:0", *_passthrough_args()]
        if start > 0:
            out += ["-vf", f"trim=start_frame={int(start)}"]
        gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24", output_params=out)
        try:
            meta = next(gen)
        except Exception as err:  # noqa: BLE001 - not a video, corrupt header, unknown codec
            gen.close()
            raise OSError(f"cannot read video {self.path}: ffmpeg could not decode it ({_ffmpeg_reason(err)})") from err
        self._state["gen"] = gen
        self._next = int(start)
        return meta

    def _read_next(self, keep: bool = True) -> np.ndarray | None:
        """The next frame of the open decoder (None at the end); bytes only unless ``keep``."""
        try:
            raw = next(self._state["gen"])
        except StopIteration:
            _close_decoder(self._state)
            return None
        except Exception as err:  # noqa: BLE001 - truncated or corrupt data
            _close_decoder(self._state)
            raise OSError(f"cannot decode frame {self._next} of {self.path}: {_ffmpeg_reason(err)}") from err
        self._next += 1
        if not keep:
            return None
        return np.frombuffer(raw, np.uint8).reshape(self.frame_shape).copy()

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (H, W, 3) uint8, exactly the ``i``-th decoded frame."""
        i = int(i)
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} is out of range: {self.path} has {self.n_frames} frames")
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
            if self._state["gen"] is None or not self._next <= i <= self._next + _SKIP_AHEAD:
                self._open(i)
            while self._next < i:
                self._read_next(keep=False)
                if self._state["gen"] is None:
                    break
            x = self._read_next() if self._state["gen"] is not None else None
            if x is None:
                raise OSError(
                    f"cannot decode frame {i} of {self.path}: the decoder stops after {self._next} frames "
                    f"although ffmpeg counted {self.n_frames}; the end of the file may be damaged"
                )
            self._cache[i] = x
            if len(self._cache) > _CACHE_FRAMES:
                self._cache.popitem(last=False)
            return x

    def close(self) -> None:
        with self._lock:
            _close_decoder(self._state)


def _close_decoder(state: dict) -> None:
    gen, state["gen"] = state.get("gen"), None
    if gen is None:
        return
    try:
        gen.close()  # stops the ffmpeg process
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
