"""Reader: videos (mp4, avi, mov, ...) and folders of frames, decoded lazily.

- A video becomes a dask array (T, H, W, 3) uint8 whose chunks are single frames,
  decoded on demand with ffmpeg (``imageio-ffmpeg``); frame ``i`` is exactly the
  ``i``-th decoded frame, whatever the container's timestamps. A small cache keeps
  the last decoded frames and the decoder is reused for sequential access.
- A folder of frames (e.g. a DAVIS ``JPEGImages/480p/<sequence>`` folder) becomes a
  dask array of its images in natural order, each file read on demand. A folder of
  palette (indexed) PNGs, like DAVIS ``Annotations``, opens as a Labels layer. 8-bit
  colour and grayscale images may be mixed (all are read as RGB); other frames must
  share one shape and dtype. Errors name the file.
- A TIFF stack opens with the axis names its metadata gives (ImageJ hyperstack, OME:
  tifffile's ``series[0].axes``) as the layer's ``axis_labels``, so a (T, Z, Y, X)
  stack shows t and z rather than two unnamed axes; a channel axis becomes one layer
  per channel. Uncompressed files are memory-mapped. A label stack this plugin wrote
  (marked in its description, see ``_writer.write_labels_tiff``) opens as Labels.

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
from typing import NamedTuple

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
    if p.suffix.lower() in _TIFF and p.is_file():
        return read_tiff
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
_TIFF = (".tif", ".tiff")
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_GRAY8_MODES = frozenset({"L", "LA", "La", "1"})
_NATIVE_MODES = {"I;16": np.uint16, "I;16L": np.uint16, "I;16B": np.uint16, "I;16N": np.uint16,
                 "I": np.int32, "F": np.float32}


class _Probe(NamedTuple):
    """What a frame file holds, from its header: its array shape and dtype as stored,
    its PIL mode (None for TIFFs, read with tifffile) and its kind: ``"colour8"``,
    ``"gray8"`` (8-bit images that convert to RGB), ``"palette"`` or ``"native"``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    mode: str | None
    kind: str

    def describe(self) -> str:
        what = {"colour8": "8-bit colour", "gray8": "8-bit grayscale", "palette": "a palette PNG"}.get(self.kind)
        mode = f" (mode {self.mode})" if self.mode else ""
        return f"{what or self.dtype} {self.shape}{mode}"


def _probe(path: Path) -> _Probe:
    """Read the header of one frame file (OSError naming the file if it cannot)."""
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
            if dtype == np.uint8 and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))):
                return _Probe(shape, dtype, None, "gray8" if len(shape) == 2 else "colour8")
            return _Probe(shape, dtype, None, "native")
        from PIL import Image

        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
            if mode == "P" and path.suffix.lower() == ".png":
                return _Probe((h, w), np.dtype(np.uint8), mode, "palette")
            if mode in _COLOUR_MODES:
                return _Probe((h, w, 3), np.dtype(np.uint8), mode, "colour8")
            if mode in _GRAY8_MODES:
                return _Probe((h, w), np.dtype(np.uint8), mode, "gray8")
            if mode in _NATIVE_MODES:
                return _Probe((h, w), np.dtype(_NATIVE_MODES[mode]), mode, "native")
            probe = np.asarray(im.crop((0, 0, 1, 1)))  # a rare mode: decode to learn its dtype
            return _Probe((h, w, *probe.shape[2:]), probe.dtype.newbyteorder("="), mode, "native")
    except Exception as err:  # noqa: BLE001 - unknown format, damaged header
        raise OSError(f"cannot read {path}: {type(err).__name__}: {err}") from err


def _folder_plan(files: list[Path], probes: list[_Probe]) -> tuple[str, tuple[int, ...], np.dtype]:
    """How the files of one folder are read: ("labels" | "rgb" | "gray" | "native", shape, dtype).

    8-bit colour and grayscale images (RGBA, palette, gray) may be mixed: they are all
    converted to RGB. Anything else must share the first file's shape and dtype.
    """
    first = probes[0]
    if first.kind == "palette":
        for f, p in zip(files, probes):
            if p.kind != "palette":
                raise OSError(
                    f"{f} is {p.describe()}, not a palette PNG like {files[0].name}: a folder of label "
                    "PNGs must hold only palette PNGs"
                )
        plan = "labels"
    elif all(p.kind in ("colour8", "gray8", "palette") for p in probes):
        plan = "rgb" if any(p.kind != "gray8" for p in probes) else "gray"
    else:
        plan = "native"
    h, w = first.shape[:2] if plan != "native" else (None, None)
    for f, p in zip(files, probes):
        if plan != "native" and p.shape[:2] != (h, w):
            raise OSError(
                f"{f.name} is {p.shape[1]}x{p.shape[0]} but {files[0].name} is {w}x{h}: "
                "all frames of a folder must have the same size"
            )
        if plan == "native" and (p.shape, p.dtype) != (first.shape, first.dtype):
            raise OSError(
                f"{f} is {p.describe()} but {files[0].name} is {first.describe()}: all frames of a folder "
                "must have the same size, dtype and channels (only 8-bit colour and grayscale images "
                "can be mixed; they are read as RGB)"
            )
    shape = {"labels": (h, w), "rgb": (h, w, 3), "gray": (h, w)}.get(plan, first.shape)
    return plan, shape, first.dtype if plan == "native" else np.dtype(np.uint8)


def _read_frame(path: Path, plan: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """One frame file read and converted as ``plan`` says (OSError naming the file)."""
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            x = np.asarray(tifffile.imread(path))
            if plan == "rgb" and x.ndim == 2:
                x = np.repeat(x[..., None], 3, axis=-1)
            elif plan == "rgb" and x.shape[-1] == 4:
                x = x[..., :3]
        else:
            from PIL import Image

            with Image.open(path) as im:
                if plan == "rgb" and im.mode != "RGB":
                    im = im.convert("RGB")  # alpha dropped, palette and gray expanded
                elif plan == "gray" and im.mode != "L":
                    im = im.convert("L")
                x = np.asarray(im)  # a palette PNG of a label folder: its indices
    except Exception as err:  # noqa: BLE001 - truncated or damaged file
        raise OSError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    x = x.astype(dtype, copy=False)
    if x.shape != shape:
        raise OSError(f"{path} holds an array of shape {x.shape}, expected {shape} like the other frames")
    return x


def folder_array(folder):
    """Lazy dask array of a folder of frames and whether they are palette labels.

    Every file's header is read first: the frames must share their size, and their
    dtype and channels unless they are 8-bit colour and grayscale images (RGB, RGBA,
    palette, gray), which are all read as RGB. Errors name the file.
    """
    files = frame_files(folder)
    if not files:
        raise OSError(f"{folder} holds no image files ({', '.join(FRAME_EXTENSIONS)})")
    probes = [_probe(f) for f in files]
    plan, shape, dtype = _folder_plan(files, probes)
    first = _read_frame(files[0], plan, shape, dtype)

    def load(i):
        return first if i == 0 else _read_frame(files[i], plan, shape, dtype)

    return _lazy_stack(len(files), shape, dtype, load), plan == "labels"


def read_frame_folder(path):
    p = Path(os.fspath(path[0] if isinstance(path, (list, tuple)) else path))
    data, palette = folder_array(p)
    name = p.name
    if palette:
        return [(data, {"name": f"{name} labels", "metadata": {"source": str(p)}}, "labels")]
    rgb = data.ndim == 4 and data.shape[-1] in (3, 4)
    return [(data, {"name": name, "rgb": rgb, "metadata": {"source": str(p)}}, "image")]


# ---------------------------------------------------------------------- TIFF stacks
def _tiff_data(path: Path) -> np.ndarray:
    """The first series of a TIFF: memory-mapped when uncompressed, else read."""
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except Exception:  # noqa: BLE001 - compressed or not contiguous: read it
        with tifffile.TiffFile(path) as tf:
            return tf.series[0].asarray()


def _is_ipnet_labels(path: Path) -> bool:
    """Whether the TIFF ``path`` is a label stack this plugin wrote (see ``write_labels_tiff``)."""
    import tifffile

    from ._writer import LABELS_KEY

    try:
        with tifffile.TiffFile(path) as tf:
            meta = tf.shaped_metadata or ()
    except Exception:  # noqa: BLE001 - not readable here: not ours
        return False
    return any(isinstance(m, dict) and m.get(LABELS_KEY) == "labels" for m in meta)


def _unique_labels(labels: list) -> tuple[str, ...]:
    """Axis labels with unknown or repeated names replaced by napari's defaults."""
    default = [str(i) for i in range(-len(labels), 0)]  # napari's unnamed axes
    return tuple(lab if lab and lab not in labels[:i] else default[i] for i, lab in enumerate(labels))


def _axis_labels(axes: str) -> tuple[str, ...]:
    """napari axis labels of the tifffile axis letters ``axes``."""
    from .axes import tiff_axis_labels

    return _unique_labels(list(tiff_axis_labels(axes)))


def tiff_layers(path) -> list[tuple]:
    """Layer data tuples of a TIFF stack, with the axis names of its metadata.

    tifffile reads the axes of ImageJ hyperstacks and OME-TIFFs (``"TZYX"``): they
    become the layer's ``axis_labels`` (``("t", "z", "y", "x")``), unknown axes keep
    napari's default. Samples last (RGB) make an RGB layer; a channel axis (``C``,
    or samples before Y, X) one layer per channel. The letters are kept in the layer
    metadata (``tiff_axes``).
    """
    from .axes import tiff_axes, tiff_axis_labels

    p = Path(os.fspath(path))
    try:
        data = _tiff_data(p)
    except Exception as err:  # noqa: BLE001 - not a TIFF, damaged
        raise OSError(f"cannot read {p}: {type(err).__name__}: {err}") from err
    axes = tiff_axes(p) or ""
    name = p.name.split(".")[0] or p.stem
    meta = {"source": str(p)}
    if _is_ipnet_labels(p):
        kwargs = {"name": name, "metadata": dict(meta, tiff_axes=axes)}
        if len(axes) == data.ndim:
            kwargs["axis_labels"] = _axis_labels(axes)
        return [(data, kwargs, "labels")]
    if len(axes) != data.ndim:
        return [(data, {"name": name, "metadata": meta}, "image")]
    meta["tiff_axes"] = axes
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4) and data.ndim >= 3
    spatial = axes[:-1] if rgb else axes
    channel = next((i for i, a in enumerate(spatial) if a in "CS"), None)
    labels = list(tiff_axis_labels(spatial))
    if channel is not None:
        del labels[channel]
    axis_labels = _unique_labels(labels)
    kwargs = {"rgb": bool(rgb), "axis_labels": axis_labels, "metadata": meta}
    if channel is None:
        return [(data, {"name": name, **kwargs}, "image")]
    n = data.shape[channel]
    return [
        (data[(slice(None),) * channel + (c,)], {"name": f"{name} [c{c}]", **kwargs, "metadata": dict(meta, channel=c)},
         "image")
        for c in range(n)
    ]


def read_tiff(path):
    """npe2 reader of a TIFF stack: see :func:`tiff_layers`."""
    return tiff_layers(path[0] if isinstance(path, (list, tuple)) else path)
