"""Session files: save an annotation job, resume it, replay it headless.

A :class:`~napari_ipnet.session.Session` keeps a log of its public calls
(``interact``, ``interact_many`` -- which ``interact_davis`` goes through --,
``propagate`` with the frames it actually finished, ``reset``); ``restore`` puts the
log back to the snapshot's, so an undone step leaves the log too. A session file
holds that log with every stroke map, the settings, the model's identity, the image
source and the labels at save time (the format is described in
``docs/session_format.md``).

Loading replays the log with the model given (or the recorded one) on the frames
given (or the recorded image): the engine's state (soft masks, references, the open
round) is rebuilt by the same calls, so a session saved mid-round reopens with the
same round pending. The replayed labels are compared with the saved ones; see
:func:`load_session` for what happens when they differ.

The file is a zip archive written into a temporary sibling and moved over the
target with :func:`os.replace`, so an interrupted save never damages the last
complete file; a damaged or half-written file is refused with a
:class:`SessionFileError` naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import warnings
import weakref
import zipfile
import zlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: the ``format`` tag of ``session.json``
FORMAT_TAG = "napari-ipnet-session"
#: the format version this module writes; it reads this version and older ones
FORMAT_VERSION = 1
#: the recommended file suffix
SUFFIX = ".ipnet"


class SessionFileError(ValueError):
    """A session file that cannot be read (damaged, half-written, not a session)."""


class SessionVersionError(SessionFileError):
    """A session file written in a newer format than this version reads."""


class SessionMismatchWarning(UserWarning):
    """The replayed labels differ from the labels saved in the session file."""


class SessionMismatchError(RuntimeError):
    """Raised instead of :class:`SessionMismatchWarning` with ``on_mismatch="error"``."""


# ---------------------------------------------------------------------- the log
@dataclass(frozen=True, eq=False)
class StrokeMap:
    """A stroke map (H, W) kept as the crop of its strokes' bounding box.

    The log keeps every call's strokes for the session's lifetime: full-frame maps
    would cost H x W bytes per call (4 MiB for each stroke on a 2048 x 2048 frame),
    the crop of a stroke a few hundred. ``numpy.asarray(stroke_map)`` gives the map.
    """

    shape: tuple[int, int]
    y0: int
    x0: int
    crop: np.ndarray  # bool

    @classmethod
    def of(cls, m) -> StrokeMap:
        m = np.asarray(m, bool)
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            return cls(m.shape, 0, 0, np.zeros((0, 0), bool))
        cols = np.flatnonzero(m.any(axis=0))
        crop = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
        return cls(m.shape, int(rows[0]), int(cols[0]), crop)

    def any(self) -> bool:
        return bool(self.crop.size)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.zeros(self.shape, bool)
        out[self.y0 : self.y0 + self.crop.shape[0], self.x0 : self.x0 + self.crop.shape[1]] = self.crop
        return out if dtype is None else out.astype(dtype)


def log_entry(session, call: str, args: Mapping[str, Any]) -> dict:
    """One log entry: the call, its arguments, and the settings it ran under.

    Stroke maps are kept as :class:`StrokeMap` crops (copies: a caller may reuse its
    arrays). Interactions record the
    refinement settings; propagations ``objects_may_end`` (both may change between
    calls: the widget toggles them), the frames finished and how the call ended
    (see :func:`logged_propagation`).
    """
    entry: dict[str, Any] = {"call": call}
    for k, v in args.items():
        if isinstance(v, np.ndarray):
            v = StrokeMap.of(v)
        elif isinstance(v, Mapping):
            v = {int(i): StrokeMap.of(m) for i, m in v.items()}
        entry[k] = v
    if call.startswith("interact"):
        entry["refine"] = None if session.refine is None else asdict(session.refine)
    if call == "propagate":
        entry["objects_may_end"] = bool(session.objects_may_end)
        entry["calibrate"] = bool(session.calibrate_propagation)
        entry["calibrate_corrections"] = bool(session.calibrate_correction_rounds)
        entry["memory"] = None if session.memory is None else asdict(session.memory)
        entry["frames"] = ()
        entry["ended"] = "running"
    return entry


def logged_propagation(session, gen: Generator[int, None, None], frame: int) -> Generator[int, None, None]:
    """Wrap a propagation generator so that the session's log follows it.

    The entry is appended when the propagation starts (its first frame is asked
    for; a generator closed before that changes nothing and is not logged) and
    updated as frames finish. It ends ``"completed"``, ``"closed"`` (stopped by its
    caller: the round is closed on the frames done), ``"error"``, ``"superseded"``
    (a ``reset``/``restore`` took the state over: the round stays open) or, while
    it runs, ``"running"`` (a file saved then reopens with the round still open).
    """
    entry = log_entry(session, "propagate", {"frame": int(frame)})
    restores = session._restores
    session._log.append(entry)
    try:
        for f in gen:
            entry["frames"] = entry["frames"] + (int(f),)  # a new tuple: snapshots keep theirs
            yield f
        entry["ended"] = "completed"
    except GeneratorExit:
        entry["ended"] = "closed"
        raise
    except BaseException:
        entry["ended"] = "error"
        raise
    finally:
        gen.close()
        if session._restores != restores and entry["ended"] != "completed":
            entry["ended"] = "superseded"


def replay(session, log: list[dict], progress: Callable[[int, int], None] | None = None) -> None:
    """Make the calls of ``log`` on ``session`` (a fresh one), in order.

    Parameters
    ----------
    session : Session
        The session to drive; its own log is rebuilt by the calls.
    log : list of dict
        Entries as :func:`log_entry` makes them (stroke maps as arrays).
    progress : callable, optional
        ``progress(i, n)`` after each entry.

    Raises
    ------
    SessionFileError
        If an entry is unknown, or a propagation finishes other frames than recorded
        (the log and the image do not belong together).
    """
    for i, e in enumerate(log):
        call = e.get("call")
        if call in ("interact", "interact_many"):
            session.refine = recorded_refine(e.get("refine"))
            if call == "interact":
                session.interact(e["frame"], e["positive"], e["negative"], object_id=e["object_id"])
            else:
                session.interact_many(e["frame"], e["positives"], e["negative"])
        elif call == "propagate":
            _replay_propagation(session, e, i)
        elif call == "reset":
            session.reset(e["object_id"])
        else:
            raise SessionFileError(f"log entry {i} has an unknown call {call!r}")
        if progress is not None:
            progress(i + 1, len(log))


def _replay_propagation(session, e: dict, i: int) -> None:
    from .memory import MemorySettings

    session.objects_may_end = bool(e["objects_may_end"])
    session.calibrate_propagation = bool(e.get("calibrate", False))  # files from before it: off
    session.calibrate_correction_rounds = bool(e.get("calibrate_corrections", False))  # likewise
    session.memory = None if e.get("memory") is None else MemorySettings(**e["memory"])  # likewise
    want = [int(f) for f in e["frames"]]
    ended = e["ended"]
    gen = session.propagate(e["frame"])
    done: list[int] = []
    if want or ended == "completed":
        for f in gen:
            done.append(int(f))
            if ended != "completed" and len(done) == len(want):
                break
    if ended in ("running", "superseded"):
        session._restores += 1  # as then: the generator stops without closing the round
    gen.close()
    if ended == "error" and not want:
        session._close_round()  # it failed on its first frame, after taking the round
    if done != want:
        raise SessionFileError(
            f"log entry {i}: the propagation from frame {e['frame']} finished frames {done[:6]}... "
            f"({len(done)}), the log recorded {want[:6]}... ({len(want)}); the log does not fit this image"
        )


@dataclass(frozen=True, eq=False)
class LoggedStroke:
    """A stroke map of a session's log that still counts (see :func:`logged_strokes`)."""

    frame: int
    #: its object; None for the background strokes of ``interact_many`` (negative for every object)
    object_id: int | None
    positive: bool
    stroke_map: StrokeMap
    #: the propagations logged before it: strokes of one round share it
    round: int


def logged_strokes(source) -> list[LoggedStroke]:
    """The strokes a session's log holds, in the order drawn, without those reset since.

    Parameters
    ----------
    source : Session, SessionFile or list of dict
        A session (its log, as :func:`save_session` writes it), a session file read
        with :func:`read_session`, or log entries.

    Returns
    -------
    list of LoggedStroke
        One per non-empty stroke map of ``interact`` / ``interact_many`` calls. A
        ``reset`` of an object drops its strokes (positive and negative), a reset of
        everything drops them all. Undone steps are not in a log (``restore`` takes
        them out), so they are not here either.
    """
    log = getattr(source, "_log", None)
    if log is None:
        log = getattr(source, "log", source)
    strokes: list[LoggedStroke] = []
    rounds = 0

    def add(frame, object_id, positive: bool, m) -> None:
        if m is None:
            return
        sm = m if isinstance(m, StrokeMap) else StrokeMap.of(m)
        if sm.any():
            k = None if object_id is None else int(object_id)
            strokes.append(LoggedStroke(int(frame), k, positive, sm, rounds))

    for e in log:
        call = e.get("call")
        if call == "interact":
            add(e["frame"], e["object_id"], True, e.get("positive"))
            add(e["frame"], e["object_id"], False, e.get("negative"))
        elif call == "interact_many":
            for k, m in sorted((int(k), m) for k, m in (e.get("positives") or {}).items()):
                add(e["frame"], k, True, m)
            add(e["frame"], None, False, e.get("negative"))
        elif call == "propagate":
            rounds += 1
        elif call == "reset":
            k = e.get("object_id")
            strokes = [] if k is None else [st for st in strokes if st.object_id != int(k)]
    return strokes


# ---------------------------------------------------------------------- model and image
_checksums: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_identity(model) -> dict:
    """What identifies a model: its name, architecture config and a weights checksum.

    The checksum is the SHA-256 of its state dict (names, dtypes, shapes and values,
    on the CPU), so the same weights give the same checksum on any device, whether
    they came from the bundled file, a checkpoint or training. Models without a state
    dict (stand-ins) have none (``None``).
    """
    name = str(getattr(model, "name", type(model).__name__))
    cfg = getattr(model, "config", None)
    config = cfg.to_dict() if hasattr(cfg, "to_dict") else None
    checksum = None
    if hasattr(model, "state_dict"):
        state = model.state_dict()
        key = tuple(getattr(v, "_version", 0) for v in state.values())  # in-place updates bump it
        cached = _checksums.get(model)
        if cached is not None and cached[0] == key:
            checksum = cached[1]
        else:
            import torch

            h = hashlib.sha256()
            for k in sorted(state):
                v = state[k]
                if not isinstance(v, torch.Tensor):
                    continue
                t = v.detach().to("cpu").contiguous()
                h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            checksum = "sha256:" + h.hexdigest()
            try:
                _checksums[model] = (key, checksum)
            except TypeError:  # not weak-referenceable
                pass
    return {"name": name, "config": config, "checksum": checksum}


def image_source(path: str | os.PathLike, axis: int = 0, take: Mapping[int, int] | None = None) -> dict:
    """The ``source`` of a session whose frames come from a file or folder.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF stack, a ``.npy`` file, a zarr array (``*.zarr``), a video or a folder
        of frames (see :func:`open_source`).
    axis : int
        The axis of the file's array that the session propagates along.
    take : mapping of int to int, optional
        Axes of the file's array fixed to one index (a channel, the other of T and
        Z), numbered as in the file.
    """
    take = {int(a): int(i) for a, i in (take or {}).items()}
    if int(axis) in take:
        raise ValueError(f"axis {axis} is both the propagation axis and a fixed one")
    return {"kind": "file", "path": str(Path(os.fspath(path)).resolve()), "axis": int(axis),
            "take": {str(a): i for a, i in sorted(take.items())}}


def recorded_refine(settings: dict | None):
    """The :class:`~napari_ipnet.refine.RefineSettings` a file recorded (None: off).

    A field the file does not have replays as it was before the field existed:
    files written before ``negative_core`` (``positive_core``) constrained every
    negative (positive) stroke pixel, and files written before ``drop_crossed`` never
    removed a crossed piece.
    """
    from .refine import RefineSettings

    if settings is None:
        return None
    return RefineSettings(**{"negative_core": False, "positive_core": False, "drop_crossed": False, **settings})


def memory_source(note: str = "") -> dict:
    """The ``source`` of a session whose frames were in memory (not reopened by itself)."""
    return {"kind": "memory", "note": note or "the image was in memory when the session was saved"}


def open_image(path: str | os.PathLike):
    """A lazy array of an image file: TIFF (memory-mapped when uncompressed), ``.npy``
    (memory-mapped), zarr array, video or folder of frames (read frame by frame)."""
    from ._reader import VIDEO_EXTENSIONS, _tiff_data, folder_array, video_array

    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _tiff_data(p)
    if suffix == ".npy":
        return np.load(p, mmap_mode="r")
    if suffix == ".zarr":
        import dask.array as da

        comp = "0" if (p / "0" / ".zarray").exists() or (p / "0" / "zarr.json").exists() else None
        return da.from_zarr(str(p), component=comp)
    if suffix in VIDEO_EXTENSIONS:
        return video_array(p)[0]
    if p.is_dir():
        return folder_array(p)[0]
    raise ValueError(f"cannot open {p}: not a TIFF, .npy, .zarr, video or folder of frames")


def open_source(source: Mapping) -> Any:
    """The (T, H, W[, C]) frames a session ``source`` describes, read lazily.

    Raises
    ------
    SessionFileError
        If the source was in memory, or its file is missing or unreadable.
    """
    if source.get("kind") != "file":
        raise SessionFileError(
            f"this session's image was not saved with it ({source.get('note', 'in memory')}); pass the frames"
        )
    p = Path(source["path"])
    try:
        arr = open_image(p)
    except Exception as err:
        raise SessionFileError(f"cannot reopen the session's image {p}: {err}; pass the frames") from err
    axis = int(source.get("axis", 0))
    take = {int(a): int(i) for a, i in (source.get("take") or {}).items()}
    for a in sorted(take, reverse=True):
        arr = arr[(slice(None),) * a + (take[a],)]
    axis -= sum(1 for a in take if a < axis)
    if axis:
        arr = np.moveaxis(arr, axis, 0) if isinstance(arr, np.ndarray) else _moveaxis(arr, axis)
    return arr


def _moveaxis(arr, axis: int):
    import dask.array as da

    return da.moveaxis(arr, axis, 0)


# ---------------------------------------------------------------------- writing
def _array_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _encode_log(log: list[dict], arrays: dict[str, Any]) -> list[dict]:
    """The log as JSON-able entries; stroke maps go to ``arrays`` (empty maps: null).

    The maps are kept as they are (:class:`StrokeMap` crops stay crops): they become
    full-frame arrays when the file is written (:func:`write_session`).
    """

    def put(m) -> str | None:
        if isinstance(m, StrokeMap):
            if not m.any():
                return None
        else:
            m = np.asarray(m, bool)
            if not m.any():
                return None
        name = f"strokes/{len(arrays):06d}.npy"
        arrays[name] = m
        return name

    out = []
    for e in log:
        d = {}
        for k, v in e.items():
            if k in ("positive", "negative"):
                v = put(v)
            elif k == "positives":
                v = {str(i): put(m) for i, m in v.items()}
            elif k == "frames":
                v = list(v)
            d[k] = v
        out.append(d)
    return out


@dataclass(eq=False)
class SessionSave:
    """What a session file holds, taken from a session at one moment (see :func:`session_save`).

    It shares nothing the session changes later, so :func:`write_session` may write
    it in another thread while the annotation goes on.
    """

    header: dict
    labels: np.ndarray
    #: member name -> stroke map (bool array or :class:`StrokeMap`)
    arrays: dict[str, Any]


def session_save(session, *, source: Mapping | None = None, names: Mapping[int, str] | None = None) -> SessionSave:
    """Take what :func:`save_session` writes from ``session`` (in the thread that owns it).

    Parameters are those of :func:`save_session`. The labels are computed here; the
    stroke maps stay crops, the labels' checksum and the compression are left to
    :func:`write_session`.
    """
    from . import __version__
    from .model.roi import ROI_RULE_VERSION

    loaded = getattr(session, "replay_report", None)
    if source is None:
        source = loaded.source if loaded is not None else memory_source()
    if names is None:
        names = loaded.names if loaded is not None else {}
    names = {int(k): str(v) for k, v in names.items()}
    arrays: dict[str, Any] = {}
    log = _encode_log(list(session._log), arrays)
    labels = session.labels
    header = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "napari_ipnet": __version__,
        "source": dict(source),
        "shape": list(session.shape),
        "model": model_identity(session.model),
        "settings": {
            "objects_may_end": bool(session.objects_may_end),
            "refine": None if session.refine is None else asdict(session.refine),
            "batch_size": int(session.batch_size),
            "calibrate": bool(session.calibrate_propagation),
            "calibrate_corrections": bool(session.calibrate_correction_rounds),
            "memory": None if session.memory is None else asdict(session.memory),
            "roi_rule_version": ROI_RULE_VERSION,
        },
        "objects": {str(k): {"name": names.get(k)} for k in session.object_ids},
        "names": {str(int(k)): str(v) for k, v in names.items()},
        "pending_frame": session.pending_frame,
        "labels": {"member": "labels.npy", "dtype": str(labels.dtype), "sha256": None},  # see write_session
        "log": log,
    }
    return SessionSave(header, labels, arrays)


def write_session(data: SessionSave, path: str | os.PathLike) -> Path:
    """Write ``data`` to the session file ``path``, atomically (any thread).

    The file is written into a temporary sibling, synced and moved over ``path`` with
    :func:`os.replace`: an interrupted write leaves the previous file as it was.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    labels = np.ascontiguousarray(data.labels)
    header = {**data.header, "labels": {**data.header["labels"],
                                        "sha256": hashlib.sha256(labels.tobytes()).hexdigest()}}
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            zf.writestr("labels.npy", _array_bytes(labels))
            for name, a in data.arrays.items():
                zf.writestr(name, _array_bytes(np.asarray(a, bool)))
            zf.writestr("session.json", json.dumps(header, indent=1))  # last: the central directory follows
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def save_session(session, path: str | os.PathLike, *, source: Mapping | None = None,
                 names: Mapping[int, str] | None = None) -> Path:
    """Write ``session`` to the session file ``path`` (see docs/session_format.md).

    Parameters
    ----------
    session : Session
        The session to save.
    path : str or os.PathLike
        The file (conventionally ``*.ipnet``); replaced atomically if it exists.
    source : mapping, optional
        Where the frames come from (:func:`image_source`, :func:`memory_source`).
        Default: the source the session was loaded with, else "in memory".
    names : mapping of int to str, optional
        Object names. Default: those the session was loaded with, if any.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_session(session_save(session, source=source, names=names), path)


# ---------------------------------------------------------------------- reading
@dataclass
class SessionFile:
    """The content of a session file (stroke maps and labels as arrays)."""

    path: Path
    header: dict
    log: list[dict]
    labels: np.ndarray

    @property
    def version(self) -> int:
        return int(self.header["version"])

    @property
    def names(self) -> dict[int, str]:
        return {int(k): v for k, v in (self.header.get("names") or {}).items()}


def _read_array(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    with zf.open(name) as fh:
        return np.lib.format.read_array(io.BytesIO(fh.read()), allow_pickle=False)


def read_session(path: str | os.PathLike) -> SessionFile:
    """Read and check a session file without replaying it.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    SessionVersionError
        If the file was written in a newer format version.
    SessionFileError
        If it is damaged, half-written or not a session file.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"no session file at {p}")
    try:
        with zipfile.ZipFile(p) as zf:
            try:
                header = json.loads(zf.read("session.json"))
            except KeyError:
                raise SessionFileError(f"{p} is not a napari-ipnet session file (no session.json)") from None
            if not isinstance(header, dict) or header.get("format") != FORMAT_TAG:
                raise SessionFileError(f"{p} is not a napari-ipnet session file (format tag missing)")
            version = header.get("version")
            if not isinstance(version, int) or version < 1:
                raise SessionFileError(f"{p} has an invalid format version {version!r}")
            if version > FORMAT_VERSION:
                raise SessionVersionError(
                    f"{p} was written by a newer napari-ipnet ({header.get('napari_ipnet', '?')}, session format "
                    f"version {version}); this version reads up to version {FORMAT_VERSION}: update napari-ipnet"
                )
            labels = _read_array(zf, header["labels"]["member"])
            digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()
            if digest != header["labels"]["sha256"]:
                raise SessionFileError(f"{p}: the saved labels do not match their checksum; the file is damaged")
            log = [_decode_entry(zf, e, tuple(header["shape"][1:])) for e in header["log"]]
    except SessionFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError, OSError) as err:
        raise SessionFileError(
            f"{p} is damaged or was not completely written ({type(err).__name__}: {err}); "
            "an earlier copy (an autosave) may still be intact"
        ) from err
    return SessionFile(p, header, log, labels)


def _decode_entry(zf: zipfile.ZipFile, e: dict, hw: tuple[int, int]) -> dict:
    def get(name):
        return np.zeros(hw, bool) if name is None else _read_array(zf, name)

    d = dict(e)
    for k in ("positive", "negative"):
        if k in d:
            d[k] = get(d[k])
    if "positives" in d:
        d["positives"] = {int(i): get(n) for i, n in d["positives"].items()}
    if "frames" in d:
        d["frames"] = tuple(d["frames"])
    return d


# ---------------------------------------------------------------------- loading
@dataclass
class ReplayReport:
    """What :func:`load_session` found (``session.replay_report``)."""

    path: Path
    version: int
    source: dict
    names: dict[int, str]
    saved_model: dict
    model: dict
    #: the weights replayed with are those the file recorded (same checksum)
    same_model: bool
    #: the replayed labels equal the saved ones, bit for bit
    labels_match: bool
    #: how many label pixels differ between the replay and the file
    differing_pixels: int
    pending_frame: int | None
    seconds: float
    saved_labels: np.ndarray = field(repr=False, default=None)

    def describe(self) -> str:
        """One line for a person."""
        if self.labels_match:
            return f"{self.path.name}: replayed, labels identical to the saved ones"
        why = ("the same weights: another device, thread count or torch version?" if self.same_model else
               f"replayed with {self.model['name']} instead of the recorded {self.saved_model['name']}")
        return f"{self.path.name}: replayed labels differ from the saved ones in {self.differing_pixels} pixels ({why})"


def load_session(
    path: str | os.PathLike,
    frames=None,
    model=None,
    *,
    device: str = "auto",
    on_mismatch: str = "warn",
    progress: Callable[[int, int], None] | None = None,
    session_class=None,
):
    """Rebuild a saved session by replaying its log.

    Parameters
    ----------
    path : str or os.PathLike
        The session file.
    frames : array-like, optional
        The image; None reopens the recorded source (lazily).
    model : optional
        The model to replay with; None loads the recorded one (``"default"``,
        ``"ipnet-paper"`` or a checkpoint path) on ``device``. Another model re-runs
        the user's strokes through it.
    device : str
        Device for a model loaded here.
    on_mismatch : {"warn", "error", "ignore"}
        What to do when the replayed labels differ from the saved ones. The session
        always holds the replayed state (the engine's state cannot be rebuilt from
        labels alone); "warn" (the default) issues a :class:`SessionMismatchWarning`
        naming the number of differing pixels and whether the model differs, "error"
        raises :class:`SessionMismatchError` instead, "ignore" says nothing. The saved
        labels stay available as ``session.replay_report.saved_labels``.
    progress : callable, optional
        ``progress(i, n)`` after each replayed call.
    session_class : type, optional
        The :class:`~napari_ipnet.session.Session` class to build.

    Returns
    -------
    Session
        With ``session.replay_report`` a :class:`ReplayReport`.
    """
    if on_mismatch not in ("warn", "error", "ignore"):
        raise ValueError(f"on_mismatch must be 'warn', 'error' or 'ignore', got {on_mismatch!r}")
    if session_class is None:
        from .session import Session as session_class
    from .model.roi import ROI_RULE_VERSION
    from .memory import MemorySettings

    sf = read_session(path)
    h = sf.header
    if frames is None:
        frames = open_source(h["source"])
    if model is None:
        model = _load_recorded_model(h["model"], device)
    settings = h["settings"]
    if settings.get("roi_rule_version") != ROI_RULE_VERSION:
        warnings.warn(
            f"{sf.path.name} was made with ROI rule version {settings.get('roi_rule_version')}, this version "
            f"uses {ROI_RULE_VERSION}: the replay may segment differently", SessionMismatchWarning, stacklevel=2,
        )
    refine = recorded_refine(settings.get("refine")) or False
    session = session_class(frames, model, objects_may_end=settings["objects_may_end"], refine=refine)
    if tuple(session.shape) != tuple(h["shape"]):
        raise SessionFileError(
            f"{sf.path.name} was made on frames shaped {tuple(h['shape'])} (T, H, W); these are {session.shape}"
        )
    session.batch_size = int(settings.get("batch_size", session.batch_size))
    t0 = time.perf_counter()
    replay(session, sf.log, progress)
    # the settings as they were at save time (the replay set them call by call)
    session.objects_may_end = bool(settings["objects_may_end"])
    session.refine = recorded_refine(settings.get("refine"))
    session.calibrate_propagation = bool(settings.get("calibrate", session.calibrate_propagation))
    session.calibrate_correction_rounds = bool(settings.get("calibrate_corrections", False))
    session.memory = None if settings.get("memory") is None else MemorySettings(**settings["memory"])
    seconds = time.perf_counter() - t0
    labels = session.labels
    saved = sf.labels
    if labels.shape == saved.shape:
        differ = int(np.count_nonzero(labels != saved))
    else:
        differ = int(saved.size)
    used = model_identity(model)
    same = used["checksum"] is not None and used["checksum"] == h["model"].get("checksum")
    report = ReplayReport(
        path=sf.path, version=sf.version, source=dict(h["source"]), names=sf.names, saved_model=h["model"],
        model=used, same_model=same, labels_match=differ == 0, differing_pixels=differ,
        pending_frame=session.pending_frame, seconds=seconds, saved_labels=saved,
    )
    session.replay_report = report
    if session.pending_frame != h.get("pending_frame"):
        raise SessionFileError(
            f"{sf.path.name}: the replay left round {session.pending_frame} pending, the file recorded "
            f"{h.get('pending_frame')}; the file is inconsistent"
        )
    if differ and on_mismatch != "ignore":
        if on_mismatch == "error":
            raise SessionMismatchError(report.describe())
        warnings.warn(report.describe(), SessionMismatchWarning, stacklevel=2)
    return session


def _load_recorded_model(identity: Mapping, device: str):
    from .weights import load_model

    name = identity.get("name")
    if name in ("default", "ipnet-paper") or (name and Path(name).is_file()):
        model = load_model(name, device=device)
        checksum = identity.get("checksum")
        if checksum and model_identity(model)["checksum"] != checksum:
            warnings.warn(
                f"the model {name!r} installed here is not the one the session was made with (other weights); "
                "the strokes are replayed through it", SessionMismatchWarning, stacklevel=3,
            )
        return model
    raise SessionFileError(
        f"the session was made with the model {name!r}, which cannot be loaded by name here; pass a model"
    )


# ---------------------------------------------------------------------- autosave
class Autosaver:
    """Save a session after its interactions and propagations, at most every so often.

    Qt-free: the widget calls :meth:`notify` after each interaction and each finished
    (or stopped) propagation, and :meth:`flush` on close. A save is atomic (see
    :func:`write_session`): a crash during one leaves the previous autosave intact.

    Parameters
    ----------
    session : Session
        The session to save.
    path : str or os.PathLike
        The autosave file.
    min_interval : float
        Seconds between two saves; calls in between only mark the session changed.
    source, names :
        As for :func:`save_session`; ``names`` may be updated as an attribute.
    clock : callable
        Time source (seconds), for tests.
    writer : callable, optional
        ``writer(path, data, done)``: writes the :class:`SessionSave` ``data`` to
        ``path`` later (in another thread, in the order given) and then calls
        ``done(error)`` in the session's thread (``error`` None when written). None:
        each save is written at once. What is saved is taken from the session when
        the save is made, either way.
    """

    def __init__(self, session, path: str | os.PathLike, *, min_interval: float = 10.0,
                 source: Mapping | None = None, names: Mapping[int, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 writer: Callable[[Path, SessionSave, Callable[[BaseException | None], None]], None] | None = None,
                 ) -> None:
        self.session = session
        self.path = Path(os.fspath(path))
        self.min_interval = float(min_interval)
        self.source = source
        self.names = dict(names or {})
        self.writer = writer
        self._clock = clock
        self._last: float | None = None
        self.dirty = False
        self.saves = 0
        self.last_error: BaseException | None = None

    def notify(self) -> bool:
        """The session changed: save now if the last save is old enough.

        Returns whether it saved (with a ``writer``: whether a save was handed to it).
        A failed save (disk full) is kept in :attr:`last_error`, not raised: the
        annotation goes on.
        """
        self.dirty = True
        now = self._clock()
        if self._last is not None and now - self._last < self.min_interval:
            return False
        return self._save(now)

    def flush(self) -> bool:
        """Save now if anything changed since the last save."""
        return self._save(self._clock()) if self.dirty else False

    def _save(self, now: float) -> bool:
        try:
            data = session_save(self.session, source=self.source, names=self.names)
            if self.writer is None:
                write_session(data, self.path)
        except Exception as err:  # noqa: BLE001 - reported, the session goes on
            self.last_error = err
            return False
        if self.writer is None:
            self._last, self.dirty = now, False
            self._written(None, None)
            return True
        previous, self._last, self.dirty = self._last, now, False
        self.writer(self.path, data, lambda err: self._written(err, previous))
        return True

    def _written(self, err: BaseException | None, previous: float | None) -> None:
        """A save was written (``err`` None) or failed: the changes it held are to save again."""
        if err is None:
            self.last_error = None
            self.saves += 1
        else:
            self.last_error = err
            self.dirty = True
            self._last = previous
