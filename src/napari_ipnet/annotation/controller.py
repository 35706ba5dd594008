"""Qt-free controller of one annotation job in napari terms.

:class:`AnnotationController` owns what the dock widget used to keep in its own
attributes: the objects and the selected one, the open round's strokes (to take a
deleted stroke back), the job queue with one dataclass per job kind, the model and
its device, and the undo link between the engine (:class:`~napari_ipnet.session.Session`)
and the output Labels layer. It tells its view what happened through psygnal
signals (psygnal has no Qt; napari depends on it).

No Qt and no napari import here. The layers it holds are duck-typed: an image layer
(``data``, ``rgb``), and output Labels layers with the history API napari 0.9 has
(``data``, ``block_history``, ``data_setitem``, ``undo``, ``redo``, ``refresh``).
Everything that needs the viewer comes in as callables (see
:class:`AnnotationController`): which output layer a session writes to, whether a
layer is still in the viewer, how a job runs in the background (a napari worker in
the widget, a direct call in the tests).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal

from .device import move_model
from .history import item_ends, last_undo_item, redo_items, undo_items
from .results import (
    Refusals,
    RoundRecorder,
    apply_with_history,
    empty_objects,
    erase_change,
    frame_write,
    frames_text,
)
from .sequence import FrameView, SequenceSpec, UnsupportedLayerError, frame_view, spatial_shape
from .strokes import NEGATIVE_LABEL

log = logging.getLogger(__name__)

MAX_OBJECTS = NEGATIVE_LABEL - 1
STROKE_FEATURE = "stroke"  # feature of the Shapes / Points scribble layers: a stroke's id
STROKE_STAYS = (
    "IPNet: the deleted stroke's effect stays: its round is already propagated, or was "
    "undone or redone since. Undo (Ctrl+Z on the labels) takes back whole rounds; or "
    "scribble a correction."
)


# ====================================================================== strokes and rounds
@dataclass(eq=False)
class Stroke:
    """One stroke of a round not yet propagated, as the network received it.

    ``drawing`` keeps what the view needs to draw the stroke again after an undo was
    redone (for a Shapes layer: ``{"data": vertices, "shape_type": ...}``); None for
    brush paint.
    """

    layer: Any  # weakref.ref to its Shapes / Points layer; None for brush paint
    stroke_id: int  # its value in the layer's ``stroke`` feature (-1 for brush paint)
    object_id: int
    positive: bool
    mask: np.ndarray
    drawing: dict | None = None

    def present(self) -> bool:
        """Whether the stroke is still in its layer (brush paint cannot be deleted)."""
        if self.layer is None:
            return True
        layer = self.layer()
        if layer is None or STROKE_FEATURE not in layer.features:
            return False
        return bool((np.asarray(layer.features[STROKE_FEATURE]) == self.stroke_id).any())


@dataclass(eq=False)
class Round:
    """The strokes of a session's open round (drawn, not yet propagated).

    ``steps`` holds the strokes of each interaction of the round in order: taking a
    stroke back replays the round without it, step by step, so the frame ends up as if
    the stroke had never been drawn.
    """

    frame: int
    before: Any  # SessionSnapshot from before its first stroke; None: not known
    steps: list[list[Stroke]] = field(default_factory=list)

    @property
    def strokes(self) -> list[Stroke]:
        """Every stroke of the round, in the order drawn."""
        return [st for step in self.steps for st in step]


@dataclass
class Record:
    """One session: an image layer, a sequence spec, and the engine."""

    layer: Any
    spec: SequenceSpec
    session: Any
    frames: FrameView
    round: Round | None = None  # the open round's strokes, to take deleted ones back
    outputs: list = field(default_factory=list)  # weakrefs to the Labels layers written
    # object -> frames where the last interaction or propagation left it without a mask
    empty: dict[int, set[int]] = field(default_factory=dict)

    def note_output(self, layer) -> None:
        """Remember that the session's results went to ``layer`` (last one last)."""
        self.outputs = [r for r in self.outputs if r() is not None and r() is not layer]
        self.outputs.append(weakref.ref(layer))

    def output_layers(self) -> list:
        """The Labels layers this session wrote to (still alive), last one last."""
        return [r() for r in self.outputs if r() is not None]

    def note_empty(self, frame: int, ids, empty) -> None:
        """Record which of ``ids`` are empty on ``frame`` (and which are no longer)."""
        for k in ids:
            if k in empty:
                self.empty.setdefault(k, set()).add(frame)
            elif k in self.empty:
                self.empty[k].discard(frame)
                if not self.empty[k]:
                    del self.empty[k]


# ====================================================================== jobs
@dataclass
class Job:
    """What every job carries: its session, the engine state before it, refusals."""

    record: Record | None = None
    frame: int | None = None
    before: Any = None  # SessionSnapshot taken when the job starts (for undo)
    refused: Refusals = field(default_factory=Refusals)  # pixels the output layer kept
    t_submit: float = field(default_factory=time.perf_counter)
    #: what the job does, in an error message ("segmenting failed: ...")
    what = "working"


@dataclass
class InteractJob(Job):
    """Run the interaction network on one frame with new strokes."""

    image: Any = None  # the record is made when the job runs (after the model loads)
    spec: SequenceSpec | None = None
    items: list = field(default_factory=list)  # [(object_id, pos, neg), ...]
    strokes: list = field(default_factory=list)  # the Strokes behind ``items``
    what = "segmenting"


@dataclass
class PropagateJob(Job):
    """Propagate the open round of the active session through the stack."""

    tracked: list = field(default_factory=list)  # objects on the round's frame
    vanished: dict = field(default_factory=dict)  # object -> frames left empty
    total: int = 0
    what = "propagating"


@dataclass
class WithdrawJob(Job):
    """Segment an open round's frame again without the strokes deleted from it."""

    removed: list = field(default_factory=list)  # the strokes taken back

    what = "taking back a stroke"


@dataclass(eq=False)
class UndoStep:
    """One IPNet write in an output layer's undo history, with the engine states around it.

    napari keeps each history item as a list of atoms and, on undo / redo, moves a
    reversed copy of the list between its undo and redo stacks: the atoms themselves
    keep their identity, so the item is found again by its first and last atom.
    """

    layer: Any  # weakref.ref to the Labels layer
    head: Any  # first and last atom of the history item
    tail: Any
    record: Record
    before: Any  # SessionSnapshot before the write
    after: Any  # SessionSnapshot after it
    undone: bool = False
    what: str = ""  # "the strokes on frame 3 and their mask", for the status line
    strokes: list = field(default_factory=list)  # an interaction's strokes (undone with it)
    round_after: Round | None = None  # the session's open round right after the write
    draws: bool = True  # the step drew ``strokes`` (an interaction); False: it deleted them


class Failure:
    """An exception caught in a worker thread, handed to the main thread as a value."""

    def __init__(self, err: BaseException) -> None:
        self.err = err


def merge_strokes(strokes: list[Stroke]) -> list[tuple[int, np.ndarray | None, np.ndarray | None]]:
    """``(object_id, positive map, negative map)`` per object, as one interaction takes them."""
    per_obj: dict[int, list] = {}
    for st in strokes:
        entry = per_obj.setdefault(st.object_id, [None, None])
        slot = 0 if st.positive else 1
        entry[slot] = st.mask if entry[slot] is None else entry[slot] | st.mask
    return [(k, pos, neg) for k, (pos, neg) in sorted(per_obj.items())]


def restore(session, snapshot) -> None:
    """``session.restore(snapshot)``, its references then put on the model's device.

    A snapshot taken before a device change holds tensors on the old device.
    """
    session.restore(snapshot)
    session.to_device(session.model.device)


def next_frame_to_check(confidence: np.ndarray, annotated: Iterable[int] = (), current: int | None = None) -> int | None:
    """The least confident frame not yet annotated (None when every frame is).

    Parameters
    ----------
    confidence
        ``(T,)`` scores in [0, 1] (:meth:`Session.frame_confidence`).
    annotated
        Frames the user annotated already (never proposed).
    current
        The frame shown now: among equally confident frames the nearest one after it
        is proposed (so repeated presses walk through ties instead of staying put).

    Returns
    -------
    int or None
        The frame index to look at next.
    """
    conf = np.asarray(confidence, dtype=float).reshape(-1)
    skip = {int(a) for a in annotated}
    candidates = [t for t in range(conf.size) if t not in skip]
    if not candidates:
        return None
    low = min(conf[t] for t in candidates)
    ties = [t for t in candidates if conf[t] <= low + 1e-6]
    if current is None or len(ties) == 1:
        return ties[0]
    after = [t for t in ties if t > current]
    return after[0] if after else ties[0]


# ====================================================================== runners
class _DirectTask:
    """A job run in the calling thread when started (tests, scripts without Qt)."""

    def __init__(self, work, generator, on_yield, on_return, on_finish) -> None:
        self._args = (work, generator, on_yield, on_return, on_finish)
        self.abort_requested = False

    def quit(self) -> None:
        self.abort_requested = True

    def start(self) -> None:
        work, generator, on_yield, on_return, on_finish = self._args
        try:
            if generator:
                gen = work()
                result = None
                while True:
                    try:
                        value = next(gen)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    if on_yield is not None:
                        on_yield(value)
                    if self.abort_requested:
                        gen.close()
                        break
            else:
                result = work()
            if on_return is not None:
                on_return(result)
        finally:
            if on_finish is not None:
                on_finish()


def run_directly(work, generator: bool = False, on_yield=None, on_return=None, on_finish=None) -> _DirectTask:
    """Runner that runs each job in the calling thread once started (no Qt needed).

    A runner takes the job's work (a function, or a generator function when
    ``generator``) and callbacks, and returns a task, not started, with ``start()``,
    ``quit()`` and ``abort_requested``. The work catches its own exceptions and
    returns them as :class:`Failure`.
    """
    return _DirectTask(work, generator, on_yield, on_return, on_finish)


def _guarded(fn):
    def work():
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - reported in the main thread
            return Failure(err)

    return work


def _guarded_gen(genfn):
    def work():
        try:
            return (yield from genfn())
        except Exception as err:  # noqa: BLE001 - reported in the main thread
            return Failure(err)

    return work


def _history_hook(ctrl_ref, layer_ref, base, name: str):
    """``layer.undo`` / ``layer.redo`` replacement that keeps the IPNet sessions in step."""

    def hook(*args, **kwargs):
        ctrl, layer = ctrl_ref(), layer_ref()
        if ctrl is not None and layer is not None and not ctrl.history_may_change(layer):
            return None
        result = base(*args, **kwargs)
        if ctrl is not None and layer is not None:
            ctrl.sync_engine(layer, name)
        return result

    hook._ipnet_hook = ctrl_ref
    return hook


def remove_history_hooks(hooked: list, ctrl_ref) -> None:
    """Give the hooked layers back their own undo / redo (where ours is the outermost)."""
    for ref in hooked:
        layer = ref()
        if layer is None:
            continue
        for name in ("undo", "redo"):
            if getattr(layer.__dict__.get(name), "_ipnet_hook", None) is ctrl_ref:
                del layer.__dict__[name]
    hooked.clear()


# ====================================================================== the controller
class AnnotationController:
    """Objects, strokes, jobs, model and undo link of one IPNet annotation job.

    Parameters
    ----------
    output_for
        ``output_for(record) -> Labels layer``: where a session's results go now
        (the widget makes the layer when needed).
    has_layer
        ``has_layer(layer) -> bool``: whether a layer is still in the viewer.
    current_output
        ``current_output() -> Labels layer | None``: the output layer chosen in the view.
    runner
        How jobs run: :func:`run_directly` (default), or the widget's napari workers.
    request_model
        Called when a job needs a model and none is loaded (the widget loads the
        chosen weights); by default the queue is dropped with a message.
    """

    status = Signal(str)  # the status line
    message = Signal(str, str)  # level ("info", "warning", "error"), text
    job_failed = Signal(object, str)  # exception, what was being done
    objects_changed = Signal()  # objects, names, selection or empty frames changed
    interaction_done = Signal(int)  # frame
    propagation_started = Signal(int, int)  # start frame, frames to propagate
    frame_done = Signal(int)  # frame written during propagation
    progress = Signal(int, int, float)  # frames done, frames in the round, seconds left (nan: unknown)
    propagation_finished = Signal(object, bool)  # frames, cancelled
    confidence_changed = Signal()  # frame confidence of the active session changed
    busy_changed = Signal(bool)
    model_set = Signal(object)  # a model was set (loaded or given)
    model_changed = Signal(str, object)  # status text, device (None while loading)
    strokes_undone = Signal(object)  # [Stroke]: undo took back the interaction they made
    strokes_redone = Signal(object)  # [Stroke]: redo brought it back
    #: a session's state changed (interaction, propagation, undo / redo, reset): its Record
    session_changed = Signal(object)

    def __init__(
        self,
        output_for: Callable[[Record], Any] | None = None,
        has_layer: Callable[[Any], bool] | None = None,
        current_output: Callable[[], Any] | None = None,
        runner: Callable[..., Any] = run_directly,
        request_model: Callable[[], None] | None = None,
    ) -> None:
        self.output_for = output_for or (lambda rec: rec.output_layers()[-1])
        self.has_layer = has_layer or (lambda layer: True)
        self.current_output = current_output or (lambda: None)
        self.runner = runner
        self.request_model = request_model
        self.model = None
        self.model_name = "not loaded"
        self.loading = False
        self.pending_device = None  # torch.device to move the model to once no job runs
        self.objects_may_end = False  # for new sessions
        self.records: dict[tuple[int, SequenceSpec], Record] = {}
        self.active: Record | None = None  # record of the last interaction
        self.objects: dict[int, str] = {1: "object 1"}
        self.removed_names: dict[int, str] = {}  # objects undone away, for a redo
        self.current = 1
        self.negative = False
        self.jobs: deque[Job] = deque()
        self.worker = None  # the running task
        self.job: Job | None = None
        self.status_text = "Scribble on a frame to start."
        self.last_propagation_seconds: float | None = None
        self.last_round_frames: list[int] = []
        self.undo_steps: list[UndoStep] = []
        self.hooked: list[Any] = []  # weakrefs to the layers whose undo / redo is hooked
        self.self_ref = weakref.ref(self)
        self._cancel_event: threading.Event | None = None
        self._recorder: RoundRecorder | None = None
        self.round_target = None  # output layer of the running round
        self._t_propagate: float | None = None
        self._t_first_frame: float | None = None
        self._done = 0
        self.live_confidence: dict | None = None  # object (None: all) -> (T,) while propagating

    # ------------------------------------------------------------------ messages
    def set_status(self, text: str) -> None:
        """Set the status line (a sentence starting with a capital)."""
        text = text[:1].upper() + text[1:] if text else text
        self.status_text = text
        self.status.emit(text)

    def _say(self, level: str, text: str) -> None:
        self.message.emit(level, text)

    # ------------------------------------------------------------------ objects
    def describe(self, ids) -> str:
        """``"object 2"``, ``"object 2 (cell)"``, ``"objects 2 (cell) and 5"``."""
        parts = []
        for k in ids:
            name = self.objects.get(k, f"object {k}")
            parts.append(str(k) if name == f"object {k}" else f"{k} ({name})")
        if len(parts) == 1:
            return f"object {parts[0]}"
        return f"objects {', '.join(parts[:-1])} and {parts[-1]}"

    def add_object(self, name: str | None = None) -> int | None:
        """Add an object (the next label value free in the output layer) and select it."""
        out = self.current_output()
        top = max(self.objects, default=0)
        if out is not None and out.data.size:
            top = max(top, int(np.max(out.data)))
        k = top + 1
        if k > MAX_OBJECTS:
            self._say("warning", f"IPNet: at most {MAX_OBJECTS} objects (label {NEGATIVE_LABEL} marks brush negatives)")
            return None
        self.objects[k] = name or f"object {k}"
        self.current = k
        self.objects_changed.emit()
        return k

    def select_object(self, k: int) -> bool:
        """Select object ``k`` (added when it is a free label value); False if out of range."""
        k = int(k)
        if k not in self.objects:
            if not 1 <= k <= MAX_OBJECTS:
                return False
            self.objects[k] = f"object {k}"
        self.current = k
        self.objects_changed.emit()
        self.set_status(f"Object {k} ({self.objects[k]}) selected.")
        return True

    def rename_object(self, k: int, name: str) -> None:
        """Rename object ``k`` (the name is kept in the output layer's metadata)."""
        if k not in self.objects:
            raise KeyError(f"no object {k}")
        self.objects[k] = str(name)
        out = self.current_output()
        if out is not None:
            out.metadata.setdefault("napari_ipnet_objects", {})[int(k)] = str(name)
        self.objects_changed.emit()

    def empty_frames(self) -> dict[int, set[int]]:
        """Object -> frames where the active session's last result left it without a mask."""
        return self.active.empty if self.active is not None else {}

    # ------------------------------------------------------------------ model
    def set_model(self, model, name: str | None = None) -> None:
        """Use ``model`` (an IPNetModel); existing sessions restart (results are kept)."""
        self.model = model
        self.model_name = name or getattr(model, "name", "model")
        busy = self.job.record if self.job is not None else None
        self.records = {k: r for k, r in self.records.items() if r is busy}
        self.active = busy
        dev = getattr(model, "device", "?")
        self.model_set.emit(model)
        self.model_changed.emit(f"Model: {self.model_name} on {dev}", dev if self.pending_device is None else None)
        self.pump()

    def load(
        self, loader: Callable[[], Any], name: str, what: str = "loading the weights",
        on_finish: Callable[[], None] | None = None,
    ) -> bool:
        """Load a model with ``loader()`` in the background; False if one is loading already.

        ``on_finish`` is called once loading is over, loaded or not (e.g. to close a
        progress bar).
        """
        if self.loading:
            return False
        self.loading = True
        self._update_busy()

        def returned(result):
            self.loading = False
            if isinstance(result, Failure):
                self.job_failed.emit(result.err, what)
                self.fail_jobs_needing_model()
                return
            self.set_model(result, str(getattr(result, "name", name)))

        def finished():
            if on_finish is not None:
                on_finish()
            self.loading = False
            self.worker = None
            self._update_busy()
            self.pump()

        task = self.runner(_guarded(loader), False, None, returned, finished)
        self.worker = task
        task.start()
        return True

    def fail_jobs_needing_model(self) -> None:
        """No model could be had: drop the queued jobs, and say so."""
        if self.model is None and self.jobs:
            self.jobs.clear()
            self.set_status("No model: the scribbles were not processed.")
            self.model_changed.emit("Model: not loaded", None)

    def request_device(self, dev) -> None:
        """Move the model to ``dev`` (a torch.device) now, or once the running job has finished.

        A job reads the model and the sessions' reference features while it runs, so
        the move waits until none runs. A model still loading moves once loaded.
        """
        self.pending_device = dev
        if self.is_idle():
            self.pump()  # moves it now
            return
        self._say("info", f"IPNet: the model moves to {dev} once the running job has finished")
        where = getattr(self.model, "device", None)
        now = f"{self.model_name} on {where}" if self.model is not None else "loading"
        self.model_changed.emit(f"Model: {now}; moves to {dev} after the running job", None)

    def _apply_device(self) -> None:
        """Move the model and every session using it to the pending device (no job runs)."""
        dev, self.pending_device = self.pending_device, None
        model = self.model
        old = model.device
        sessions = [s for s in self.sessions if s.model is model]
        try:
            move_model(model, sessions, dev)
        except Exception as err:  # noqa: BLE001
            log.debug("IPNet: moving the model failed", exc_info=err)
            self._say("error", f"IPNet: cannot move the model to {dev}: {str(err).strip() or type(err).__name__}. "
                      f"It stays on {old}.")
            self.model_changed.emit(f"Model: {self.model_name} on {old}", old)
            return
        self.model_changed.emit(f"Model: {self.model_name} on {dev}", dev)

    # ------------------------------------------------------------------ sessions
    def record_for(self, image, spec: SequenceSpec) -> Record:
        """The session of ``image`` along ``spec`` (made with the current model if new)."""
        key = (id(image), spec)
        rec = self.records.get(key)
        if rec is None:
            from ..session import Session

            frames = frame_view(image, spec)
            rec = Record(image, spec, Session(frames, self.model, self.objects_may_end), frames)
            self.records[key] = rec
        return rec

    @property
    def session(self):
        """Session of the last interaction (None before the first one)."""
        return self.active.session if self.active is not None else None

    @property
    def sessions(self) -> list:
        """Every session (one per image layer and sequence)."""
        return [r.session for r in self.records.values()]

    def set_objects_may_end(self, layer, axis: int, value: bool) -> None:
        """"Objects may end" for new sessions and those of ``layer`` along ``axis``."""
        self.objects_may_end = bool(value)
        for rec in self.records.values():
            if rec.layer is layer and rec.spec.axis == axis:
                rec.session.objects_may_end = bool(value)

    def _prune_records(self) -> None:
        """Forget the sessions of image layers no longer in the viewer."""
        for key, rec in list(self.records.items()):
            if not self.has_layer(rec.layer):
                del self.records[key]
                if self.active is rec:
                    self.active = None

    def layer_removed(self, layer) -> None:
        """A layer left the viewer: cancel what used it, forget its sessions and jobs."""
        job = self.job
        running = isinstance(job, PropagateJob) and job.record is not None
        if running and (job.record.layer is layer or layer is self.round_target):
            what = "image" if job.record.layer is layer else "output"
            self._say(
                "warning",
                f"IPNet: the {what} layer {layer.name!r} was removed while propagating; "
                "propagation cancelled (frames already finished are kept in the session).",
            )
            self.cancel()
        self.undo_steps = [s for s in self.undo_steps if s.layer() is not layer]
        for key, rec in list(self.records.items()):
            if rec.layer is layer and not (job is not None and job.record is rec):
                del self.records[key]
                if self.active is rec:
                    self.active = None
        self.jobs = deque(
            j for j in self.jobs
            if getattr(j, "image", None) is not layer and (j.record is None or j.record.layer is not layer)
        )

    # ------------------------------------------------------------------ confidence
    def frame_confidence(self, object_id: int | None = None) -> np.ndarray | None:
        """The active session's ``(T,)`` frame confidence (None before the first interaction).

        Only read while no job runs, or from the values a propagation hands over
        (:attr:`live_confidence`): a running job changes the session.
        """
        if self.worker is not None and self.live_confidence is not None:
            conf = self.live_confidence.get(object_id)
            if conf is not None:
                return conf
        session = self.session
        if session is None or not session.object_ids or self.worker is not None:
            return None
        if object_id is not None and object_id not in session.object_ids:
            return None
        return session.frame_confidence(object_id)

    def next_frame_to_check(self, current: int | None = None) -> int | None:
        """The active session's least confident frame not yet annotated (None: none)."""
        session = self.session
        if session is None or not session.object_ids or self.worker is not None:
            return None
        annotated = set(session.annotated_frames())
        if session.pending_frame is not None:
            annotated.add(session.pending_frame)
        return next_frame_to_check(session.frame_confidence(), annotated, current)

    # ------------------------------------------------------------------ jobs
    def is_idle(self) -> bool:
        """No job running or waiting (the model may still be loading)."""
        return self.worker is None and not self.jobs and not self.loading

    def _update_busy(self) -> None:
        self.busy_changed.emit(not self.is_idle())

    @property
    def propagating(self) -> bool:
        """Whether a propagation runs now."""
        return isinstance(self.job, PropagateJob)

    def submit_interaction(self, image, spec: SequenceSpec, frame: int, strokes: list[Stroke]) -> None:
        """Queue an interaction on ``frame`` with ``strokes`` (runs when the model is there)."""
        items = merge_strokes(strokes)
        if not items:
            return
        for k, _p, _n in items:
            self.objects.setdefault(k, f"object {k}")
        self.jobs.append(InteractJob(frame=frame, items=items, strokes=list(strokes), image=image, spec=spec))
        self.pump()

    def pump(self) -> None:
        """Start the next queued job unless one is running (main thread only).

        A device change waiting for the running job is applied first.
        """
        if self.pending_device is not None and self.worker is None and not self.loading:
            if self.model is not None:
                self._apply_device()
        while self.worker is None and not self.loading and self.jobs:
            if self.model is None:
                if self.request_model is not None:
                    self.request_model()
                else:
                    self.fail_jobs_needing_model()
                break
            job = self.jobs.popleft()
            start = {
                InteractJob: self._start_interaction,
                PropagateJob: self._start_propagation,
                WithdrawJob: self._start_withdrawal,
            }.get(type(job)) or (lambda j: j.start(self))  # other jobs start themselves
            try:
                start(job)
            except Exception as err:  # noqa: BLE001 - never leave the queue stuck
                self.job_failed.emit(err, job.what)
                self.worker = None
                self.job = None
                if isinstance(job, PropagateJob):
                    self._t_propagate = None
        self._update_busy()

    def run_job(self, job: Job, work, generator: bool = False, on_yield=None, on_return=None, on_finish=None) -> None:
        """Run ``job``'s ``work`` through the runner now (a job's ``start(controller)`` calls it).

        Jobs of kinds the controller does not know (e.g. opening a session file,
        :mod:`napari_ipnet.annotation.files`) are queued like the others and started
        by :meth:`pump` with ``job.start(controller)``, which calls this. ``work``'s
        exceptions come back to ``on_return`` as a :class:`Failure`; ``on_finish``
        (default: the end of an ordinary job) must leave the controller idle.
        """
        self._run(job, work, generator, on_yield, on_return, on_finish)

    def job_finished(self) -> None:
        """End the running job: free the controller and start the next queued job."""
        self._job_finished()

    def _run(self, job: Job, work, generator=False, on_yield=None, on_return=None, on_finish=None) -> None:
        task = self.runner(
            _guarded_gen(work) if generator else _guarded(work), generator, on_yield, on_return,
            on_finish or self._job_finished,
        )
        self.worker, self.job = task, job
        task.start()

    def _job_finished(self) -> None:
        self.worker = None
        self.job = None
        self._prune_records()
        self.confidence_changed.emit()
        self.pump()
        self._update_busy()

    # ------------------------------------------------------------------ interaction
    def _start_interaction(self, job: InteractJob) -> None:
        image = job.image
        if not self.has_layer(image):
            raise UnsupportedLayerError("the image layer was removed before its scribbles were processed")
        rec = self.record_for(image, job.spec)
        job.record = rec
        self.active = rec
        session = rec.session
        frame = job.frame
        self.sync_engine()  # in case the output layer was undone behind our back
        job.before = session.snapshot()
        if session.pending_frame != frame:  # a new round (one open elsewhere closes, as in the engine)
            rec.round = Round(frame, job.before)
        elif rec.round is None or rec.round.frame != frame:
            rec.round = Round(frame, None)  # open since an undo: its start is not known

        def work():
            for k, pos, neg in job.items:
                session.interact(frame, pos, neg, object_id=k)
            return session.label_frame(frame), list(session.object_ids)

        self.set_status(f"Segmenting frame {frame} ...")
        self._run(job, work, on_return=lambda res: self._interaction_returned(job, res))

    def _interaction_returned(self, job: Job, result) -> None:
        if isinstance(result, Failure):
            self.job_failed.emit(result.err, f"segmenting frame {job.frame}")
            self.set_status(f"Segmenting frame {job.frame} failed.")
            return
        labels, managed = result
        rnd = job.record.round
        if isinstance(job, InteractJob) and rnd is not None and rnd.frame == job.frame:
            rnd.steps.append(list(job.strokes))
        if not self.has_layer(job.record.layer):
            self.set_status(f"Frame {job.frame}: its image layer was removed; result dropped.")
            return
        out = self.output_for(job.record)
        job.record.note_output(out)
        change, refused, owners = frame_write(out.data, job.record.spec, job.frame, labels, managed)
        job.refused.add(job.frame, refused, owners)
        n = apply_with_history(out, [change] if change is not None else [])
        if isinstance(job, InteractJob):
            what = f"the {'stroke' if len(job.strokes) == 1 else 'strokes'} on frame {job.frame} and {'its' if len(job.strokes) == 1 else 'their'} mask"
            self.remember_step(out, n, job, what, [st for st in job.strokes if st.layer is not None])
        else:
            removed = getattr(job, "removed", [])
            self.remember_step(out, n, job, f"the stroke deletion on frame {job.frame}", removed, draws=False)
        ids = [k for k, _pos, _neg in getattr(job, "items", [])]  # a withdrawal: none
        empty = empty_objects(labels, ids)
        job.record.note_empty(job.frame, ids, empty)
        self.objects_changed.emit()
        dt = time.perf_counter() - job.t_submit
        plan = job.record.session.propagation_plan()
        if empty and isinstance(job, InteractJob):
            self._report_empty_interaction(job, empty, dt, len(plan))
        else:
            self.set_status(
                f"Frame {job.frame} segmented ({dt:.2f} s). Propagate ({len(plan)} frames) or scribble again."
            )
        self._report_refused(job, out)
        self.interaction_done.emit(job.frame)
        self.session_changed.emit(job.record)

    def _report_refused(self, job: Job, out) -> None:
        """Status and a warning: the output layer kept labels where the session has its objects."""
        if not job.refused:
            return
        text = job.refused.text(out.name, self.describe)
        self.set_status(f"{self.status_text} {text}")
        self._say("warning", f"IPNet: {text}")
        log.info("IPNet: %s", text)

    def _report_empty_interaction(self, job: InteractJob, empty: list[int], dt: float, n_plan: int) -> None:
        """Status and notification: the interaction left objects without a mask on its frame."""
        what = self.describe(empty)
        self.set_status(
            f"Frame {job.frame} segmented ({dt:.2f} s), but {what} got no mask there: scribble "
            f"{'it' if len(empty) == 1 else 'them'} again, or propagate ({n_plan} frames)."
        )
        positive = {k for k, pos, _neg in job.items if pos is not None and np.any(pos)}
        if positive & set(empty):
            self._say(
                "warning",
                f"IPNet: {what} got no mask on frame {job.frame}: the network found nothing "
                "under the stroke. Draw a longer stroke well inside the object, or more strokes.",
            )
        else:  # negative strokes only: perhaps what the user wanted
            self._say("info", f"IPNet: {what} is now empty on frame {job.frame} (negative strokes only).")

    # ------------------------------------------------------------------ deleted strokes
    def strokes_removed(self, layer) -> None:
        """Strokes were deleted from ``layer``: take back those of open rounds (queued)."""

        def gone(strokes) -> bool:
            return any(st.layer is not None and st.layer() is layer and not st.present() for st in strokes)

        # in an open round, or in an interaction still running or waiting (its round
        # gets the stroke when it returns, and the withdrawal queued after it takes it back)
        jobs = [j for j in (self.job, *self.jobs) if isinstance(j, InteractJob)]
        if not any(r.round is not None and gone(r.round.strokes) for r in self.records.values()) and not any(
            gone(j.strokes) for j in jobs
        ):
            self._say("info", STROKE_STAYS)
            return
        if not any(isinstance(j, WithdrawJob) for j in self.jobs):
            self.jobs.append(WithdrawJob())
        self.pump()

    def _start_withdrawal(self, job: WithdrawJob) -> None:
        """Segment an open round's frame again from the strokes that are left."""
        self.sync_engine()  # in case the output layer was undone behind our back
        todo = [
            r for r in self.records.values()
            if r.round is not None and any(not st.present() for st in r.round.strokes) and self.has_layer(r.layer)
        ]
        if not todo:
            return
        if len(todo) > 1:  # rounds of several sequences: one after the other
            self.jobs.appendleft(WithdrawJob())
        rec = job.record = todo[0]
        session, rnd = rec.session, rec.round
        job.frame = rnd.frame
        if session.pending_frame != rnd.frame or rnd.before is None:
            rec.round = None
            self._say("info", STROKE_STAYS)
            return
        job.removed = [st for st in rnd.strokes if not st.present()]
        steps = [[st for st in step if st.present()] for step in rnd.steps]
        steps = [step for step in steps if step]
        n_kept = sum(len(step) for step in steps)
        job.before = session.snapshot()
        frame = rnd.frame

        def work():
            managed = set(session.object_ids)
            restore(session, rnd.before)  # back to before the round's first stroke
            for step in steps:  # the round again, without the deleted strokes
                for k, pos, neg in merge_strokes(step):
                    session.interact(frame, pos, neg, object_id=k)
            return session.label_frame(frame), sorted(managed | set(session.object_ids))

        def returned(result):
            if isinstance(result, Failure):
                self.job_failed.emit(result.err, f"segmenting frame {frame} again")
                self.set_status(f"Taking back the stroke on frame {frame} failed.")
                return
            rnd.steps = steps
            if not steps:
                rec.round = None  # the round is gone with its last stroke
            self._interaction_returned(job, result)
            left = f"from the {n_kept} strokes left" if steps else "back to before this round"
            self.set_status(f"Stroke deleted: frame {frame} {left}.")

        self.set_status(f"Stroke deleted: segmenting frame {frame} again ...")
        self._run(job, work, on_return=returned)

    # ------------------------------------------------------------------ propagation
    def propagate(self) -> None:
        """Propagate the last scribbled frame through the stack (queued if busy)."""
        if self._t_propagate is None:
            self._t_propagate = time.perf_counter()
        queued = [j for j in self.jobs if isinstance(j, InteractJob)]
        if self.active is None and not queued and not isinstance(self.job, InteractJob):
            self._say("warning", "IPNet: nothing to propagate yet: scribble on a frame first")
            self.set_status("Nothing to propagate yet: scribble on a frame first.")
            self._t_propagate = None
            return
        if any(isinstance(j, PropagateJob) for j in self.jobs):
            return
        if self.propagating and not queued:
            return  # already propagating this round
        self.jobs.append(PropagateJob())
        self.pump()

    def _start_propagation(self, job: PropagateJob) -> None:
        rec = self.active
        if rec is None or not self.has_layer(rec.layer):
            self._t_propagate = None
            raise UnsupportedLayerError("the image layer of the last scribble is gone")
        session = rec.session
        self.sync_engine()  # in case the output layer was undone behind our back
        if session.pending_frame is None:
            self._t_propagate = None
            if session.object_ids and session.annotated_frames():
                text = "This round is already propagated; scribble a correction first."
            else:
                text = "Nothing to propagate: no stroke left (undone); scribble on a frame first."
            self._say("info", f"IPNet: {text[0].lower()}{text[1:]}")
            self.set_status(text)
            return
        plan = session.propagation_plan()
        out = self.output_for(rec)
        rec.note_output(out)
        job.record = rec
        job.total = len(plan)
        cancel = threading.Event()
        self._cancel_event = cancel
        self._recorder = RoundRecorder(out)
        self.round_target = out
        job.before = session.snapshot()
        start = job.frame = session.pending_frame
        frames_gen = session.propagate()  # round state lives in this generator
        self._done = 0
        self._t_first_frame = time.perf_counter()
        self.live_confidence = None

        def work():
            # the objects on the round's frame, to tell where they vanish (read by the
            # main thread once frames arrive)
            ids = session.object_ids
            missing = set(empty_objects(session.label_frame(start), ids))
            job.tracked = [k for k in ids if k not in missing]
            for t in frames_gen:
                conf = {k: session.frame_confidence(k) for k in session.object_ids}
                conf[None] = session.frame_confidence()
                yield t, session.label_frame(t), list(session.object_ids), conf
                if cancel.is_set():
                    return

        def returned(res):
            if isinstance(res, Failure):
                self.job_failed.emit(res.err, "propagating")

        def finished():
            frames_gen.close()  # no-op when done; closes the round if the worker was aborted
            self._propagation_finished(job)

        self.set_status(f"Propagating {len(plan)} frames ...")
        self.propagation_started.emit(start, len(plan))
        self._run(job, work, generator=True, on_yield=lambda res: self._frame_arrived(job, res),
                  on_return=returned, on_finish=finished)

    def _frame_arrived(self, job: PropagateJob, result) -> None:
        t, labels, managed, conf = result
        rec = job.record
        out = self.round_target
        if out is None or not self.has_layer(out):
            return
        change, refused, owners = frame_write(out.data, rec.spec, t, labels, managed)
        job.refused.add(t, refused, owners)
        self._recorder.write(t, change)
        empty = empty_objects(labels, job.tracked)
        rec.note_empty(t, job.tracked, empty)
        for k in empty:
            job.vanished.setdefault(k, []).append(t)
        self._done += 1
        elapsed = time.perf_counter() - (self._t_first_frame or time.perf_counter())
        left = elapsed / self._done * (job.total - self._done) if self._done else float("nan")
        self.live_confidence = conf
        self.progress.emit(self._done, job.total, left)
        self.frame_done.emit(t)
        self.confidence_changed.emit()

    def _propagation_finished(self, job: PropagateJob) -> None:
        aborted = bool(getattr(self.worker, "abort_requested", False))  # napari's task manager
        cancelled = aborted or (self._cancel_event is not None and self._cancel_event.is_set())
        frames = []
        target = self.round_target
        if self._recorder is not None:
            frames = list(self._recorder.frames)
            if target is not None and self.has_layer(target):
                # the round is closed (the generator is done or closed): one undo step
                # for the frames written, finished or cancelled, with the engine states
                n = self._recorder.commit()
                self.remember_step(target, n, job, f"the propagation from frame {job.frame} ({len(frames)} frames)")
        self._recorder = None
        self.round_target = None
        self._cancel_event = None
        self.live_confidence = None
        if self._t_propagate is not None:
            self.last_propagation_seconds = time.perf_counter() - self._t_propagate
        self._t_propagate = None
        self.last_round_frames = frames
        dt = self.last_propagation_seconds or 0.0
        word = "Cancelled after" if cancelled else "Propagated"
        vanished = self._vanished_text(job)
        self.set_status(
            f"{word} {len(frames)} frames in {dt:.1f} s. {vanished[:1].upper() + vanished[1:] + '. ' if vanished else ''}"
            "Check the next frame (the least confident one) and correct it, then propagate again."
        )
        if vanished:
            session = job.record.session if job.record is not None else None
            ending = session is not None and session.objects_may_end and session.uses_objects_may_end
            # objects that may end (z-stacks): expected, said quietly; otherwise worth a look
            self._say("info" if ending else "warning", f"IPNet: after propagating, {vanished}.")
        if target is not None:
            self._report_refused(job, target)
        self.objects_changed.emit()
        self.worker = None
        self.job = None
        self._prune_records()
        self.confidence_changed.emit()
        self.propagation_finished.emit(frames, cancelled)
        if job.record is not None and frames:
            self.session_changed.emit(job.record)
        self.pump()
        self._update_busy()

    def _vanished_text(self, job: PropagateJob) -> str:
        """``"object 3 empty on frames 12-19; object 5 (cell) empty on frame 7"``, or ``""``."""
        return "; ".join(
            f"{self.describe([k])} empty on {frames_text(frames)}" for k, frames in sorted(job.vanished.items())
        )

    def cancel(self) -> None:
        """Stop the running propagation after the current frame; drop queued propagations."""
        self.jobs = deque(j for j in self.jobs if not isinstance(j, PropagateJob))
        if self._cancel_event is not None:
            self._cancel_event.set()
        self._update_busy()

    def close(self) -> None:
        """Cancel work, give the output layers their own undo / redo back."""
        if self._cancel_event is not None:
            self._cancel_event.set()
        self.jobs.clear()
        remove_history_hooks(self.hooked, self.self_ref)
        self.undo_steps.clear()

    # ------------------------------------------------------------------ undo link
    def undo(self, out) -> None:
        """Undo the last write to ``out`` (one interaction or one round) and the engine with it."""
        if out is None:
            return
        if not self.is_idle():
            self._say("warning", "IPNet: wait for the running job to finish before undoing")
            return
        out.undo()  # hooked: the sessions follow (see sync_engine)
        self.sync_engine(out, "undo")  # no-op when the hook already did it

    def remember_step(self, layer, n_pixels: int, job: Job, what: str = "", strokes=(), draws: bool = True) -> None:
        """Record the history item just written by ``job``, with the engine states around it."""
        item = last_undo_item(layer) if n_pixels else None
        if item is None or job.before is None or job.record is None:
            return  # nothing in the layer's history: the engine change merges into the next step
        rnd = job.record.round
        round_after = Round(rnd.frame, rnd.before, [list(s) for s in rnd.steps]) if rnd is not None else None
        if job.record.session.pending_frame is None:
            round_after = None  # the round is closed
        self.undo_steps.append(
            UndoStep(weakref.ref(layer), item[0], item[-1], job.record, job.before,
                     job.record.session.snapshot(), what=what, strokes=list(strokes), round_after=round_after,
                     draws=draws)
        )
        self._install_history_hooks(layer)

    def _install_history_hooks(self, layer) -> None:
        """Wrap ``layer.undo`` / ``layer.redo`` (what Ctrl+Z / Ctrl+Shift+Z call) once."""
        if getattr(layer.__dict__.get("undo"), "_ipnet_hook", None) is self.self_ref:
            return
        layer_ref = weakref.ref(layer)
        for name in ("undo", "redo"):
            setattr(layer, name, _history_hook(self.self_ref, layer_ref, getattr(layer, name), name))
        self.hooked.append(layer_ref)

    def history_may_change(self, layer) -> bool:
        """Whether undo / redo on ``layer`` may run now (not while a job uses the engine)."""
        if self.worker is None or not any(s.layer() is layer for s in self.undo_steps):
            return True
        self._say("warning", "IPNet: wait for the running job to finish before undoing or redoing")
        return False

    def sync_engine(self, layer=None, action: str | None = None) -> None:
        """Bring the sessions back in line with the undo history of the output layer(s).

        Each IPNet write in an output layer is one history item, remembered with the
        session snapshots taken before and after it. An item found on the layer's redo
        stack is undone, one on its undo stack is done; an item on neither can never
        come back (redo cleared by a new edit, or too old) and is forgotten. Each
        session whose steps changed state is restored to the state before its first
        undone step, or after its last done step. The strokes of an interaction undone
        leave their scribble layer with it (:attr:`strokes_undone`), and come back on
        redo (:attr:`strokes_redone`).
        """
        if not self.undo_steps or self.worker is not None:
            return  # never under a running job: it is reading and writing the sessions
        live = {id(r) for r in self.records.values()}
        stacks: dict[int, tuple[set[int], set[int]]] = {}
        keep: list[UndoStep] = []
        changed: list[Record] = []
        flipped: list[UndoStep] = []
        for step in self.undo_steps:
            lay = step.layer()
            if lay is None or id(step.record) not in live:
                continue  # layer or session gone
            if layer is not None and lay is not layer:
                keep.append(step)
                continue
            if id(lay) not in stacks:
                stacks[id(lay)] = (item_ends(undo_items(lay)), item_ends(redo_items(lay)))
            done, redo = stacks[id(lay)]
            if id(step.head) in done or id(step.tail) in done:
                undone = False
            elif id(step.head) in redo or id(step.tail) in redo:
                undone = True
            else:
                continue  # out of reach of undo / redo
            if undone != step.undone:
                step.undone = undone
                flipped.append(step)
                if not any(r is step.record for r in changed):
                    changed.append(step.record)
            keep.append(step)
        self.undo_steps = keep
        gone: set[int] = set()
        came: set[int] = set()
        for rec in changed:
            steps = [s for s in keep if s.record is rec]
            first = next((i for i, s in enumerate(steps) if s.undone), None)
            ids_before = set(rec.session.object_ids)
            restore(rec.session, steps[first].before if first is not None else steps[-1].after)
            ids_after = set(rec.session.object_ids)
            gone |= ids_before - ids_after
            came |= ids_after - ids_before
            # the open round's strokes as they were after the last step still done (so a
            # stroke redone can be deleted again); unknown when that step is not ours
            last_done = steps[first - 1] if first else (steps[-1] if first is None else None)
            r = last_done.round_after if last_done is not None else None
            rec.round = Round(r.frame, r.before, [list(x) for x in r.steps]) if r is not None else None
            rec.empty.clear()  # where objects are empty is no longer known either
        if not changed:
            return
        # strokes an undone step drew, or a redone step deleted, leave their layer; the others come back
        undone_strokes = [st for s in flipped if s.undone == s.draws for st in s.strokes]
        redone_strokes = [st for s in flipped if s.undone != s.draws for st in s.strokes]
        if undone_strokes:
            self.strokes_undone.emit(undone_strokes)
        if redone_strokes:
            self.strokes_redone.emit(redone_strokes)
        self._follow_session_objects(gone, came)
        word = "Redone" if action == "redo" else "Undone"
        whats = [s.what for s in flipped if s.what]
        what = "; ".join(whats) if whats else "the last IPNet result"
        pending = self.active.session.pending_frame if self.active is not None else None
        tail = f" The round on frame {pending} waits to be propagated." if pending is not None else ""
        self.set_status(f"{word}: {what}.{tail}")
        self.objects_changed.emit()
        self.confidence_changed.emit()
        for rec in changed:
            self.session_changed.emit(rec)

    def _follow_session_objects(self, gone: set[int], came: set[int]) -> None:
        """Update the objects after undo / redo changed the objects the sessions hold.

        Objects ``gone`` from their session (and held by no other) leave the list, their
        names kept for a redo; objects that ``came`` back return with their names.
        """
        held = set().union(*(r.session.object_ids for r in self.records.values()))
        for k in sorted(gone - held):
            if k in self.objects:
                self.removed_names[k] = self.objects.pop(k)
        out = self.current_output()
        saved = out.metadata.get("napari_ipnet_objects", {}) if out is not None else {}
        for k in sorted(came):
            name = self.removed_names.pop(k, None)
            if k not in self.objects:
                self.objects[k] = name or saved.get(k) or f"object {k}"
        if not self.objects:
            self.objects[1] = self.removed_names.pop(1, "object 1")
        if self.current not in self.objects:
            self.current = max(self.objects)

    # ------------------------------------------------------------------ reset
    def reset_object(self, k: int | None = None) -> bool:
        """Forget object ``k`` (the selected one by default): results and session memory.

        Returns False (and says why) while a job runs. The view removes its strokes.
        """
        k = self.current if k is None else int(k)
        if not self.is_idle():
            self._say("warning", "IPNet: wait for the running job to finish before resetting")
            return False
        changes: dict[int, tuple[Any, list]] = {}  # id(layer) -> (layer, changes)
        touched: list[Record] = []
        for rec in self.records.values():
            if k in rec.session.object_ids:
                touched.append(rec)
                rec.session.reset(k)
                rec.round = None
                rec.empty.pop(k, None)
                # the engine cannot be rolled back across a reset (the layer can)
                self.undo_steps = [s for s in self.undo_steps if s.record is not rec]
                self._erase(rec, [k], changes)
        for layer, layer_changes in changes.values():
            apply_with_history(layer, layer_changes)
        if len(self.objects) > 1 and k in self.objects:
            del self.objects[k]
            self.current = min(self.objects)
        self.objects_changed.emit()
        self.confidence_changed.emit()
        self.set_status(f"Object {k} reset.")
        for rec in touched:
            self.session_changed.emit(rec)
        return True

    def reset_all(self) -> bool:
        """Forget every object IPNet manages; other labels of the output layers are kept."""
        if not self.is_idle():
            self._say("warning", "IPNet: wait for the running job to finish before resetting")
            return False
        changes: dict[int, tuple[Any, list]] = {}
        for rec in self.records.values():
            ids = rec.session.object_ids
            rec.session.reset()
            self._erase(rec, ids, changes)
        for layer, layer_changes in changes.values():
            apply_with_history(layer, layer_changes)
        self.records.clear()
        self.undo_steps.clear()  # the engine cannot be rolled back across a reset
        self.active = None
        self.objects = {1: "object 1"}
        self.current = 1
        self.objects_changed.emit()
        self.confidence_changed.emit()
        self.set_status("All objects reset.")
        return True

    def _erase(self, rec: Record, ids, changes: dict) -> None:
        """Add the changes erasing objects ``ids`` of ``rec`` from the layers it wrote to."""
        shape = spatial_shape(rec.layer)
        for layer in rec.output_layers():
            if not self.has_layer(layer) or tuple(layer.data.shape) != shape:
                continue
            todo = changes.setdefault(id(layer), (layer, []))[1]
            for k in ids:
                todo += [erase_change(layer.data, rec.spec, f, k) for f in range(rec.frames.shape[0])]
