"""Save, open and autosave the sessions of an :class:`~napari_ipnet.annotation.AnnotationController`.

Qt-free, napari-free (layers are duck-typed, as in :mod:`napari_ipnet.annotation`).
:class:`SessionFiles` gives the dock widget its *Save session...* / *Open session...*
actions and keeps an :class:`~napari_ipnet.session_file.Autosaver` per session:

- **save** writes the active session with the image's source (the file the image
  layer was read from and the axis propagated along, when that file reopens to the
  layer's array; else a note that the image was in memory, with the layer's name and
  the axes, to find it again) and the object names;
- **open** reads a session file, finds the image layer it was made on (by the source
  file's path; or the current image layer when the sequence fits and the user agrees;
  else the recorded file, opened as a new layer), and queues a job that replays the
  session's calls with the controller's model (the networks run again: a worker, with
  progress). The loaded session replaces the one the controller had for that image
  and axis; its labels go to the output layer as one undo step, its object names to
  the object list. A replay whose labels differ from the saved ones, or a model other
  than the recorded one, is reported as a warning; an unreadable file as an error;
- **autosave** after every interaction, finished or stopped propagation, undo / redo
  and reset (``controller.session_changed``), at most every ``min_interval`` seconds,
  to ``<autosave dir>/<image>-axis<k>.ipnet``; :meth:`SessionFiles.flush` writes what
  is pending (on close, and from the widget's timer). What an autosave holds is taken
  from the session in the controller's thread; the file is written by an
  :class:`AutosaveWriter` through the controller's runner (a napari worker thread in
  the widget), one file at a time and in order; closing waits for the file being
  written, then writes the rest itself. The folder is
  ``~/.napari-ipnet/autosave`` unless the environment variable
  ``NAPARI_IPNET_AUTOSAVE_DIR`` names another one; set to an empty string it turns
  autosaving off.

Everything the user should know goes through the controller's ``status`` and
``message`` signals (the widget turns messages into napari notifications).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from ..session_file import (
    SUFFIX,
    SessionFile,
    SessionFileError,
    SessionSave,
    image_source,
    load_session,
    memory_source,
    open_image,
    read_session,
    write_session,
)
from .controller import AnnotationController, Failure, Job, Record, Round
from .results import apply_with_history, frame_write
from .sequence import SequenceSpec, check_layer, frame_view, layer_data, spatial_shape

log = logging.getLogger(__name__)

#: environment variable naming the autosave folder ("" turns autosaving off)
AUTOSAVE_ENV = "NAPARI_IPNET_AUTOSAVE_DIR"
#: image layer metadata: the file an image layer was opened from by :meth:`SessionFiles.open`
PATH_KEY = "napari_ipnet_path"
#: seconds between two autosaves of one session
AUTOSAVE_INTERVAL = 10.0
#: seconds :meth:`AutosaveWriter.close` waits for the file being written
CLOSE_TIMEOUT = 30.0


def autosave_dir() -> Path | None:
    """The autosave folder: ``$NAPARI_IPNET_AUTOSAVE_DIR``, else ``~/.napari-ipnet/autosave``.

    Returns
    -------
    pathlib.Path or None
        None when the variable is set to an empty string (autosaving off).
    """
    value = os.environ.get(AUTOSAVE_ENV)
    if value is None:
        return Path.home() / ".napari-ipnet" / "autosave"
    if not value.strip():
        return None
    return Path(value).expanduser()


def autosave_name(layer_name: str, spec: SequenceSpec) -> str:
    """File name of a session's autosave: ``"<image>-axis0.ipnet"``.

    Axes fixed at an index (the z of a time-lapse of stacks) and a colour channel are
    part of the name (``"<image>-axis0-fixed1=3-channel2.ipnet"``), so the sessions of
    one image never share a file.
    """
    stem = re.sub(r"[^\w.\- ]+", "_", str(layer_name)).strip(" .") or "image"
    stem += f"-axis{spec.axis}"
    stem += "".join(f"-fixed{ax}={i}" for ax, i in spec.fixed)
    if spec.channel is not None:
        stem += f"-channel{spec.channel}"
    return stem + SUFFIX


def source_path(layer) -> str | None:
    """The file ``layer`` was read from (None: not known, or made in memory)."""
    meta = layer.metadata if isinstance(getattr(layer, "metadata", None), dict) else {}
    for p in (meta.get(PATH_KEY), getattr(getattr(layer, "source", None), "path", None), meta.get("source")):
        if p:
            return str(p)
    return None


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(os.fspath(a)).resolve() == Path(os.fspath(b)).resolve()
    except (OSError, RuntimeError):
        return False


def session_source(layer, spec: SequenceSpec) -> dict:
    """The ``source`` of a session on ``layer`` along ``spec`` (see :func:`Session.save`).

    A file source (:func:`~napari_ipnet.session_file.image_source`) when the layer was
    read from a file that reopens to an array of the layer's shape, so the session
    file can reopen the image by itself; else a memory source. Both also record the
    layer's name (``"layer"``), and the memory source the axis propagated along and the
    fixed axes (``"axis"``, ``"take"``, numbered as in the layer's data), to put the
    session back on the right frames of a layer chosen by hand.
    """
    data_shape = tuple(int(s) for s in layer_data(layer).shape)
    take = {int(a): int(i) for a, i in spec.fixed}
    if spec.channel is not None:
        take[len(data_shape) - 1] = int(spec.channel)
    path = source_path(layer)
    why = "it was not read from a file"
    if path:
        try:
            shape = tuple(int(s) for s in open_image(path).shape)
        except Exception as err:  # noqa: BLE001 - the session is saved anyway, as in memory
            why = f"{path} cannot be reopened ({type(err).__name__}: {err})"
        else:
            if shape == data_shape:
                return {**image_source(path, spec.axis, take), "layer": str(layer.name)}
            why = f"{path} holds an array of shape {shape}, the layer {data_shape}"
    note = f"the image layer {layer.name!r} was in memory ({why}): open it and choose it"
    return {**memory_source(note), "layer": str(layer.name), "axis": int(spec.axis),
            "take": {str(a): i for a, i in sorted(take.items())}}


def spec_for_source(layer, source: Mapping, shape: Iterable[int]) -> SequenceSpec | None:
    """The sequence of ``layer`` a session ``source`` describes, if it has ``shape`` (T, H, W).

    Returns None when the layer cannot hold that sequence: another number of axes,
    axes not fixed as recorded, or frames of another size or count.
    """
    try:
        check_layer(layer)
    except ValueError:
        return None
    data_shape = tuple(int(s) for s in layer_data(layer).shape)
    sp = spatial_shape(layer)
    ndim = len(sp)
    take = {int(a): int(i) for a, i in (source.get("take") or {}).items()}
    channel = None
    if getattr(layer, "rgb", False) and len(data_shape) - 1 in take:
        channel = take.pop(len(data_shape) - 1)
        if not 0 <= channel < data_shape[-1]:
            return None
    axis = int(source.get("axis", 0))
    lead = set(range(ndim - 2))
    if axis not in lead or set(take) != lead - {axis}:
        return None
    if any(not 0 <= i < sp[a] for a, i in take.items()):
        return None
    if (sp[axis], sp[-2], sp[-1]) != tuple(int(s) for s in shape):
        return None
    return SequenceSpec(ndim, axis, tuple(sorted(take.items())), channel)


@dataclass
class OpenJob(Job):
    """Replay a session file on an image layer, in the background (see :class:`SessionFiles`)."""

    path: Path | None = None
    image: Any = None
    spec: SequenceSpec | None = None
    file: SessionFile | None = None
    files: Any = None  # the SessionFiles that queued it
    n_calls: int = 0
    what = "opening the session"

    def start(self, ctrl: AnnotationController) -> None:
        """Start the replay (called by the controller's queue)."""
        self.files._start_open(self)


@dataclass(eq=False)
class _Write:
    """One autosave for :class:`AutosaveWriter`: the file, what goes in it, who to tell."""

    path: Path
    data: SessionSave
    done: Callable[[BaseException | None], None]
    #: queued -> started (handed to a task) -> running (in its thread) -> ended;
    #: or started -> taken (closing wrote it before its task began)
    state: str = "queued"
    ended: threading.Event = field(default_factory=threading.Event)


class AutosaveWriter:
    """Writes autosaves off the controller's thread, one file at a time, in order.

    An :class:`~napari_ipnet.session_file.Autosaver`'s ``writer``: each save is queued
    and written by a task of ``runner`` (the controller's runner: a napari worker in
    the widget, the calling thread with
    :func:`~napari_ipnet.annotation.controller.run_directly`); the next one starts
    when it has returned, so two writes never overlap and a file never goes back to
    an older state. A save queued while an older one of the same file waits replaces
    it (it holds the older one's changes too).

    Parameters
    ----------
    runner : callable
        ``runner(work, generator, on_yield, on_return, on_finish) -> task`` (see
        :class:`~napari_ipnet.annotation.AnnotationController`).
    close_timeout : float
        Seconds :meth:`close` waits for the file being written.
    """

    def __init__(self, runner: Callable[..., Any], close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.runner = runner
        self.close_timeout = float(close_timeout)
        self.closed = False
        self._queue: list[_Write] = []
        self._current: _Write | None = None  # handed to the task that runs now
        self._task = None
        self._lock = threading.Lock()  # the states of the writes: this thread and the task's

    @property
    def busy(self) -> bool:
        """Whether a write runs or waits."""
        return self._task is not None or bool(self._queue)

    def __call__(self, path: Path, data: SessionSave, done: Callable[[BaseException | None], None]) -> None:
        """Queue ``data`` to be written to ``path``; ``done(error)`` once it is (None: written)."""
        if self.closed:  # closing: at once, here
            done(_write(data, path))
            return
        self._queue = [w for w in self._queue if w.path != path]
        self._queue.append(_Write(path, data, done))
        self._start_next()

    def _start_next(self) -> None:
        if self._task is not None or not self._queue or self.closed:
            return
        item = self._current = self._queue.pop(0)
        item.state = "started"

        def work():
            with self._lock:
                if item.state != "started":
                    return _TAKEN  # closing wrote it: the task began too late
                item.state = "running"
            try:
                return _write(item.data, item.path)
            finally:
                item.state = "ended"
                item.ended.set()

        def returned(result):
            if self._current is item:
                self._task = self._current = None
            if result is not _TAKEN:
                item.done(result)
            self._start_next()

        self._task = task = self.runner(work, False, None, returned, None)
        task.start()

    def close(self) -> bool:
        """Wait for the file being written, then write the queued saves here, in order.

        A save handed to a task that has not begun yet (napari starts its workers
        from the event loop, which waits here) is taken back and written here too.
        Saves handed over after this are written at once. Returns False when the
        write in progress did not end within ``close_timeout``: the queued saves are
        then dropped (writing them could put an older state over them later); each
        file keeps its last complete version.
        """
        self.closed = True
        with self._lock:
            current = self._current
            if current is not None and current.state == "started":
                current.state = "taken"
                self._queue.insert(0, current)
                self._task = self._current = current = None
        if current is not None and not current.ended.wait(self.close_timeout):
            log.warning("IPNet: an autosave is still being written after %.0f s; %d queued autosaves dropped",
                        self.close_timeout, len(self._queue))
            self._queue.clear()
            return False
        queue_, self._queue = self._queue, []
        for item in queue_:
            item.done(_write(item.data, item.path))
        return True


_TAKEN = object()  # what the task of a save that closing took back returns


def _write(data: SessionSave, path: Path) -> BaseException | None:
    """Write a session file; the error instead of raising it (None: written)."""
    try:
        write_session(data, path)
    except Exception as err:  # noqa: BLE001 - reported by the autosaver
        log.debug("IPNet: autosaving to %s failed", path, exc_info=err)
        return err
    return None


@dataclass
class _Saver:
    """The autosaver of one session, and what was said about it."""

    record: Record
    autosaver: Any  # session_file.Autosaver
    announced: bool = False
    failed: bool = False
    names: dict = field(default_factory=dict)


class SessionFiles:
    """Session files of a controller: save, open (a replay job) and autosave.

    Parameters
    ----------
    controller : AnnotationController
        The controller whose sessions are saved and into which sessions are opened.
    autosave_folder : pathlib.Path, None or "env"
        Where autosaves go; ``"env"`` (the default) reads :func:`autosave_dir` when a
        session is first autosaved, None turns autosaving off.
    min_interval : float
        Seconds between two autosaves of one session.
    clock : callable
        Time source of the autosavers (tests).
    """

    saved = Signal(object)  # path: a session was saved by hand
    replay_started = Signal(str, int)  # file name, calls to replay
    replay_progress = Signal(int, int)  # calls replayed, calls in the file
    opening = Signal(object, object)  # image layer, SequenceSpec: a session is about to be opened on them
    opened = Signal(object)  # Record of the session opened
    open_failed = Signal(str)  # what went wrong, one line

    def __init__(self, controller: AnnotationController, autosave_folder: Path | str | None = "env",
                 min_interval: float = AUTOSAVE_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.controller = controller
        self._folder = autosave_folder
        self.min_interval = float(min_interval)
        self._clock = clock
        self._savers: dict[int, _Saver] = {}  # id(Record) -> its autosaver
        self.writer = AutosaveWriter(controller.runner)
        self._sources: dict[int, tuple[Record, dict]] = {}  # id(Record) -> (record, source)
        controller.session_changed.connect(self._session_changed)

    # ------------------------------------------------------------------ helpers
    @property
    def autosave_folder(self) -> Path | None:
        """The autosave folder now (None: autosaving off)."""
        return autosave_dir() if self._folder == "env" else (Path(self._folder) if self._folder else None)

    def source_of(self, rec: Record) -> dict:
        """The ``source`` saved with ``rec``'s session (worked out once per session)."""
        got = self._sources.get(id(rec))
        if got is None or got[0] is not rec:
            replayed = getattr(rec.session, "replay_report", None)
            if replayed is not None and replayed.source.get("kind") == "file":
                source = dict(replayed.source)  # opened from a file source: keep it
            else:
                source = session_source(rec.layer, rec.spec)
            got = self._sources[id(rec)] = (rec, source)
        return got[1]

    def names_of(self, rec: Record) -> dict[int, str]:
        """The object names of ``rec``'s session, as the object list shows them."""
        objects = self.controller.objects
        return {int(k): objects.get(k, f"object {k}") for k in rec.session.object_ids}

    def _say(self, level: str, text: str) -> None:
        self.controller.message.emit(level, text)

    # ------------------------------------------------------------------ save
    def save(self, path: str | os.PathLike, record: Record | None = None) -> Path | None:
        """Write the active session (or ``record``'s) to ``path`` (``.ipnet`` added if missing).

        Returns
        -------
        pathlib.Path or None
            The file written; None (and a message saying why) when there is nothing
            to save, a job is running, or the file cannot be written.
        """
        ctrl = self.controller
        rec = record if record is not None else ctrl.active
        if rec is None or not rec.session.object_ids:
            self._say("warning", "IPNet: nothing to save yet: scribble on a frame first")
            return None
        if ctrl.worker is not None:
            self._say("warning", "IPNet: wait for the running job to finish before saving the session")
            return None
        target = Path(os.fspath(path))
        if target.suffix.lower() != SUFFIX:
            target = target.with_name(target.name + SUFFIX)
        try:
            written = rec.session.save(target, source=self.source_of(rec), names=self.names_of(rec))
        except Exception as err:  # noqa: BLE001 - a message, the annotation goes on
            log.debug("IPNet: saving the session failed", exc_info=err)
            self._say("error", f"IPNet: cannot save the session to {target}: {type(err).__name__}: {err}")
            return None
        ctrl.set_status(f"Session saved to {written}.")
        self.saved.emit(written)
        return written

    # ------------------------------------------------------------------ open
    def read(self, path: str | os.PathLike) -> SessionFile | None:
        """Read and check a session file; None (and an error message) if it cannot be read."""
        try:
            return read_session(path)
        except (SessionFileError, OSError) as err:
            self._fail(err, path)
            return None

    def _fail(self, err: BaseException | str, path) -> None:
        name = Path(os.fspath(path)).name if path is not None else "the session"
        text = f"IPNet: cannot open {name}: {err}"
        self.controller.set_status(f"Opening {name} failed.")
        self._say("error", text)
        self.open_failed.emit(text)

    def find_image(self, sf: SessionFile, layers: Iterable, current=None,
                   confirm: Callable[[str], bool] | None = None,
                   add_image: Callable[[str, str], Any] | None = None) -> tuple[Any, SequenceSpec] | None:
        """The image layer and sequence a session file goes back on.

        In order: an image layer read from the recorded file; the ``current`` image
        layer, when its sequence fits and ``confirm(question)`` agrees; the recorded
        file opened as a new layer with ``add_image(path, name)``. None (and an error
        message) when none of them fits.
        """
        source = sf.header.get("source") or {}
        shape = tuple(sf.header["shape"])
        layers = list(layers)
        if source.get("kind") == "file":
            for layer in layers:
                p = source_path(layer)
                if p and _same_file(p, source["path"]):
                    spec = spec_for_source(layer, source, shape)
                    if spec is not None:
                        return layer, spec
        if current is not None:
            spec = spec_for_source(current, source, shape)
            where = source.get("path") or f"the image layer {source.get('layer', '?')!r}"
            question = (
                f"{sf.path.name} was made on {where} ({shape[0]} frames of {shape[1]} x {shape[2]}). "
                f"Replay it on the image layer {current.name!r}, which has the same shape?"
            )
            if spec is not None and (current.name == source.get("layer") and source.get("kind") == "memory"
                                     or confirm is None or confirm(question)):
                return current, spec
        if source.get("kind") == "file" and add_image is not None:
            p = Path(source["path"])
            if p.exists():
                try:
                    layer = add_image(str(p), p.stem)
                except Exception as err:  # noqa: BLE001 - reported
                    self._fail(f"its image {p} cannot be opened ({type(err).__name__}: {err})", sf.path)
                    return None
                spec = spec_for_source(layer, source, shape)
                if spec is not None:
                    return layer, spec
                self._fail(f"its image {p} does not hold {shape[0]} frames of {shape[1]} x {shape[2]} "
                           "along the recorded axis", sf.path)
                return None
        if source.get("kind") == "file":
            what = f"its image {source['path']} is not open and cannot be found"
        else:
            what = (f"its image (the layer {source.get('layer', '?')!r}, {shape[0]} frames of {shape[1]} x "
                    f"{shape[2]}) was in memory and no open image layer fits it")
        self._fail(f"{what}: open the image, choose it in the IPNet widget and open the session again", sf.path)
        return None

    def open(self, path: str | os.PathLike, layers: Iterable = (), current=None,
             confirm: Callable[[str], bool] | None = None,
             add_image: Callable[[str, str], Any] | None = None) -> bool:
        """Open a session file: find its image, then replay it in the background.

        Parameters
        ----------
        path : str or os.PathLike
            The session file.
        layers : iterable of image layers
            The image layers open now.
        current : image layer, optional
            The image layer chosen in the view (used when the file's image is not open
            and its sequence fits).
        confirm : callable, optional
            ``confirm(question) -> bool``: asked before replaying on the current layer
            when the file was not made on it, and before replacing a session with
            objects. None: yes.
        add_image : callable, optional
            ``add_image(path, name) -> image layer``: opens the recorded image.

        Returns
        -------
        bool
            Whether the replay was queued (errors become messages, see :meth:`read`).
        """
        ctrl = self.controller
        sf = self.read(path)
        if sf is None:
            return False
        found = self.find_image(sf, layers, current, confirm, add_image)
        if found is None:
            return False
        image, spec = found
        old = ctrl.records.get((id(image), spec))
        if old is not None and old.session.object_ids and confirm is not None and not confirm(
            f"Replace the IPNet session of {image.name!r} ({len(old.session.object_ids)} objects) by "
            f"the one in {sf.path.name}? (the current one can be saved first)"
        ):
            return False
        self.opening.emit(image, spec)
        job = OpenJob(path=sf.path, image=image, spec=spec, file=sf, files=self, n_calls=len(sf.log))
        ctrl.jobs.append(job)
        ctrl.pump()
        return True

    def _start_open(self, job: OpenJob) -> None:
        ctrl = self.controller
        if not ctrl.has_layer(job.image):
            from .sequence import UnsupportedLayerError

            raise UnsupportedLayerError("the image layer was removed before the session was opened")
        from ..session import Session

        frames = frame_view(job.image, job.spec)
        model = ctrl.model
        made: dict[str, Any] = {}

        def new_session(*args, **kwargs):
            session = Session(*args, **kwargs)
            made["before"] = session.snapshot()  # the empty session: what undoing the open goes back to
            return session

        def work():
            updates: queue.Queue = queue.Queue()

            def replay():
                try:
                    s = load_session(job.path, frames, model, on_mismatch="ignore", session_class=new_session,
                                     progress=lambda i, n: updates.put(("progress", i, n)))
                    updates.put(("done", s, s.labels))
                except BaseException as err:  # noqa: BLE001 - handed to the worker
                    updates.put(("error", err))

            threading.Thread(target=replay, name="ipnet-open-session", daemon=True).start()
            while True:
                item = updates.get()
                if item[0] == "progress":
                    yield item[1], item[2]
                elif item[0] == "error":
                    raise item[1]
                else:
                    return item[1], item[2]

        def returned(result):
            if isinstance(result, Failure):
                self._fail(_describe(result.err), job.path)
                return
            session, labels = result
            job.before = made.get("before")
            self._opened(job, session, labels)

        n = job.n_calls
        ctrl.set_status(f"Opening {job.path.name}: replaying {n} calls ...")
        self.replay_started.emit(job.path.name, n)
        ctrl.run_job(job, work, generator=True, on_yield=lambda p: self.replay_progress.emit(*p),
                     on_return=returned, on_finish=ctrl.job_finished)

    def _opened(self, job: OpenJob, session, labels: np.ndarray) -> None:
        """The replay is done: the session replaces the image's, its labels go to the output."""
        ctrl = self.controller
        image, spec = job.image, job.spec
        if not ctrl.has_layer(image):
            ctrl.set_status(f"{job.path.name}: its image layer was removed; the session was dropped.")
            return
        key = (id(image), spec)
        old = ctrl.records.get(key)
        old_ids = set(old.session.object_ids) if old is not None else set()
        rec = Record(image, spec, session, frame_view(image, spec))
        pending = session.pending_frame
        rec.round = Round(pending, None) if pending is not None else None  # its strokes are not known
        ctrl.records[key] = rec
        ctrl.active = rec
        if old is not None:
            ctrl.undo_steps = [s for s in ctrl.undo_steps if s.record is not old]
            rec.outputs = list(old.outputs)
            self._forget(old)
        job.record = rec
        out = ctrl.output_for(rec)
        rec.note_output(out)
        managed = old_ids | set(session.object_ids)
        changes = []
        for t in range(labels.shape[0]):
            change, refused, owners = frame_write(out.data, spec, t, labels[t], managed)
            job.refused.add(t, refused, owners)
            changes.append(change)
        n = apply_with_history(out, changes)
        ctrl.remember_step(out, n, job, f"opening {job.path.name}")
        # the object list: the file's names; objects only the replaced session had leave
        report = session.replay_report
        held = set().union(*(r.session.object_ids for r in ctrl.records.values()))
        for k in sorted(old_ids - held):
            if len(ctrl.objects) > 1:
                ctrl.objects.pop(k, None)
        names = out.metadata.setdefault("napari_ipnet_objects", {}) if isinstance(out.metadata, dict) else {}
        for k in session.object_ids:
            name = report.names.get(k) or f"object {k}"
            ctrl.objects[k] = name
            if name != f"object {k}":
                names[int(k)] = name
        if session.object_ids:
            ctrl.current = min(session.object_ids)
        elif ctrl.current not in ctrl.objects:
            ctrl.current = min(ctrl.objects)
        self._sources[id(rec)] = (rec, self._reopen_source(report.source, image, spec))
        tail = f" The round on frame {pending} waits to be propagated." if pending is not None else ""
        ctrl.set_status(
            f"Opened {job.path.name}: {len(session.object_ids)} objects, {len(session.annotated_frames())} "
            f"annotated frames, replayed in {report.seconds:.1f} s.{tail}"
        )
        self._report_replay(report)
        ctrl._report_refused(job, out)
        ctrl.objects_changed.emit()
        ctrl.confidence_changed.emit()
        self.opened.emit(rec)
        ctrl.session_changed.emit(rec)

    @staticmethod
    def _reopen_source(source: dict, image, spec: SequenceSpec) -> dict:
        """The source to save a session opened on ``image`` with (the file's, if it still applies)."""
        if source.get("kind") == "file" and _same_file(source_path(image) or "", source["path"]):
            return dict(source)
        return session_source(image, spec)

    def _report_replay(self, report) -> None:
        """Warnings: the replay's labels differ from the saved ones, or the model is another one."""
        saved, used = report.saved_model, report.model
        other_model = saved.get("name") != used.get("name") or (
            saved.get("checksum") is not None and used.get("checksum") is not None
            and saved.get("checksum") != used.get("checksum")
        )
        if other_model:
            self._say(
                "warning",
                f"IPNet: {report.path.name} was made with the model {saved.get('name')!r}"
                f"{'' if saved.get('name') != used.get('name') else ' (other weights)'}; it was replayed with "
                f"{used.get('name')!r}: the strokes are the same, the masks may differ.",
            )
        if not report.labels_match:
            self._say("warning", f"IPNet: {report.describe()}. The replayed masks are shown and used.")

    # ------------------------------------------------------------------ autosave
    def _session_changed(self, rec: Record) -> None:
        """An interaction, propagation, undo or reset changed ``rec``'s session: autosave it."""
        self._prune()
        saver = self._saver(rec)
        if saver is None:
            return
        saver.autosaver.source = self.source_of(rec)
        saver.autosaver.names = self.names_of(rec)
        saver.autosaver.notify()
        self._after(saver, False)  # a save that could not be made; the writer reports the others

    def _saver(self, rec: Record) -> _Saver | None:
        got = self._savers.get(id(rec))
        if got is not None and got.record is rec:
            return got
        folder = self.autosave_folder
        if folder is None:
            return None
        from ..session_file import Autosaver

        path = folder / autosave_name(rec.layer.name, rec.spec)
        saver = _Saver(rec, None)
        saver.autosaver = Autosaver(rec.session, path, min_interval=self.min_interval, clock=self._clock,
                                    writer=lambda p, data, done: self._write_later(saver, p, data, done))
        self._savers[id(rec)] = saver
        return saver

    def _write_later(self, saver: _Saver, path: Path, data: SessionSave, done: Callable) -> None:
        """Hand an autosave to the writer; say how it went once it is written."""

        def written(err):
            done(err)
            if not self.writer.closed:
                self._after(saver, err is None)

        self.writer(path, data, written)

    def _after(self, saver: _Saver, wrote: bool) -> None:
        """Say once where a session autosaves, and once when autosaving it fails.

        ``wrote``: an autosave was just written (the writer says so once it is).
        """
        auto = saver.autosaver
        if wrote and not saver.announced:
            saver.announced = True
            status = self.controller.status_text
            self.controller.set_status(f"{status} Autosaving to {auto.path}.".strip())
        if auto.last_error is not None and not saver.failed:
            saver.failed = True
            self._say("warning", f"IPNet: cannot autosave to {auto.path}: {auto.last_error}")
        elif auto.last_error is None and wrote:
            saver.failed = False

    def autosave_path(self, rec: Record | None = None) -> Path | None:
        """Where ``rec``'s session (the active one by default) autosaves (None: autosaving off)."""
        rec = rec if rec is not None else self.controller.active
        folder = self.autosave_folder
        if rec is None or folder is None:
            return None
        saver = self._savers.get(id(rec))
        return saver.autosaver.path if saver is not None and saver.record is rec else folder / autosave_name(
            rec.layer.name, rec.spec)

    def flush(self) -> int:
        """Save every autosave with changes not yet saved (not while a job runs).

        Returns
        -------
        int
            How many saves were made (handed to the writer).
        """
        if self.controller.worker is not None:
            return 0
        n = 0
        for saver in list(self._savers.values()):
            n += bool(saver.autosaver.flush())
            self._after(saver, False)
        self._prune()
        return n

    def _forget(self, rec: Record) -> None:
        saver = self._savers.pop(id(rec), None)
        if saver is not None and saver.record is rec and self.controller.worker is None:
            saver.autosaver.flush()
        self._sources.pop(id(rec), None)

    def _prune(self) -> None:
        """Flush and drop the autosavers of sessions the controller no longer holds."""
        if self.controller.worker is not None:
            return  # a job may be using a session: flush (and drop) them later
        live = {id(r) for r in self.controller.records.values()}  # a saver holds its record: ids stay unique
        for key, saver in list(self._savers.items()):
            if key not in live:
                saver.autosaver.flush()
                self._after(saver, False)
                del self._savers[key]
        for key in [k for k in self._sources if k not in live]:
            del self._sources[key]

    @property
    def writing(self) -> bool:
        """Whether an autosave is being written or waits to be."""
        return self.writer.busy

    def close(self) -> None:
        """Write pending autosaves (the widget calls it when it closes).

        Waits for the autosave being written (see :meth:`AutosaveWriter.close`).
        """
        if self.controller.worker is None:
            for saver in self._savers.values():
                saver.autosaver.flush()
        self.writer.close()


def _describe(err: BaseException) -> str:
    """An error of opening a session, for a person."""
    if isinstance(err, SessionFileError):
        return str(err)
    return f"{type(err).__name__}: {str(err).strip() or 'no message'}"
