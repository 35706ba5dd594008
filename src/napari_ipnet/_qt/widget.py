"""IPNet dock widget: scribble on a frame, segment it, propagate through the stack.

The widget is a thin client of :class:`napari_ipnet.session.Session`: it turns napari
layers into frames and scribble maps, runs the session in worker threads (one job at
a time, in order), and writes the results into an output Labels layer through its undo
history. It never calls the networks itself.

torch is imported only when a model is loaded or a session is created, so opening the
plugin menu stays fast.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from napari.utils.progress import cancelable_progress, progress
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor, QIcon, QKeySequence, QPixmap, QShortcut
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..axes import (
    axis_entry,
    axis_kind,
    guess_axis_kinds,
    is_named,
    objects_may_end_default,
    tiff_axes,
    tiff_axis_labels,
)
from ._colors import label_colormap, object_color
from ._device import move_model
from ._history import item_ends, last_undo_item, redo_items, undo_items
from ._object_list import ObjectList
from ._results import (
    Refusals,
    RoundRecorder,
    apply_with_history,
    empty_objects,
    erase_change,
    frame_ranges,
    frames_text,
    frame_write,
)
from ._sequence import (
    FrameView,
    SequenceSpec,
    UnsupportedLayerError,
    check_layer,
    frame_view,
    layer_data,
    make_spec,
    spatial_shape,
)
from ._strokes import NEGATIVE_LABEL, click_map, paint_bounds, shape_map, to_layer_coords

if TYPE_CHECKING:  # pragma: no cover
    import napari

log = logging.getLogger(__name__)

#: colour of negative (background) strokes in the Shapes and Points scribble layers
NEGATIVE_COLOR = "#ff3030"
MAX_OBJECTS = NEGATIVE_LABEL - 1
_EMPTY_MARK = "  [empty: "  # object list: frames where the object has no mask
_STROKE_STAYS = (
    "IPNet: the deleted stroke's effect stays: its round is already propagated, or was "
    "undone or redone since. Undo (Ctrl+Z on the labels) takes back whole rounds; or "
    "scribble a correction."
)
STROKE_FEATURE = "stroke"  # feature of the Shapes / Points scribble layers: a stroke's id
ROLE_KEY = "napari_ipnet_role"  # layer.metadata key marking the layers the widget made
SOURCE_KEY = "napari_ipnet_source"
AXIS_KEY = "napari_ipnet_axis"  # output layers: the propagation axis whose results they hold

#: (napari key, Qt key sequence, action, description). None of these clashes with
#: napari's default viewer or layer shortcuts (napari 0.9: plain digits switch layer
#: modes, Alt+F/V/L/P/W/H/D open menus, Alt+S/C/T take screenshots / debug).
SHORTCUTS: list[tuple[str, str, str, str]] = [
    ("Shift-Enter", "Shift+Return", "propagate", "propagate the current round through the stack"),
    ("Shift-Escape", "Shift+Escape", "cancel", "cancel the running propagation (keeps finished frames)"),
    ("Alt-A", "Alt+A", "add_object", "add a new object and select it"),
    ("Alt-N", "Alt+N", "toggle_negative", "toggle negative (background) strokes"),
    ("Alt-Z", "Alt+Z", "undo", "undo the last IPNet result in the output Labels layer"),
] + [
    (f"Alt-{k}", f"Alt+{k}", f"select_{k}", f"select object {k}") for k in range(1, 10)
]

MODEL_CHOICES = [
    ("default", "Bundled default (EfficientNet-Lite0)"),
    ("ipnet-paper", "Original IPNet (ResNet-50, non-commercial)"),
    ("file", "Checkpoint file..."),
]
DEVICE_CHOICES = ["auto", "cuda", "mps", "cpu"]

PAPER_LICENSE_TEXT = (
    "The original IPNet weights (Oh et al., CVPR 2019) are distributed under the "
    "Creative Commons BY-NC-SA 4.0 licence: non-commercial use only, with attribution, "
    "and derived works under the same licence.\n\n"
    "Accept this licence and download them now into the napari-ipnet cache folder?"
)


def _license_text() -> str:
    try:
        from ..fetch import LICENSE_NOTICE
    except ImportError:
        return PAPER_LICENSE_TEXT
    return LICENSE_NOTICE.replace("=" * 72, "").strip() + "\n\nAccept this licence and download them now?"


def shortcut_help() -> str:
    """The shortcut list as text (tooltips, README)."""
    seen = []
    for key, _q, action, desc in SHORTCUTS:
        if action.startswith("select_") and action != "select_1":
            continue
        if action == "select_1":
            seen.append("Alt+1 ... Alt+9: select object 1 to 9")
        else:
            seen.append(f"{key.replace('-', '+')}: {desc}")
    return "\n".join(seen)


THREADS_ENV = "NAPARI_IPNET_THREADS"
ENDING_TOOLTIP = (
    "Objects may end inside the sequence, as nuclei do within a z-stack: propagation may "
    "then leave a frame empty. Off for time-lapses and videos, where a dim or blurred "
    "object is still there. On by default along an axis named (or guessed) z, depth, "
    "plane, slice or focal...; off along time and unknown axes. The bundled model has a "
    "propagation network for each case; takes effect at the next propagation."
)


def cpu_threads_for_gui() -> int:
    """torch CPU threads while napari runs: one core is left to the Qt main thread.

    With as many torch threads as cores, each network call stalls whenever the GUI
    (or any other process) takes a core: on a 2-core machine we measured the same
    interaction call at 0.11 s with one thread and 0.3-3.8 s with two. Override with
    the environment variable ``NAPARI_IPNET_THREADS``.
    """
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, n - 1)


def _short(err: BaseException) -> str:
    msg = str(err).strip() or type(err).__name__
    return msg


def _is_oom(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return "out of memory" in text or "outofmemory" in text


@dataclass(eq=False)
class _Stroke:
    """One stroke of a round not yet propagated, as the network received it."""

    layer: Any  # weakref.ref to its Shapes / Points layer; None for brush paint
    stroke_id: int  # its value in the layer's ``stroke`` feature (-1 for brush paint)
    object_id: int
    positive: bool
    mask: np.ndarray

    def present(self) -> bool:
        """Whether the stroke is still in its layer (brush paint cannot be deleted)."""
        if self.layer is None:
            return True
        layer = self.layer()
        if layer is None or STROKE_FEATURE not in layer.features:
            return False
        return bool((np.asarray(layer.features[STROKE_FEATURE]) == self.stroke_id).any())


@dataclass(eq=False)
class _Round:
    """The strokes of a session's open round (drawn, not yet propagated).

    ``steps`` holds the strokes of each interaction of the round in order: taking a
    stroke back replays the round without it, step by step, so the frame ends up as if
    the stroke had never been drawn.
    """

    frame: int
    before: Any  # SessionSnapshot from before its first stroke; None: not known
    steps: list[list[_Stroke]] = field(default_factory=list)

    @property
    def strokes(self) -> list[_Stroke]:
        return [st for step in self.steps for st in step]


@dataclass
class _Record:
    """One session: an image layer, a sequence spec, and the engine."""

    layer: Any
    spec: SequenceSpec
    session: Any
    frames: FrameView
    round: _Round | None = None  # the open round's strokes, to take deleted ones back
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


@dataclass
class _Job:
    kind: str  # "interact" | "propagate" | "withdraw"
    record: _Record | None = None
    frame: int | None = None
    items: list = field(default_factory=list)  # interact: [(object_id, pos, neg), ...]
    strokes: list = field(default_factory=list)  # interact: the _Strokes behind ``items``
    image: Any = None  # interact: the record is made when the job runs (after the model loads)
    spec: SequenceSpec | None = None
    before: Any = None  # SessionSnapshot taken when the job starts (for undo)
    tracked: list = field(default_factory=list)  # propagate: objects on the round's frame
    vanished: dict = field(default_factory=dict)  # propagate: object -> frames left empty
    refused: Refusals = field(default_factory=Refusals)  # pixels the output layer kept
    t_submit: float = field(default_factory=time.perf_counter)


@dataclass(eq=False)
class _UndoStep:
    """One IPNet write in an output layer's undo history, with the engine states around it.

    napari keeps each history item as a list of atoms and, on undo / redo, moves a
    reversed copy of the list between its undo and redo stacks: the atoms themselves
    keep their identity, so the item is found again by its first and last atom.
    """

    layer: Any  # weakref.ref to the Labels layer
    head: Any  # first and last atom of the history item
    tail: Any
    record: _Record
    before: Any  # SessionSnapshot before the write
    after: Any  # SessionSnapshot after it
    undone: bool = False


def _merge_strokes(strokes: list[_Stroke]) -> list[tuple[int, np.ndarray | None, np.ndarray | None]]:
    """``(object_id, positive map, negative map)`` per object, as one interaction takes them."""
    per_obj: dict[int, list] = {}
    for st in strokes:
        entry = per_obj.setdefault(st.object_id, [None, None])
        slot = 0 if st.positive else 1
        entry[slot] = st.mask if entry[slot] is None else entry[slot] | st.mask
    return [(k, pos, neg) for k, (pos, neg) in sorted(per_obj.items())]


def _history_hook(widget_ref, layer_ref, base, name: str):
    """``layer.undo`` / ``layer.redo`` replacement that keeps the IPNet sessions in step."""

    def hook(*args, **kwargs):
        widget, layer = widget_ref(), layer_ref()
        if widget is not None and layer is not None and not widget._history_may_change(layer):
            return None
        result = base(*args, **kwargs)
        if widget is not None and layer is not None:
            widget._sync_engine(layer, name)
        return result

    hook._ipnet_hook = widget_ref
    return hook


def _remove_history_hooks(hooked: list, widget_ref) -> None:
    """Give the hooked layers back their own undo / redo (where ours is the outermost)."""
    for ref in hooked:
        layer = ref()
        if layer is None:
            continue
        for name in ("undo", "redo"):
            if getattr(layer.__dict__.get(name), "_ipnet_hook", None) is widget_ref:
                del layer.__dict__[name]
    hooked.clear()


def _restore(session, snapshot) -> None:
    """``session.restore(snapshot)``, its references then put on the model's device.

    A snapshot taken before a device change holds tensors on the old device.
    """
    session.restore(snapshot)
    session.to_device(session.model.device)


class _Failure:
    """An exception caught in a worker thread, handed to the main thread as a value.

    superqt drops RuntimeErrors raised inside generator workers (torch errors, CUDA
    out-of-memory) without emitting ``errored`` or ``finished``; catching everything
    in the thread and returning it keeps the job queue and the notifications reliable.
    """

    def __init__(self, err: BaseException) -> None:
        self.err = err


def _guarded(fn):
    def work():
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - reported in the main thread
            return _Failure(err)

    return work


def _guarded_gen(genfn):
    def work():
        try:
            yield from genfn()
        except Exception as err:  # noqa: BLE001 - reported in the main thread
            return _Failure(err)

    return work


def _relay_warning(args: tuple) -> None:
    """Report a warning caught in a worker thread (superqt's ``warned`` signal).

    superqt catches the warnings of its workers and emits them with ``warned``; napari
    0.9 does not show them, so a deprecation met in a worker went unseen. FutureWarnings
    (the deprecations meant for users) become napari warning notifications, as in the
    main thread; other warnings go to the log, once per place (superqt shows every one).
    """
    message, category, filename, lineno = args[:4]
    if isinstance(category, type) and issubclass(category, FutureWarning):
        from napari.utils.notifications import notification_manager

        notification_manager.receive_warning(*args)  # shown once per place
        return
    where = (category, str(filename), lineno)
    if where not in _LOGGED_WARNINGS:
        _LOGGED_WARNINGS.add(where)
        log.warning("%s:%s: %s: %s", filename, lineno, getattr(category, "__name__", category), message)


_LOGGED_WARNINGS: set[tuple] = set()  # (category, file, line) of worker warnings logged


def _make_worker(fn, generator: bool = False):
    """A napari worker running ``fn`` (a generator function if ``generator``), not started.

    Exceptions come back as :class:`_Failure` values, warnings through :func:`_relay_warning`.
    """
    work = _guarded_gen(fn) if generator else _guarded(fn)
    worker = create_worker(work, _start_thread=False, _ignore_errors=True)
    worker.warned.connect(_relay_warning)
    return worker


class _CancelProgress(cancelable_progress):
    """A napari progress bar whose Cancel button calls back at once."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class IPNetWidget(QWidget):
    """Dock widget: interactive video object segmentation with IPNet.

    Programmatic use (tests, scripts)::

        w = IPNetWidget(viewer)
        w.set_model(model)               # or let it load the selected weights
        w.set_image_layer(layer); w.set_axis(0)
        shapes = w.scribble_layer()      # draw paths on it: each one runs the network
        w.propagate()                    # worker thread; results appear frame by frame
    """

    interaction_done = Signal(int)  # frame
    frame_done = Signal(int)  # frame written during propagation
    propagation_finished = Signal(object, bool)  # frames, cancelled
    busy_changed = Signal(bool)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.model = None
        self.model_label_text = "not loaded"
        self._model_source: str | None = None  # checkpoint path when "file"
        self._records: dict[tuple[int, SequenceSpec], _Record] = {}
        self._active: _Record | None = None  # record of the last interaction
        self._objects: dict[int, str] = {1: "object 1"}
        self._removed_names: dict[int, str] = {}  # objects undone away, for a redo
        self._view_fitted = False  # the view is reset once, when the docked widget first shows
        self._current = 1
        self._negative = False
        self._jobs: deque[_Job] = deque()
        self._worker = None
        self._job: _Job | None = None
        self._loading = False
        self._pending_device = None  # torch.device to move the model to once no job runs
        self._cancel_event: threading.Event | None = None
        self._recorder: RoundRecorder | None = None
        self._pbar = None
        self._round_target = None  # output layer of the running round
        self._seen_count: dict[int, int] = {}  # id(shapes/points layer) -> items processed
        self._next_stroke_id = 0
        self._clearing_strokes = False  # strokes removed by a reset: nothing to take back
        self._brush_seen: dict[tuple[int, tuple], np.ndarray] = {}
        self._pending_paint: dict[int, tuple[Any, set]] = {}
        self._paint_scheduled = False
        self._links: dict[int, Any] = {}  # id(scribble layer) -> image layer
        self._connected: list[tuple[Any, Any]] = []  # (emitter, callback) to disconnect
        self._bound_keys: list[tuple[str, Any]] = []
        self._t_propagate: float | None = None
        self.last_propagation_seconds: float | None = None
        self.last_round_frames: list[int] = []
        self._output: Labels | None = None
        self._explicit_output = False  # the user chose the output (kept across axis changes)
        self._ending_default: bool | None = None  # "objects may end" default of the axis
        self._tiff_names: dict[str, list] = {}  # source TIFF path -> axis names
        self._updating = False
        self._last_image = None
        # engine snapshots aligned with the output layers' undo history (see _sync_engine)
        self._undo_steps: list[_UndoStep] = []
        self._hooked: list[Any] = []  # weakrefs to the layers whose undo / redo is hooked
        self._self_ref = weakref.ref(self)

        self._build_ui()
        self._connect_viewer()
        self._bind_keys()
        self._refresh_layers()
        self._refresh_objects()
        self._update_buttons()

    # ================================================================== UI
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Fit the image to the canvas once docking has narrowed it (else its right edge is cut off)."""
        super().showEvent(event)
        if not self._view_fitted:
            self._view_fitted = True
            QTimer.singleShot(0, self._fit_view)

    def _fit_view(self) -> None:
        """``viewer.reset_view()``, unless the viewer is gone or holds no layers."""
        try:
            if len(self.viewer.layers):
                self.viewer.reset_view()
        except (RuntimeError, AttributeError):  # viewer or widget already closed
            pass

    def _build_ui(self) -> None:
        keys = {action: key.replace("-", "+") for key, _q, action, _d in SHORTCUTS}
        lay = QVBoxLayout(self)

        box = QGroupBox("Sequence")
        form = QFormLayout(box)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip(
            "Image layer to segment: 2D+t grayscale, RGB video, or a stack with several "
            "leading axes (e.g. T, Z, Y, X). A multichannel image opened with one layer per "
            "channel: pick the channel's layer."
        )
        self.axis_combo = QComboBox()
        self.axis_combo.setToolTip(
            "Axis to propagate along (time, or z to segment through a volume). The other "
            "leading axes stay fixed at the viewer position where you scribble."
        )
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("RGB(A) images: use the colour image, or one channel")
        self.output_combo = QComboBox()
        self.output_combo.setToolTip(
            "Labels layer receiving the results: by default one per image and propagation "
            "axis ('<image> IPNet masks (t)', '(z)'), so results along t and along z never "
            "collide; 'new layer' starts another one (to redo an axis). Labels already in it "
            "are kept: only background and the objects IPNet manages are written, and pixels "
            "that cannot be written are reported."
        )
        self.ending_check = QCheckBox("Objects may end along this axis")
        self.ending_check.setToolTip(ENDING_TOOLTIP)
        self.sequence_label = QLabel("")
        self.sequence_label.setWordWrap(True)
        form.addRow("Image", self.image_combo)
        form.addRow("Propagate along", self.axis_combo)
        form.addRow("", self.ending_check)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Output", self.output_combo)
        form.addRow(self.sequence_label)
        lay.addWidget(box)

        box = QGroupBox("Scribbles")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.freehand_btn = QPushButton("Freehand")
        self.freehand_btn.setToolTip(
            "Shapes layer in freehand path mode: each stroke you release runs IPNet on its "
            "frame. Polygons, rectangles and ellipses are filled."
        )
        self.brush_btn = QPushButton("Brush")
        self.brush_btn.setToolTip(
            f"Labels layer painted with the brush: label k scribbles object k, label "
            f"{NEGATIVE_LABEL} is background (negative). Each finished stroke runs IPNet."
        )
        self.clicks_btn = QPushButton("Clicks")
        self.clicks_btn.setToolTip("Points layer: each click is a small disk scribble")
        for b in (self.freehand_btn, self.brush_btn, self.clicks_btn):
            row.addWidget(b)
        v.addLayout(row)
        self.negative_check = QCheckBox(f"Negative (background) strokes  [{keys['toggle_negative']}]")
        self.negative_check.setToolTip(
            f"Strokes mark background for the selected object (drawn in red). Toggle: {keys['toggle_negative']}"
        )
        v.addWidget(self.negative_check)
        lay.addWidget(box)

        box = QGroupBox("Objects")
        v = QVBoxLayout(box)
        self.object_list = ObjectList()
        self.object_list.setToolTip(
            "Objects (label values of the output layer, colours from it). Select with "
            "Alt+1..Alt+9 or a click; double-click to rename."
        )
        v.addWidget(self.object_list)
        row = QHBoxLayout()
        self.add_btn = QPushButton("Add")
        self.add_btn.setToolTip(f"Add an object [{keys['add_object']}]")
        self.reset_btn = QPushButton("Reset object")
        self.reset_btn.setToolTip("Forget the selected object: its results, strokes and memory")
        self.reset_all_btn = QPushButton("Reset all")
        self.reset_all_btn.setToolTip("Forget every object IPNet manages (other labels are kept)")
        for b in (self.add_btn, self.reset_btn, self.reset_all_btn):
            row.addWidget(b)
        v.addLayout(row)
        lay.addWidget(box)

        box = QGroupBox("Run")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.propagate_btn = QPushButton(f"Propagate  [{keys['propagate']}]")
        self.propagate_btn.setToolTip(
            "Carry the masks of the last scribbled frame through the stack, in a background "
            f"thread, frame by frame [{keys['propagate']}]"
        )
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip(f"Stop propagating; finished frames are kept [{keys['cancel']}]")
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.setToolTip(
            f"Undo the last result in the output layer [{keys['undo']}; Ctrl+Z with the output "
            "layer selected]. IPNet's memory of that interaction or round is undone with it "
            "(Ctrl+Shift+Z on the layer redoes both)."
        )
        for b in (self.propagate_btn, self.cancel_btn, self.undo_btn):
            row.addWidget(b)
        v.addLayout(row)
        self.status_label = QLabel("Scribble on a frame to start.")
        self.status_label.setWordWrap(True)
        v.addWidget(self.status_label)
        lay.addWidget(box)

        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        for key, text in MODEL_CHOICES:
            self.model_combo.addItem(text, key)
        self.model_combo.setToolTip(
            "Bundled default weights, the original IPNet weights (downloaded once, "
            "non-commercial licence), or a checkpoint file (.safetensors, .pt, .pth)"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_combo.setToolTip("auto: CUDA GPU, then Apple MPS, then the CPU")
        self.load_btn = QPushButton("Load")
        self.model_status = QLabel("Model: not loaded")
        self.model_status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(self.load_btn)
        form.addRow("Weights", self.model_combo)
        form.addRow("Device", row)
        form.addRow(self.model_status)
        lay.addWidget(box)

        help_label = QLabel("Shortcuts: hover for details")
        help_label.setToolTip(shortcut_help())
        lay.addWidget(help_label)
        lay.addStretch(1)
        self.setToolTip("IPNet interactive segmentation\n" + shortcut_help())

        # signals
        self.image_combo.currentIndexChanged.connect(self._on_image_changed)
        self.axis_combo.currentIndexChanged.connect(self._update_sequence_label)
        self.axis_combo.currentIndexChanged.connect(self._on_axis_changed)
        self.ending_check.toggled.connect(self._on_ending_toggled)
        self.channel_combo.currentIndexChanged.connect(self._update_sequence_label)
        self.output_combo.currentIndexChanged.connect(self._on_output_changed)
        self.freehand_btn.clicked.connect(lambda: self.activate_scribbles("shapes"))
        self.brush_btn.clicked.connect(lambda: self.activate_scribbles("brush"))
        self.clicks_btn.clicked.connect(lambda: self.activate_scribbles("clicks"))
        self.negative_check.toggled.connect(self.set_negative)
        self.object_list.currentRowChanged.connect(self._on_object_row)
        self.object_list.itemChanged.connect(self._on_object_renamed)
        self.add_btn.clicked.connect(lambda: self.add_object())
        self.reset_btn.clicked.connect(lambda: self.reset_object(self._current))
        self.reset_all_btn.clicked.connect(lambda: self.reset_all())
        self.propagate_btn.clicked.connect(lambda: self.propagate())
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        self.undo_btn.clicked.connect(lambda: self.undo())
        self.load_btn.clicked.connect(lambda: self.load_model())
        self.model_combo.currentIndexChanged.connect(self._on_model_choice)
        self.device_combo.currentIndexChanged.connect(self._on_device_changed)

        # the same shortcuts while the widget itself has the keyboard focus
        for _k, qkey, action, _d in SHORTCUTS:
            sc = QShortcut(QKeySequence(qkey), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(self._action(action))

    def _action(self, action: str):
        ref = weakref.ref(self)

        def run(*_args):
            w = ref()
            if w is None:
                return
            if action.startswith("select_"):
                w.select_object(int(action.split("_")[1]))
            elif action == "toggle_negative":
                w.set_negative(not w._negative)
            else:
                getattr(w, action)()

        return run

    def _bind_keys(self) -> None:
        for key, _q, action, _d in SHORTCUTS:
            func = self._action(action)

            def handler(viewer, _f=func):
                _f()

            previous = self.viewer.bind_key(key, handler, overwrite=True)
            self._bound_keys.append((key, previous))

    def _unbind_keys(self) -> None:
        for key, previous in self._bound_keys:
            try:
                self.viewer.bind_key(key, previous, overwrite=True)
            except Exception:  # noqa: BLE001 - viewer already closing
                pass
        self._bound_keys.clear()

    def _connect(self, emitter, callback) -> None:
        emitter.connect(callback)
        self._connected.append((emitter, callback))

    def _connect_viewer(self) -> None:
        ev = self.viewer.layers.events
        self._connect(ev.inserted, self._on_layer_inserted)
        self._connect(ev.removed, self._on_layer_removed)
        self._connect(ev.moved, self._on_layer_renamed)
        self._connect(self.viewer.dims.events.current_step, self._update_sequence_label)
        self._connect(self.viewer.dims.events.axis_labels, self._on_axis_labels_changed)
        for layer in self.viewer.layers:
            self._watch_layer(layer)
        self.destroyed.connect(
            _make_cleanup(weakref.ref(self.viewer), self._connected, self._bound_keys, self._hooked, self._self_ref)
        )

    def close(self) -> bool:  # noqa: D102
        self.cleanup()
        return super().close()

    def cleanup(self) -> None:
        """Cancel work, unbind shortcuts, disconnect from the viewer."""
        if self._cancel_event is not None:
            self._cancel_event.set()
        self._jobs.clear()
        self._unbind_keys()
        _remove_history_hooks(self._hooked, self._self_ref)
        self._undo_steps.clear()
        for emitter, cb in self._connected:
            try:
                emitter.disconnect(cb)
            except Exception:  # noqa: BLE001
                pass
        self._connected.clear()

    # ================================================================== layers
    def _watch_layer(self, layer) -> None:
        self._connect(layer.events.name, self._on_layer_renamed)
        if isinstance(layer, Image) and hasattr(layer.events, "axis_labels"):
            self._connect(layer.events.axis_labels, self._on_axis_labels_changed)
        role = layer.metadata.get(ROLE_KEY) if isinstance(layer.metadata, dict) else None
        if role in ("scribbles", "clicks", "brush") and id(layer) not in self._links:
            source = layer.metadata.get(SOURCE_KEY)
            image = next((x for x in self.viewer.layers if isinstance(x, Image) and x.name == source), None)
            if image is not None:
                self._link_scribble_layer(layer, image)

    def _on_layer_renamed(self, event=None) -> None:
        self._refresh_layers()

    def _on_layer_inserted(self, event) -> None:
        self._watch_layer(event.value)
        self._refresh_layers()

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        for emitter, cb in list(self._connected):
            if getattr(emitter, "source", None) is layer:
                try:
                    emitter.disconnect(cb)
                except Exception:  # noqa: BLE001
                    pass
                self._connected.remove((emitter, cb))
        self._links.pop(id(layer), None)
        self._seen_count.pop(id(layer), None)
        for key in [k for k in self._brush_seen if k[0] == id(layer)]:
            del self._brush_seen[key]
        job = self._job
        running = job is not None and job.kind == "propagate" and job.record is not None
        if running and (job.record.layer is layer or layer is self._round_target):
            what = "image" if job.record.layer is layer else "output"
            show_warning(
                f"IPNet: the {what} layer {layer.name!r} was removed while propagating; "
                "propagation cancelled (frames already finished are kept in the session)."
            )
            self.cancel()
        if layer is self._output:
            self._output = None
        self._undo_steps = [s for s in self._undo_steps if s.layer() is not layer]
        # forget sessions of a removed image (once no job uses them)
        for key, rec in list(self._records.items()):
            if rec.layer is layer and not (job is not None and job.record is rec):
                del self._records[key]
                if self._active is rec:
                    self._active = None
        self._jobs = deque(
            j for j in self._jobs
            if j.image is not layer and (j.record is None or j.record.layer is not layer)
        )
        self._refresh_layers()

    def _image_layers(self) -> list:
        return [x for x in self.viewer.layers if isinstance(x, Image) and x.metadata.get(ROLE_KEY) is None]

    def _refresh_layers(self) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            current = self.image_layer
            images = self._image_layers()
            self.image_combo.clear()
            for layer in images:
                self.image_combo.addItem(layer.name)
            if current in images:
                self.image_combo.setCurrentIndex(images.index(current))
            elif images:
                self.image_combo.setCurrentIndex(0)
        finally:
            self._updating = False
        self._on_image_changed()

    @property
    def image_layer(self):
        """The image layer chosen in the widget (None if there is none)."""
        name = self.image_combo.currentText()
        return next((x for x in self._image_layers() if x.name == name), None) if name else None

    def set_image_layer(self, layer) -> None:
        names = [self.image_combo.itemText(i) for i in range(self.image_combo.count())]
        if layer.name not in names:
            self._refresh_layers()
            names = [self.image_combo.itemText(i) for i in range(self.image_combo.count())]
        self.image_combo.setCurrentIndex(names.index(layer.name))

    def _on_image_changed(self, *_args) -> None:
        if self._updating:
            return
        layer = self.image_layer
        if layer is not None and layer is self._last_image and self.axis_combo.count():
            self._refresh_outputs()  # same image: keep the user's axis and channel
            self._update_sequence_label()
            return
        self._updating = True
        self._explicit_output = False  # another image: its own output layers
        try:
            prev_axis = self.axis_combo.currentData()
            self.axis_combo.clear()
            self.channel_combo.clear()
            if layer is not None:
                for ax, text, tip in self._axis_entries(layer):
                    self.axis_combo.addItem(text, ax)
                    self.axis_combo.setItemData(ax, tip, Qt.ItemDataRole.ToolTipRole)
                if prev_axis is not None and prev_axis < self.axis_combo.count():
                    self.axis_combo.setCurrentIndex(prev_axis)
                if getattr(layer, "rgb", False):
                    n_ch = int(layer_data(layer).shape[-1])
                    self.channel_combo.addItem("colour (RGB)", -1)
                    for c, name in zip(range(n_ch), "RGBA"):
                        self.channel_combo.addItem(name, c)
            self.channel_combo.setEnabled(self.channel_combo.count() > 0)
            self._refresh_outputs()
        finally:
            self._updating = False
        self._update_sequence_label()
        if layer is not None and layer is not self._last_image:
            try:
                check_layer(layer)
            except UnsupportedLayerError as err:
                show_warning(f"IPNet: {err}")
        self._last_image = layer

    def _axis_names(self, layer) -> list[str | None]:
        """Names of the layer's axes, None where nothing names them.

        In order: the viewer's axis labels (what the user sees and may rename), the
        layer's own ``axis_labels`` (set by our TIFF reader from ImageJ / OME metadata),
        the axes stored in the TIFF the layer was opened from; napari's numeric
        defaults ("-3") name nothing.
        """
        n = len(spatial_shape(layer))
        viewer = [str(x) for x in list(self.viewer.dims.axis_labels)[-n:]]
        own = [str(x) for x in getattr(layer, "axis_labels", ())]
        sources = [viewer, own, self._source_axis_names(layer, n)]
        out: list[str | None] = []
        for i in range(n):
            out.append(next((c[i] for c in sources if len(c) == n and is_named(c[i])), None))
        return out

    def _source_axis_names(self, layer, n: int) -> list:
        """Axis names stored in the TIFF file the layer was read from ([] if none)."""
        path = getattr(getattr(layer, "source", None), "path", None)
        if not path or not str(path).lower().endswith((".tif", ".tiff")):
            return []
        key = str(path)
        if key not in self._tiff_names:
            axes = tiff_axes(key) or ""
            if getattr(layer, "rgb", False) and axes.endswith("S"):
                axes = axes[:-1]
            self._tiff_names[key] = [a if a else "" for a in tiff_axis_labels(axes)]
        names = self._tiff_names[key]
        return names if len(names) == n else []

    def _axis_labels(self, layer) -> list[str]:
        """Names of the layer's axes, "axis i" where nothing names them."""
        return [nm if nm is not None else f"axis {i}" for i, nm in enumerate(self._axis_names(layer))]

    def _axis_kinds(self, layer) -> list[tuple[str | None, bool]]:
        """(kind, guessed) of each leading axis: ``("z", False)`` for an axis named z,
        ``("t", True)`` for an unnamed axis guessed to be time, ``(None, False)``."""
        names = self._axis_names(layer)
        shape = spatial_shape(layer)
        lead = max(0, len(shape) - 2)
        guesses = guess_axis_kinds(shape[:lead], names[:lead])
        return [
            (axis_kind(names[ax]), False) if names[ax] is not None else (guesses[ax], guesses[ax] is not None)
            for ax in range(lead)
        ]

    def _axis_entries(self, layer) -> list[tuple[int, str, str]]:
        """(axis, list text, tooltip) of each leading axis of ``layer``."""
        names = self._axis_names(layer)
        shape = spatial_shape(layer)
        out = []
        for ax, (kind, guessed) in enumerate(self._axis_kinds(layer)):
            text = axis_entry(ax, names[ax], shape[ax], kind if guessed else None)
            if guessed:
                tip = (
                    f"Axis {ax} has no name: guessed {'z' if kind == 'z' else 'time'} from its length "
                    "and place. "
                    "Name the viewer's axes (double-click a slider's label) or open a TIFF with "
                    "ImageJ / OME axes to be sure."
                )
            elif names[ax] is None:
                tip = f"Axis {ax} has no name: name the viewer's axes (double-click a slider's label)."
            else:
                tip = f"Axis {ax}, named {names[ax]!r}."
            out.append((ax, text, tip))
        return out

    def _on_axis_labels_changed(self, *_args) -> None:
        """The viewer's (or a layer's) axis labels changed: rename the axis list, keep the choice."""
        layer = self.image_layer
        if layer is None or self._updating:
            return
        entries = self._axis_entries(layer)
        if len(entries) != self.axis_combo.count():
            self._last_image = None  # the layer changed shape: rebuild the list
            self._on_image_changed()
            return
        for i, (ax, text, tip) in enumerate(entries):
            self.axis_combo.setItemText(i, text)
            self.axis_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self._apply_ending_default(keep_override=True)
        self._update_sequence_label()

    @property
    def axis(self) -> int:
        ax = self.axis_combo.currentData()
        return int(ax) if ax is not None else 0

    def set_axis(self, axis: int) -> None:
        idx = self.axis_combo.findData(int(axis))
        if idx < 0:
            raise ValueError(f"axis {axis} is not a leading axis of the selected layer")
        self.axis_combo.setCurrentIndex(idx)

    @property
    def channel(self) -> int | None:
        """Colour channel used from an RGB layer (None: the colour image)."""
        c = self.channel_combo.currentData() if self.channel_combo.count() else None
        return None if c is None or c < 0 else int(c)

    def set_channel(self, channel: int | None) -> None:
        idx = self.channel_combo.findData(-1 if channel is None else int(channel))
        if idx < 0:
            raise ValueError(f"channel {channel} is not available for the selected layer")
        self.channel_combo.setCurrentIndex(idx)

    def _viewer_position(self, layer) -> np.ndarray:
        return np.asarray(layer.world_to_data(self.viewer.dims.point))

    @property
    def objects_may_end(self) -> bool:
        """Whether new sessions let objects end along the axis (see ``Session``)."""
        return self.ending_check.isChecked()

    def _on_axis_changed(self, *_args) -> None:
        """Another axis: its "objects may end" default, and its own output layer."""
        self._explicit_output = False
        self._apply_ending_default()
        self._refresh_outputs()

    def axis_may_end_default(self, layer=None, axis: int | None = None) -> bool:
        """Default of "objects may end" along ``axis`` (:func:`napari_ipnet.axes.objects_may_end_default`
        of its name, or of the guess for an unnamed axis)."""
        layer = layer if layer is not None else self.image_layer
        axis = self.axis if axis is None else int(axis)
        if layer is None:
            return False
        names = self._axis_names(layer)
        kinds = self._axis_kinds(layer)
        if axis >= len(kinds):
            return False
        name = names[axis] if names[axis] is not None else kinds[axis][0]
        return objects_may_end_default(name)

    def _apply_ending_default(self, keep_override: bool = False) -> None:
        """Set "objects may end" to the axis' default; with ``keep_override`` only where
        the user left the previous default as it was."""
        layer = self.image_layer
        if layer is None or self.axis_combo.currentData() is None:
            return
        default = self.axis_may_end_default(layer)
        previous = self._ending_default
        if keep_override and previous is not None and self.ending_check.isChecked() != previous:
            self._ending_default = default
            return  # the user chose: keep it
        self._ending_default = default
        self.ending_check.setChecked(default)

    def _on_ending_toggled(self, checked: bool) -> None:
        # takes effect at the next propagation of the sessions along this axis
        layer = self.image_layer
        for rec in self._records.values():
            if rec.layer is layer and rec.spec.axis == self.axis:
                rec.session.objects_may_end = bool(checked)

    def _update_sequence_label(self, *_args) -> None:
        layer = self.image_layer
        if layer is None:
            self.sequence_label.setText("Open an image sequence (video, time-lapse, z-stack).")
            return
        try:
            spec = make_spec(layer, self.axis, self._viewer_position(layer), self.channel)
        except UnsupportedLayerError as err:
            self.sequence_label.setText(f"Not a sequence: {err}")
            return
        n = spatial_shape(layer)[self.axis]
        self.sequence_label.setText(f"{n} frames {spec.describe(self._axis_labels(layer))}")

    # ------------------------------------------------------------------ output layer
    def _matching_labels(self, image) -> list:
        if image is None:
            return []
        shape = spatial_shape(image)
        return [
            x for x in self.viewer.layers
            if isinstance(x, Labels) and tuple(x.data.shape) == shape and x.metadata.get(ROLE_KEY) != "brush"
        ]

    @staticmethod
    def _output_axis(layer) -> int | None:
        """The axis an IPNet output layer holds results of (None: any, or not an IPNet output)."""
        ax = layer.metadata.get(AXIS_KEY) if isinstance(layer.metadata, dict) else None
        return int(ax) if ax is not None else None

    def _fits(self, layer, image, axis: int) -> bool:
        """Whether ``layer`` is a fitting output for ``image`` along ``axis`` without being chosen.

        Labels layers of the user's always fit; an IPNet output layer only for its
        own image and axis (results along t and along z never share a layer unless the
        user chooses so).
        """
        if layer.metadata.get(ROLE_KEY) != "output":
            return True
        source = layer.metadata.get(SOURCE_KEY)
        own = self._output_axis(layer)
        return image is not None and source == image.name and own in (None, int(axis))

    def _linked_output(self, image, axis: int):
        """The IPNet output layer made for ``image`` along ``axis`` (None if there is none)."""
        linked = [
            x for x in self._matching_labels(image)
            if x.metadata.get(ROLE_KEY) == "output" and x.metadata.get(SOURCE_KEY) == image.name
            and self._output_axis(x) in (None, int(axis))
        ]
        linked.sort(key=lambda x: self._output_axis(x) is None)  # this axis' own first
        return linked[0] if linked else None

    def _refresh_outputs(self) -> None:
        image = self.image_layer
        current = self._output
        self.output_combo.blockSignals(True)
        self.output_combo.clear()
        self.output_combo.addItem("new layer", None)
        matches = self._matching_labels(image)
        for x in matches:
            self.output_combo.addItem(x.name, x.name)
        axis = self.axis
        if current is not None and current in matches and (self._explicit_output or self._fits(current, image, axis)):
            self.output_combo.setCurrentIndex(matches.index(current) + 1)
        elif current is None and self._explicit_output:
            self.output_combo.setCurrentIndex(0)  # the user asked for a new layer
        else:
            self._output = self._linked_output(image, axis) if image is not None else None
            self._explicit_output = False
            if self._output is not None:
                self.output_combo.setCurrentIndex(matches.index(self._output) + 1)
        self.output_combo.blockSignals(False)
        self._refresh_objects()

    def _on_output_changed(self, *_args) -> None:
        name = self.output_combo.currentData()
        self._output = next((x for x in self.viewer.layers if isinstance(x, Labels) and x.name == name), None)
        self._explicit_output = True
        self._refresh_objects()

    @property
    def output_layer(self):
        """The output Labels layer (None until created or chosen)."""
        if self._output is not None and self._output not in self.viewer.layers:
            self._output = None
        return self._output

    def set_output_layer(self, layer) -> None:
        """Write the results of the selected image and axis into ``layer`` (None: a new layer)."""
        if layer is None:
            self._output = None
            self._explicit_output = True
            self._refresh_outputs()
            return
        self._refresh_outputs()
        idx = self.output_combo.findData(layer.name)
        if idx < 0:
            raise ValueError(f"{layer.name!r} does not have the spatial shape of the image layer")
        self.output_combo.setCurrentIndex(idx)
        self._output = layer
        self._explicit_output = True
        self._refresh_objects()

    def output_name(self, image, axis: int) -> str:
        """Name of a new output layer: ``"<image> IPNet masks (t)"`` (the axis name only
        when the image has several axes to propagate along)."""
        shape = spatial_shape(image)
        if len(shape) <= 3:
            return f"{image.name} IPNet masks"
        return f"{image.name} IPNet masks ({self._axis_labels(image)[axis]})"

    def ensure_output(self, image=None, axis: int | None = None):
        """The output Labels layer for ``image`` along ``axis`` (the selected ones by default).

        For the selected image and axis: the output chosen in the widget, else the
        output layer made for them, else a new one. For another image or axis (a round
        propagated after the choice changed): the layer its results went to, else its
        own output layer, made if needed; the widget's choice is left alone.
        """
        image = image if image is not None else self.image_layer
        axis = self.axis if axis is None else int(axis)
        shape = spatial_shape(image)
        shown = image is self.image_layer and axis == self.axis
        out = self.output_layer
        if shown and out is not None and tuple(out.data.shape) == shape:
            return out
        if not (shown and self._explicit_output):  # else the user asked for a new layer
            linked = self._linked_output(image, axis)
            if linked is not None:
                if shown:
                    self._output = linked
                    self._refresh_outputs()
                return linked
        active = self.viewer.layers.selection.active
        out = self.viewer.add_labels(
            np.zeros(shape, dtype=np.uint8),
            name=self.output_name(image, axis),
            scale=image.scale,
            translate=image.translate,
            metadata={ROLE_KEY: "output", SOURCE_KEY: image.name, AXIS_KEY: int(axis)},
            colormap=label_colormap(),
        )
        if shown:
            self._output = out
            self._explicit_output = False
        self._refresh_outputs()
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active  # keep the user's layer (e.g. scribbles)
        return out

    def _output_for(self, rec: _Record):
        """The Labels layer a session's results go to now.

        The widget's output choice applies to the sessions of the selected image and
        axis; a session of another one keeps writing where it wrote before (or into
        its own output layer).
        """
        shape = spatial_shape(rec.layer)
        if rec.layer is self.image_layer and rec.spec.axis == self.axis:
            return self.ensure_output(rec.layer, rec.spec.axis)
        for layer in reversed(rec.output_layers()):
            if layer in self.viewer.layers and tuple(layer.data.shape) == shape:
                return layer
        return self.ensure_output(rec.layer, rec.spec.axis)

    # ------------------------------------------------------------------ scribble layers
    def _scribble_layers_for(self, image) -> list:
        return [x for x in self.viewer.layers if self._links.get(id(x)) is image]

    def _find_scribble(self, image, role):
        return next((x for x in self._scribble_layers_for(image) if x.metadata.get(ROLE_KEY) == role), None)

    def _link_scribble_layer(self, layer, image) -> None:
        if id(layer) in self._links:
            return
        self._links[id(layer)] = image
        role = layer.metadata.get(ROLE_KEY)
        if role in ("scribbles", "clicks"):
            self._seen_count[id(layer)] = len(layer.data)
            self._connect(layer.events.data, self._on_scribble_data)
        elif role == "brush":
            self._connect(layer.events.paint, self._on_brush_paint)

    def _scribble_kwargs(self, image) -> dict:
        return dict(scale=image.scale, translate=image.translate, rotate=image.rotate, shear=image.shear)

    def scribble_layer(self, image=None) -> Shapes:
        """The freehand Shapes scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "scribbles")
        if layer is None:
            ndim = len(spatial_shape(image))
            layer = Shapes(
                ndim=ndim,
                name=f"{image.name} scribbles",
                features={"object_id": np.zeros(0, int), "positive": np.zeros(0, bool), STROKE_FEATURE: np.zeros(0, int)},
                edge_width=max(2.0, min(spatial_shape(image)[-2:]) / 100),
                face_color="transparent",
                metadata={ROLE_KEY: "scribbles", SOURCE_KEY: image.name},
                **self._scribble_kwargs(image),
            )
            self.viewer.add_layer(layer)
            self._link_scribble_layer(layer, image)
            self.ensure_output(image)
        self._apply_stroke_style()
        return layer

    def clicks_layer(self, image=None) -> Points:
        """The Points scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "clicks")
        if layer is None:
            from ._strokes import CLICK_RADIUS

            layer = Points(
                ndim=len(spatial_shape(image)),
                name=f"{image.name} clicks",
                features={"object_id": np.zeros(0, int), "positive": np.zeros(0, bool), STROKE_FEATURE: np.zeros(0, int)},
                size=2 * CLICK_RADIUS + 1,
                metadata={ROLE_KEY: "clicks", SOURCE_KEY: image.name},
                **self._scribble_kwargs(image),
            )
            self.viewer.add_layer(layer)
            self._link_scribble_layer(layer, image)
            self.ensure_output(image)
        self._apply_stroke_style()
        return layer

    def brush_layer(self, image=None) -> Labels:
        """The brush Labels scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "brush")
        if layer is None:
            layer = Labels(
                np.zeros(spatial_shape(image), np.uint8),
                name=f"{image.name} brush",
                metadata={ROLE_KEY: "brush", SOURCE_KEY: image.name},
                scale=image.scale,
                translate=image.translate,
            )
            layer.brush_size = max(3, int(min(spatial_shape(image)[-2:]) / 60))
            self.viewer.add_layer(layer)
            self._link_scribble_layer(layer, image)
            self.ensure_output(image)
        self._apply_stroke_style()
        return layer

    def activate_scribbles(self, kind: str = "shapes") -> None:
        """Create (if needed), select and arm a scribble layer: shapes, brush or clicks."""
        try:
            image = self._require_image()
        except UnsupportedLayerError as err:
            show_error(f"IPNet: {err}")
            return
        if kind == "shapes":
            layer = self.scribble_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "add_path"
        elif kind == "brush":
            layer = self.brush_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "paint"
        elif kind == "clicks":
            layer = self.clicks_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
        else:
            raise ValueError(f"unknown scribble kind {kind!r}: shapes, brush or clicks")
        self._apply_stroke_style()

    def _require_image(self, image=None):
        image = image if image is not None else self.image_layer
        check_layer(image)
        return image

    def _object_color(self, k: int) -> np.ndarray:
        """RGBA colour of object ``k``: as the output layer shows it (see ``_colors``).

        Output layers the widget makes use the palette of :mod:`._colors`; a Labels
        layer chosen as output keeps its own colours, and the strokes and the object
        list follow them.
        """
        out = self.output_layer
        if out is None:
            return np.asarray(object_color(k), dtype=float)
        return np.asarray(out.colormap.map(np.asarray([k], dtype=np.int64)), dtype=float).reshape(-1)[:4]

    def _apply_stroke_style(self) -> None:
        """Colour and features of the next strokes: the selected object, or negative."""
        color = NEGATIVE_COLOR if self._negative else self._object_color(self._current)
        defaults = {"object_id": self._current, "positive": not self._negative, STROKE_FEATURE: -1}
        for layer in list(self.viewer.layers):
            if id(layer) not in self._links:
                continue
            role = layer.metadata.get(ROLE_KEY)
            if role in ("scribbles", "clicks"):
                # napari applies current_* to the selected items: do not recolour them
                if len(layer.selected_data):
                    layer.selected_data = set()
                layer.feature_defaults = {k: v for k, v in defaults.items() if k in layer.features}
                if role == "scribbles":
                    layer.current_edge_color = color
                else:
                    layer.current_face_color = color
                    layer.current_border_color = color
            elif role == "brush":
                layer.selected_label = NEGATIVE_LABEL if self._negative else self._current
                self._update_brush_colormap(layer)

    def _update_brush_colormap(self, layer) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        colors = {None: np.array([0.7, 0.7, 0.7, 1.0]), 0: np.zeros(4)}
        for k in self._objects:
            colors[k] = self._object_color(k)
        colors[NEGATIVE_LABEL] = np.array([1.0, 0.19, 0.19, 1.0])
        layer.colormap = DirectLabelColormap(color_dict=colors)

    # ================================================================== objects
    def _refresh_objects(self) -> None:
        self.object_list.blockSignals(True)
        self.object_list.clear()
        empty = self._active.empty if self._active is not None else {}
        for k in sorted(self._objects):
            text = f"{k}: {self._objects[k]}"
            if empty.get(k):
                text += f"{_EMPTY_MARK}{frame_ranges(empty[k])}]"
            item = QListWidgetItem(text)
            if empty.get(k):
                item.setToolTip(
                    f"Object {k} has no mask on {frames_text(empty[k])} after the last "
                    "interaction or propagation there: scribble it on one of them."
                )
            item.setData(Qt.ItemDataRole.UserRole, k)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            rgba = self._object_color(k)
            pix = QPixmap(12, 12)
            pix.fill(QColor.fromRgbF(*[float(c) for c in rgba[:3]]))
            item.setIcon(QIcon(pix))
            self.object_list.addItem(item)
            if k == self._current:
                self.object_list.setCurrentItem(item)
        self.object_list.blockSignals(False)
        self.object_list.updateGeometry()  # its size hint follows the objects (see ObjectList)
        self._apply_stroke_style()

    def _describe(self, ids) -> str:
        """``"object 2"``, ``"object 2 (cell)"``, ``"objects 2 (cell) and 5"``."""
        parts = []
        for k in ids:
            name = self._objects.get(k, f"object {k}")
            parts.append(str(k) if name == f"object {k}" else f"{k} ({name})")
        if len(parts) == 1:
            return f"object {parts[0]}"
        return f"objects {', '.join(parts[:-1])} and {parts[-1]}"

    @property
    def objects(self) -> dict[int, str]:
        """Object id (label value) -> name."""
        return dict(self._objects)

    @property
    def current_object(self) -> int:
        return self._current

    def add_object(self, name: str | None = None) -> int | None:
        """Add an object (next free label value) and select it."""
        used = set(self._objects)
        out = self.output_layer
        top = max(used, default=0)
        if out is not None and out.data.size:
            top = max(top, int(np.max(out.data)))
        k = top + 1
        if k > MAX_OBJECTS:
            show_warning(f"IPNet: at most {MAX_OBJECTS} objects (label {NEGATIVE_LABEL} marks brush negatives)")
            return None
        self._objects[k] = name or f"object {k}"
        self._current = k
        self._refresh_objects()
        return k

    def select_object(self, k: int) -> None:
        if k not in self._objects:
            if 1 <= k <= MAX_OBJECTS:
                self._objects[k] = f"object {k}"
            else:
                return
        self._current = int(k)
        self._refresh_objects()
        self.status_label.setText(f"Object {k} ({self._objects[k]}) selected.")

    def rename_object(self, k: int, name: str) -> None:
        if k not in self._objects:
            raise KeyError(f"no object {k}")
        self._objects[k] = str(name)
        out = self.output_layer
        if out is not None:
            out.metadata.setdefault("napari_ipnet_objects", {})[int(k)] = str(name)
        self._refresh_objects()

    def _on_object_row(self, row: int) -> None:
        item = self.object_list.item(row)
        if item is not None:
            self._current = int(item.data(Qt.ItemDataRole.UserRole))
            self._apply_stroke_style()

    def _on_object_renamed(self, item) -> None:
        k = int(item.data(Qt.ItemDataRole.UserRole))
        text = item.text()
        prefix = f"{k}: "
        name = text[len(prefix):] if text.startswith(prefix) else text
        if _EMPTY_MARK in name:  # the "[empty: ...]" mark is not part of the name
            name = name[: name.index(_EMPTY_MARK)]
        if name.strip() and name != self._objects.get(k):
            self.rename_object(k, name.strip())

    def set_negative(self, negative: bool) -> None:
        self._negative = bool(negative)
        if self.negative_check.isChecked() != self._negative:
            self.negative_check.blockSignals(True)
            self.negative_check.setChecked(self._negative)
            self.negative_check.blockSignals(False)
        self._apply_stroke_style()

    def toggle_negative(self) -> None:
        self.set_negative(not self._negative)

    # ================================================================== model
    def set_model(self, model, name: str | None = None) -> None:
        """Use ``model`` (an IPNetModel); existing sessions restart (results are kept)."""
        self.model = model
        self.model_label_text = name or getattr(model, "name", "model")
        self._drop_sessions()
        dev = getattr(model, "device", "?")
        if getattr(dev, "type", None) == "cpu":
            import torch

            torch.set_num_threads(cpu_threads_for_gui())
        self.model_status.setText(f"Model: {self.model_label_text} on {dev}")
        if self._pending_device is None:
            self._show_model_device(dev)
        uses_flag = bool(getattr(model, "uses_objects_may_end", False))
        self.ending_check.setEnabled(uses_flag)
        self.ending_check.setToolTip(ENDING_TOOLTIP if uses_flag else "This model does not tell the two cases apart.")
        self._pump()

    def _drop_sessions(self) -> None:
        busy = self._job.record if self._job is not None else None
        self._records = {k: r for k, r in self._records.items() if r is busy}
        self._active = busy

    def _on_model_choice(self, *_args) -> None:
        if self.model_combo.currentData() == "file":
            path, _ = QFileDialog.getOpenFileName(
                self, "IPNet checkpoint", "", "Checkpoints (*.safetensors *.pt *.pth)"
            )
            if not path:
                self.model_combo.setCurrentIndex(0)
                return
            self._model_source = path
        self.model = None
        self.model_status.setText("Model: not loaded (loads with the first scribble, or press Load)")

    def _on_device_changed(self, *_args) -> None:
        """Move the model to the chosen device: now, or once the running job has finished.

        A job reads the model and the sessions' reference features while it runs, so
        the move waits until none runs (the next queued job then starts on the new
        device). A model still loading moves once loaded.
        """
        if self.model is None and not self._loading:
            return  # the weights load onto the chosen device
        choice = self.device_combo.currentText()
        try:
            from ..weights import resolve_device

            dev = resolve_device(choice)
        except Exception as err:  # noqa: BLE001
            show_error(f"IPNet: cannot use device {choice!r}: {_short(err)}. Choose 'auto' or 'cpu'.")
            self._show_device_choice("auto")
            return
        self._pending_device = dev
        if self.is_idle():
            self._pump()  # moves it now
            return
        show_info(f"IPNet: the model moves to {dev} once the running job has finished")
        where = getattr(self.model, "device", None)
        now = f"{self.model_label_text} on {where}" if self.model is not None else "loading"
        self.model_status.setText(f"Model: {now}; moves to {dev} after the running job")

    def _show_model_device(self, dev) -> None:
        """Make the device choice say where the model is ('auto' stays when it means that)."""
        kind = getattr(dev, "type", None)
        if kind not in DEVICE_CHOICES:
            return
        try:
            from ..weights import resolve_device

            chosen = resolve_device(self.device_combo.currentText()).type
        except Exception:  # noqa: BLE001 - an unavailable choice: show the model's
            chosen = None
        if chosen != kind:
            self._show_device_choice(kind)

    def _show_device_choice(self, text: str) -> None:
        self.device_combo.blockSignals(True)
        self.device_combo.setCurrentText(text)
        self.device_combo.blockSignals(False)

    def _apply_device(self) -> None:
        """Move the model and every session using it to the pending device (no job runs)."""
        dev, self._pending_device = self._pending_device, None
        model = self.model
        old = model.device
        sessions = [s for s in self.sessions if s.model is model]
        try:
            move_model(model, sessions, dev)
        except Exception as err:  # noqa: BLE001
            log.debug("IPNet: moving the model failed", exc_info=err)
            show_error(f"IPNet: cannot move the model to {dev}: {_short(err)}. It stays on {old}.")
            self._show_device_choice(old.type if old.type in DEVICE_CHOICES else "auto")
            self.model_status.setText(f"Model: {self.model_label_text} on {old}")
            return
        if dev.type == "cpu":
            import torch

            torch.set_num_threads(cpu_threads_for_gui())
        self.model_status.setText(f"Model: {self.model_label_text} on {dev}")

    def load_model(self) -> None:
        """Load the weights chosen in the widget (in a worker thread)."""
        if self._loading:
            return
        choice = self.model_combo.currentData()
        device = self.device_combo.currentText()
        name = self._model_source if choice == "file" else choice
        if choice == "file" and not name:
            show_error("IPNet: choose a checkpoint file first (Weights > Checkpoint file...)")
            self._fail_jobs_needing_model()
            return
        if choice == "ipnet-paper" and not self._paper_weights_present():
            if not self._ask_license():
                show_warning(
                    "IPNet: the original weights were not downloaded. Choose the bundled default "
                    "weights or a checkpoint file, or run `napari-ipnet fetch-weights ipnet-paper`."
                )
                self._fail_jobs_needing_model()
                return
            self._start_load(name, device, download=True)
            return
        self._start_load(name, device)

    def _paper_weights_present(self) -> bool:
        from ..weights import PAPER_FILES, cache_dir

        folder = cache_dir() / "ipnet-paper"
        return all((folder / f).is_file() for f in PAPER_FILES.values())

    def _ask_license(self) -> bool:
        answer = QMessageBox.question(
            self,
            "IPNet original weights: licence",
            _license_text(),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _start_load(self, name: str, device: str, download: bool = False) -> None:
        self._loading = True
        self.model_status.setText(f"Model: loading {name} ..." if not download else "Model: downloading ...")
        self._update_buttons()

        def work():
            if download:
                try:
                    from ..fetch import fetch_weights
                except ImportError as err:
                    raise RuntimeError(
                        "this installation cannot download weights (napari_ipnet.fetch is missing); "
                        "run `napari-ipnet fetch-weights ipnet-paper` or use a checkpoint file"
                    ) from err
                fetch_weights("ipnet-paper", progress=False, accept_license=True)
            from ..weights import load_model

            return load_model(name, device=device)

        pbar = progress(total=0, desc="IPNet: downloading weights" if download else "IPNet: loading weights")
        worker = _make_worker(work)

        def done(result):
            if isinstance(result, _Failure):
                self._show_job_error(result.err, "getting the original weights" if download else "loading the weights")
                self._loading = False
                self._fail_jobs_needing_model()
                return
            self._loading = False
            self.set_model(result, str(getattr(result, "name", name)))

        def finished():
            pbar.close()
            self._loading = False
            self._worker = None
            self._update_buttons()
            self._pump()

        worker.returned.connect(done)
        worker.finished.connect(finished)
        self._worker = worker
        worker.start()

    def _fail_jobs_needing_model(self) -> None:
        if self.model is None and self._jobs:
            self._jobs.clear()
            self.status_label.setText("No model: the scribbles were not processed.")
            self.model_status.setText("Model: not loaded")

    # ================================================================== sessions
    def _record_for(self, image, spec: SequenceSpec) -> _Record:
        key = (id(image), spec)
        rec = self._records.get(key)
        if rec is None:
            from ..session import Session

            frames = frame_view(image, spec)
            rec = _Record(image, spec, Session(frames, self.model, self.objects_may_end), frames)
            self._records[key] = rec
        return rec

    @property
    def session(self):
        """Session of the last interaction (None before the first one)."""
        return self._active.session if self._active is not None else None

    @property
    def sessions(self) -> list:
        return [r.session for r in self._records.values()]

    # ================================================================== scribble events
    def _on_scribble_data(self, event) -> None:
        layer = event.source
        action = str(getattr(event, "action", "added"))
        n_before = self._seen_count.get(id(layer), 0)
        n = len(layer.data)
        if action == "removed" or n < n_before:
            self._seen_count[id(layer)] = n
            if not self._clearing_strokes:
                self._strokes_removed(layer)
            return
        if action != "added" or n <= n_before:
            return  # a shape being drawn, moved or edited: wait for "added"
        self._seen_count[id(layer)] = n
        image = self._links.get(id(layer))
        if image is None or image not in self.viewer.layers:
            show_error("IPNet: the image layer of these scribbles is gone; open it again")
            return
        role = layer.metadata.get(ROLE_KEY)
        strokes: dict[tuple, list[_Stroke]] = {}
        try:
            for i in range(n_before, n):
                feats = layer.features.iloc[i] if len(layer.features) > i else {}
                obj = int(feats.get("object_id", self._current)) if len(feats) else self._current
                positive = bool(feats.get("positive", True)) if len(feats) else True
                stroke_id = -1
                if STROKE_FEATURE in layer.features:  # its identity, to find it again once deleted
                    stroke_id = self._next_stroke_id
                    self._next_stroke_id += 1
                    layer.features.loc[i, STROKE_FEATURE] = stroke_id
                if role == "scribbles":
                    verts = to_layer_coords(layer, image, np.asarray(layer.data[i]))
                    stype = layer.shape_type[i]
                else:
                    verts = to_layer_coords(layer, image, np.asarray(layer.data[i])[None])
                    stype = "click"
                frame, spec = self._locate(image, verts)
                h, w = spatial_shape(image)[-2:]
                yx = verts[:, -2:]
                m = click_map(yx, h, w) if stype == "click" else shape_map(yx, stype, h, w)
                if not m.any():
                    show_warning("IPNet: the stroke is outside the image; draw on the image")
                    continue
                ref = weakref.ref(layer) if stroke_id >= 0 else None
                strokes.setdefault((spec, frame), []).append(_Stroke(ref, stroke_id, obj, positive, m))
        except UnsupportedLayerError as err:
            show_error(f"IPNet: {err}")
            return
        except Exception as err:  # noqa: BLE001 - a notification, never a traceback in the console
            log.debug("IPNet: reading a stroke failed", exc_info=err)
            show_error(f"IPNet: this stroke cannot be used ({type(err).__name__}: {_short(err)})")
            return
        for (spec, frame), frame_strokes in strokes.items():
            self._submit_interaction(image, spec, frame, frame_strokes)

    def _locate(self, image, verts: np.ndarray) -> tuple[int, SequenceSpec]:
        """Frame and spec of a stroke from its (leading) coordinates."""
        base = make_spec(image, self.axis, verts[0], self.channel)
        lead = np.rint(verts[:, : base.ndim - 2]).astype(int)
        if lead.size and (lead != lead[0]).any():
            show_warning("IPNet: the stroke spans several frames; it is used on its first frame")
        shape = spatial_shape(image)
        pos = np.clip(lead[0], 0, np.asarray(shape[: base.ndim - 2]) - 1) if lead.size else []
        frame, spec = base.frame_of(list(pos))
        return frame, spec

    def _on_brush_paint(self, event) -> None:
        """A finished brush stroke (or fill): note where, process once the data is written.

        napari emits ``paint`` when it records the history item, which for
        programmatic edits is before the pixels are written: the strokes are read on
        the next turn of the event loop.
        """
        layer = event.source
        image = self._links.get(id(layer))
        if image is None or image not in self.viewer.layers:
            return
        ndim = len(spatial_shape(image))
        combos = paint_bounds(getattr(event, "value", None) or [], ndim)
        if combos is None:
            combos = [tuple(int(round(v)) for v in self._viewer_position(image)[: ndim - 2])]
        pending = self._pending_paint.setdefault(id(layer), (layer, set()))[1]
        pending.update(combos)
        if not self._paint_scheduled:
            self._paint_scheduled = True
            QTimer.singleShot(0, self._process_paint)

    def _process_paint(self) -> None:
        self._paint_scheduled = False
        pending, self._pending_paint = self._pending_paint, {}
        for layer, combos in pending.values():
            image = self._links.get(id(layer))
            if image is None or image not in self.viewer.layers or layer not in self.viewer.layers:
                continue
            self._brush_strokes(layer, image, sorted(combos))

    def _brush_strokes(self, layer, image, combos) -> None:
        data = layer.data
        groups: dict[tuple, list[_Stroke]] = {}
        for lead in combos:
            try:
                frame, spec = self._locate(image, np.asarray([list(lead) + [0, 0]], float))
            except UnsupportedLayerError as err:
                show_error(f"IPNet: {err}")
                return
            region = np.asarray(data[tuple(lead)])
            key = (id(layer), tuple(lead))
            prev = self._brush_seen.get(key)
            if prev is None:
                prev = np.zeros_like(region)
            self._brush_seen[key] = region.copy()
            new = (region != prev) & (region != 0)
            if not new.any():
                continue
            # brush paint: kept for the round, cannot be deleted stroke by stroke (layer None)
            paint = []
            values = [int(v) for v in np.unique(region[new])]
            neg = (region == NEGATIVE_LABEL) & new
            for v in values:
                if v == NEGATIVE_LABEL:
                    continue
                if v not in self._objects:
                    self._objects[v] = f"object {v}"
                paint.append(_Stroke(None, -1, v, True, (region == v) & new))
            if neg.any():
                paint.append(_Stroke(None, -1, self._current, False, neg))
            groups[(spec, frame)] = paint
        self._refresh_objects()
        for (spec, frame), paint in groups.items():
            self._submit_interaction(image, spec, frame, paint)

    def _submit_interaction(self, image, spec, frame, strokes: list[_Stroke]) -> None:
        items = _merge_strokes(strokes)
        if not items:
            return
        for k, _p, _n in items:
            self._objects.setdefault(k, f"object {k}")
        job = _Job("interact", frame=frame, items=items, strokes=list(strokes))
        job.image = image  # the record is made when the job runs (after the model loads)
        job.spec = spec
        self._jobs.append(job)
        self._pump()

    # ================================================================== jobs
    def is_idle(self) -> bool:
        """No job running or waiting (the model may still be loading)."""
        return self._worker is None and not self._jobs and not self._loading

    def _update_buttons(self) -> None:
        busy = not self.is_idle()
        running_prop = self._job is not None and self._job.kind == "propagate"
        self.cancel_btn.setEnabled(running_prop)
        self.reset_btn.setEnabled(not busy)
        self.reset_all_btn.setEnabled(not busy)
        self.load_btn.setEnabled(not self._loading)
        self.busy_changed.emit(busy)

    def _pump(self) -> None:
        """Start the next queued job unless one is running (main thread only).

        A device change waiting for the running job is applied first.
        """
        if self._pending_device is not None and self._worker is None and not self._loading:
            if self.model is not None:
                self._apply_device()
        while self._worker is None and not self._loading and self._jobs:
            if self.model is None:
                self.load_model()
                break
            job = self._jobs.popleft()
            try:
                if job.kind == "interact":
                    self._start_interaction(job)
                elif job.kind == "propagate":
                    self._start_propagation(job)
                elif job.kind == "withdraw":
                    self._start_withdrawal(job)
            except Exception as err:  # noqa: BLE001 - never leave the queue stuck
                what = {"interact": "segmenting", "propagate": "propagating"}.get(job.kind, "taking back a stroke")
                self._show_job_error(err, what)
                self._worker = None
                self._job = None
                if job.kind == "propagate":
                    self._t_propagate = None
        self._update_buttons()

    def _show_job_error(self, err: BaseException, what: str) -> None:
        log.debug("IPNet %s failed", what, exc_info=err)
        from ..weights import WeightsError

        if isinstance(err, WeightsError):
            show_error(
                f"IPNet: no usable weights: {_short(err)}. In the IPNet widget choose "
                "'Original IPNet' (downloads the published weights) or 'Checkpoint file...'."
            )
        elif any(c.__name__ == "FetchError" for c in type(err).__mro__) or isinstance(err, OSError):
            show_error(
                f"IPNet: {what} failed: {_short(err)}. Check the network connection, or download "
                "the weights elsewhere with `napari-ipnet fetch-weights ipnet-paper` and copy them "
                "into the napari-ipnet cache folder."
            )
        elif _is_oom(err):
            show_error(
                f"IPNet: out of GPU memory while {what}. Choose device 'cpu' in the IPNet widget, "
                "close other programs using the GPU, or work on a cropped / downscaled stack."
            )
        elif isinstance(err, (ValueError, IndexError, KeyError, UnsupportedLayerError)):
            show_error(f"IPNet: {what} failed: {_short(err)}")
        else:
            # unexpected: an error notification whose "View traceback" shows where it failed
            from napari.utils.notifications import Notification, notification_manager

            msg = f"IPNet: {what} failed ({type(err).__name__}: {_short(err)})"
            wrapped = RuntimeError(msg).with_traceback(err.__traceback__)
            notification_manager.dispatch(Notification.from_exception(wrapped))

    # ------------------------------------------------------------------ interaction
    def _start_interaction(self, job: _Job) -> None:
        image = job.image
        if image not in self.viewer.layers:
            raise UnsupportedLayerError("the image layer was removed before its scribbles were processed")
        rec = self._record_for(image, job.spec)
        job.record = rec
        self._active = rec
        session = rec.session
        frame = job.frame
        self._sync_engine()  # in case the output layer was undone behind our back
        job.before = session.snapshot()
        if session.pending_frame != frame:  # a new round (one open elsewhere closes, as in the engine)
            rec.round = _Round(frame, job.before)
        elif rec.round is None or rec.round.frame != frame:
            rec.round = _Round(frame, None)  # open since an undo: its start is not known

        def work():
            for k, pos, neg in job.items:
                session.interact(frame, pos, neg, object_id=k)
            return session.label_frame(frame), list(session.object_ids)

        worker = _make_worker(work)
        worker.returned.connect(lambda res: self._interaction_returned(job, res))
        worker.finished.connect(self._job_finished)
        self._worker, self._job = worker, job
        self.status_label.setText(f"Segmenting frame {frame} ...")
        worker.start()

    def _interaction_returned(self, job: _Job, result) -> None:
        if isinstance(result, _Failure):
            self._show_job_error(result.err, f"segmenting frame {job.frame}")
            self.status_label.setText(f"Segmenting frame {job.frame} failed.")
            return
        labels, managed = result
        rnd = job.record.round
        if job.kind == "interact" and rnd is not None and rnd.frame == job.frame:
            rnd.steps.append(list(job.strokes))
        if not any(job.record.layer is x for x in self.viewer.layers):
            self.status_label.setText(f"Frame {job.frame}: its image layer was removed; result dropped.")
            return
        out = self._output_for(job.record)
        job.record.note_output(out)
        change, refused, owners = frame_write(out.data, job.record.spec, job.frame, labels, managed)
        job.refused.add(job.frame, refused, owners)
        n = apply_with_history(out, [change] if change is not None else [])
        self._remember_step(out, n, job)
        ids = [k for k, _pos, _neg in job.items]
        empty = empty_objects(labels, ids)
        job.record.note_empty(job.frame, ids, empty)
        self._refresh_objects()
        dt = time.perf_counter() - job.t_submit
        plan = job.record.session.propagation_plan()
        if empty:
            self._report_empty_interaction(job, empty, dt, len(plan))
        else:
            self.status_label.setText(
                f"Frame {job.frame} segmented ({dt:.2f} s). Propagate ({len(plan)} frames) or scribble again."
            )
        self._report_refused(job, out)
        self.interaction_done.emit(job.frame)

    def _report_refused(self, job: _Job, out) -> None:
        """Status and a warning: the output layer kept labels where the session has its objects."""
        if not job.refused:
            return
        text = job.refused.text(out.name, self._describe)
        self.status_label.setText(f"{self.status_label.text()} {text}")
        show_warning(f"IPNet: {text}")
        log.info("IPNet: %s", text)

    def _report_empty_interaction(self, job: _Job, empty: list[int], dt: float, n_plan: int) -> None:
        """Status and notification: the interaction left objects without a mask on its frame."""
        what = self._describe(empty)
        self.status_label.setText(
            f"Frame {job.frame} segmented ({dt:.2f} s), but {what} got no mask there: scribble "
            f"{'it' if len(empty) == 1 else 'them'} again, or propagate ({n_plan} frames)."
        )
        positive = {k for k, pos, _neg in job.items if pos is not None and np.any(pos)}
        if positive & set(empty):
            show_warning(
                f"IPNet: {what} got no mask on frame {job.frame}: the network found nothing "
                "under the stroke. Draw a longer stroke well inside the object, or more strokes."
            )
        else:  # negative strokes only: perhaps what the user wanted
            show_info(f"IPNet: {what} is now empty on frame {job.frame} (negative strokes only).")

    # ------------------------------------------------------------------ deleted strokes
    def _strokes_removed(self, layer) -> None:
        """Strokes were deleted from ``layer``: take back those of open rounds (queued)."""

        def gone(strokes) -> bool:
            return any(st.layer is not None and st.layer() is layer and not st.present() for st in strokes)

        # in an open round, or in an interaction still running or waiting (its round
        # gets the stroke when it returns, and the withdrawal queued after it takes it back)
        jobs = [j for j in (self._job, *self._jobs) if j is not None and j.kind == "interact"]
        if not any(r.round is not None and gone(r.round.strokes) for r in self._records.values()) and not any(
            gone(j.strokes) for j in jobs
        ):
            show_info(_STROKE_STAYS)
            return
        if not any(j.kind == "withdraw" for j in self._jobs):
            self._jobs.append(_Job("withdraw"))
        self._pump()

    def _start_withdrawal(self, job: _Job) -> None:
        """Segment an open round's frame again from the strokes that are left."""
        self._sync_engine()  # in case the output layer was undone behind our back
        layers = list(self.viewer.layers)
        todo = [
            r for r in self._records.values()
            if r.round is not None and any(not st.present() for st in r.round.strokes)
            and any(r.layer is x for x in layers)
        ]
        if not todo:
            return
        if len(todo) > 1:  # rounds of several sequences: one after the other
            self._jobs.appendleft(_Job("withdraw"))
        rec = job.record = todo[0]
        session, rnd = rec.session, rec.round
        job.frame = rnd.frame
        if session.pending_frame != rnd.frame or rnd.before is None:
            rec.round = None
            show_info(_STROKE_STAYS)
            return
        steps = [[st for st in step if st.present()] for step in rnd.steps]
        steps = [step for step in steps if step]
        n_kept = sum(len(step) for step in steps)
        job.before = session.snapshot()
        frame = rnd.frame

        def work():
            managed = set(session.object_ids)
            _restore(session, rnd.before)  # back to before the round's first stroke
            for step in steps:  # the round again, without the deleted strokes
                for k, pos, neg in _merge_strokes(step):
                    session.interact(frame, pos, neg, object_id=k)
            return session.label_frame(frame), sorted(managed | set(session.object_ids))

        def returned(result):
            if isinstance(result, _Failure):
                self._show_job_error(result.err, f"segmenting frame {frame} again")
                self.status_label.setText(f"Taking back the stroke on frame {frame} failed.")
                return
            rnd.steps = steps
            if not steps:
                rec.round = None  # the round is gone with its last stroke
            self._interaction_returned(job, result)
            left = f"from the {n_kept} strokes left" if steps else "back to before this round"
            self.status_label.setText(f"Stroke deleted: frame {frame} {left}.")

        worker = _make_worker(work)
        worker.returned.connect(returned)
        worker.finished.connect(self._job_finished)
        self._worker, self._job = worker, job
        self.status_label.setText(f"Stroke deleted: segmenting frame {frame} again ...")
        worker.start()

    def _job_finished(self) -> None:
        self._worker = None
        self._job = None
        self._prune_records()
        self._pump()
        self._update_buttons()

    def _prune_records(self) -> None:
        """Forget the sessions of image layers removed from the viewer."""
        layers = list(self.viewer.layers)
        for key, rec in list(self._records.items()):
            if not any(rec.layer is x for x in layers):
                del self._records[key]
                if self._active is rec:
                    self._active = None

    # ------------------------------------------------------------------ propagation
    def propagate(self) -> None:
        """Propagate the last scribbled frame through the stack (queued if busy)."""
        if self._t_propagate is None:
            self._t_propagate = time.perf_counter()
        queued_interactions = [j for j in self._jobs if j.kind == "interact"]
        if self._active is None and not queued_interactions and not (self._job and self._job.kind == "interact"):
            show_warning("IPNet: nothing to propagate yet: scribble on a frame first")
            self._t_propagate = None
            return
        if any(j.kind == "propagate" for j in self._jobs):
            return
        running = self._job is not None and self._job.kind == "propagate"
        if running and not queued_interactions:
            return  # already propagating this round
        self._jobs.append(_Job("propagate"))
        self._pump()

    def _start_propagation(self, job: _Job) -> None:
        rec = self._active
        if rec is None or rec.layer not in self.viewer.layers:
            self._t_propagate = None
            raise UnsupportedLayerError("the image layer of the last scribble is gone")
        session = rec.session
        self._sync_engine()  # in case the output layer was undone behind our back
        if session.pending_frame is None:
            self._t_propagate = None
            show_info("IPNet: this round is already propagated; scribble a correction first")
            return
        plan = session.propagation_plan()
        out = self._output_for(rec)
        rec.note_output(out)
        job.record = rec
        cancel = threading.Event()
        self._cancel_event = cancel
        self._recorder = RoundRecorder(out)
        self._round_target = out
        job.before = session.snapshot()
        start = session.pending_frame
        frames_gen = session.propagate()  # round state lives in this generator

        def work():
            # the objects on the round's frame, to tell where they vanish (read by the
            # main thread once frames arrive)
            ids = session.object_ids
            missing = set(empty_objects(session.label_frame(start), ids))
            job.tracked = [k for k in ids if k not in missing]
            for t in frames_gen:
                yield t, session.label_frame(t), list(session.object_ids)
                if cancel.is_set():
                    return

        self._pbar = _CancelProgress(
            total=max(1, len(plan)), desc=f"IPNet: propagating from frame {session.pending_frame}",
            cancel_callback=self.cancel,
        )
        worker = _make_worker(work, generator=True)
        worker.yielded.connect(lambda res: self._frame_arrived(job, res))
        worker.returned.connect(
            lambda res: self._show_job_error(res.err, "propagating") if isinstance(res, _Failure) else None
        )

        def finished():
            frames_gen.close()  # no-op when done; closes the round if the worker was aborted
            self._propagation_finished(job)

        worker.finished.connect(finished)
        self._worker, self._job = worker, job
        self.status_label.setText(f"Propagating {len(plan)} frames ...")
        worker.start()

    def _frame_arrived(self, job: _Job, result) -> None:
        t, labels, managed = result
        rec = job.record
        out = self._round_target
        if out is None or out not in self.viewer.layers:
            return
        change, refused, owners = frame_write(out.data, rec.spec, t, labels, managed)
        job.refused.add(t, refused, owners)
        self._recorder.write(t, change)
        empty = empty_objects(labels, job.tracked)
        rec.note_empty(t, job.tracked, empty)
        for k in empty:
            job.vanished.setdefault(k, []).append(t)
        if self._pbar is not None:
            self._pbar.update(1)
        self.frame_done.emit(t)

    def _propagation_finished(self, job: _Job) -> None:
        aborted = bool(getattr(self._worker, "abort_requested", False))  # napari's task manager
        cancelled = aborted or (self._cancel_event is not None and self._cancel_event.is_set())
        frames = []
        target = self._round_target
        if self._recorder is not None:
            frames = list(self._recorder.frames)
            if self._round_target is not None and self._round_target in self.viewer.layers:
                # the round is closed (the generator is done or closed): one undo step
                # for the frames written, finished or cancelled, with the engine states
                n = self._recorder.commit()
                self._remember_step(self._round_target, n, job)
        if self._pbar is not None:
            self._pbar.close()
        self._pbar = None
        self._recorder = None
        self._round_target = None
        self._cancel_event = None
        if self._t_propagate is not None:
            self.last_propagation_seconds = time.perf_counter() - self._t_propagate
        self._t_propagate = None
        self.last_round_frames = frames
        dt = self.last_propagation_seconds or 0.0
        word = "cancelled after" if cancelled else "propagated"
        vanished = self._vanished_text(job)
        self.status_label.setText(
            f"{word} {len(frames)} frames in {dt:.1f} s. {vanished + '. ' if vanished else ''}"
            "Correct the worst frame and propagate again."
        )
        if vanished:
            session = job.record.session if job.record is not None else None
            ending = session is not None and session.objects_may_end and session.uses_objects_may_end
            # objects that may end (z-stacks): expected, said quietly; otherwise worth a look
            (show_info if ending else show_warning)(f"IPNet: after propagating, {vanished}.")
        if target is not None:
            self._report_refused(job, target)
        self._refresh_objects()
        self._worker = None
        self._job = None
        self._prune_records()
        self.propagation_finished.emit(frames, cancelled)
        self._pump()
        self._update_buttons()

    def _vanished_text(self, job: _Job) -> str:
        """``"object 3 empty on frames 12-19; object 5 (cell) empty on frame 7"``, or ``""``."""
        return "; ".join(
            f"{self._describe([k])} empty on {frames_text(frames)}" for k, frames in sorted(job.vanished.items())
        )

    def cancel(self) -> None:
        """Stop the running propagation after the current frame; drop queued propagations."""
        self._jobs = deque(j for j in self._jobs if j.kind != "propagate")
        if self._cancel_event is not None:
            self._cancel_event.set()
        self._update_buttons()

    # ================================================================== undo / reset
    def undo(self) -> None:
        """Undo the last write to the output layer (one interaction or one round)."""
        out = self.output_layer
        if out is None:
            return
        if not self.is_idle():
            show_warning("IPNet: wait for the running job to finish before undoing")
            return
        out.undo()  # hooked: the sessions follow (see _sync_engine)
        self._sync_engine(out, "undo")  # no-op when the hook already did it

    # ------------------------------------------------------------------ engine undo history
    def _remember_step(self, layer, n_pixels: int, job: _Job) -> None:
        """Record the history item just written by ``job``, with the engine states around it."""
        item = last_undo_item(layer) if n_pixels else None
        if item is None or job.before is None or job.record is None:
            return  # nothing in the layer's history: the engine change merges into the next step
        self._undo_steps.append(
            _UndoStep(weakref.ref(layer), item[0], item[-1], job.record, job.before, job.record.session.snapshot())
        )
        self._install_history_hooks(layer)

    def _install_history_hooks(self, layer) -> None:
        """Wrap ``layer.undo`` / ``layer.redo`` (what Ctrl+Z / Ctrl+Shift+Z call) once."""
        if getattr(layer.__dict__.get("undo"), "_ipnet_hook", None) is self._self_ref:
            return
        layer_ref = weakref.ref(layer)
        for name in ("undo", "redo"):
            setattr(layer, name, _history_hook(self._self_ref, layer_ref, getattr(layer, name), name))
        self._hooked.append(layer_ref)

    def _history_may_change(self, layer) -> bool:
        """Whether undo / redo on ``layer`` may run now (not while a job uses the engine)."""
        if self._worker is None or not any(s.layer() is layer for s in self._undo_steps):
            return True
        show_warning("IPNet: wait for the running job to finish before undoing or redoing")
        return False

    def _sync_engine(self, layer=None, action: str | None = None) -> None:
        """Bring the sessions back in line with the undo history of the output layer(s).

        Each IPNet write in an output layer is one history item, remembered with the
        session snapshots taken before and after it. An item found on the layer's redo
        stack is undone, one on its undo stack is done; an item on neither can never
        come back (redo cleared by a new edit, or too old) and is forgotten. Each
        session whose steps changed state is restored to the state before its first
        undone step, or after its last done step.
        """
        if not self._undo_steps or self._worker is not None:
            return  # never under a running job: it is reading and writing the sessions
        live = {id(r) for r in self._records.values()}
        stacks: dict[int, tuple[set[int], set[int]]] = {}
        keep: list[_UndoStep] = []
        changed: list[_Record] = []
        for step in self._undo_steps:
            lay = step.layer()
            if lay is None or id(step.record) not in live:
                continue  # layer or session gone
            if layer is not None and lay is not layer:
                keep.append(step)
                continue
            if id(lay) not in stacks:
                stacks[id(lay)] = (
                    item_ends(undo_items(lay)),
                    item_ends(redo_items(lay)),
                )
            done, redo = stacks[id(lay)]
            if id(step.head) in done or id(step.tail) in done:
                undone = False
            elif id(step.head) in redo or id(step.tail) in redo:
                undone = True
            else:
                continue  # out of reach of undo / redo
            if undone != step.undone:
                step.undone = undone
                if not any(r is step.record for r in changed):
                    changed.append(step.record)
            keep.append(step)
        self._undo_steps = keep
        gone: set[int] = set()
        came: set[int] = set()
        for rec in changed:
            steps = [s for s in keep if s.record is rec]
            first_undone = next((s for s in steps if s.undone), None)
            ids_before = set(rec.session.object_ids)
            _restore(rec.session, first_undone.before if first_undone is not None else steps[-1].after)
            ids_after = set(rec.session.object_ids)
            gone |= ids_before - ids_after
            came |= ids_after - ids_before
            rec.round = None  # which strokes made the open round is no longer known
            rec.empty.clear()  # where objects are empty is no longer known either
        if changed:
            self._follow_session_objects(gone, came)
            pending = self._active.session.pending_frame if self._active is not None else None
            word = "Redone" if action == "redo" else "Undone"
            tail = f" Round on frame {pending} waiting to be propagated." if pending is not None else ""
            try:
                self.status_label.setText(f"{word}: IPNet's memory follows the output layer.{tail}")
                self._refresh_objects()
            except RuntimeError:  # the Qt widget is already deleted
                pass

    def _follow_session_objects(self, gone: set[int], came: set[int]) -> None:
        """Update the object list after undo / redo changed the objects the sessions hold.

        Objects ``gone`` from their session (and held by no other) leave the list, their
        names kept for a redo; objects that ``came`` back return with their names.
        """
        held = set().union(*(r.session.object_ids for r in self._records.values()))
        for k in sorted(gone - held):
            if k in self._objects:
                self._removed_names[k] = self._objects.pop(k)
        out = self.output_layer
        saved = out.metadata.get("napari_ipnet_objects", {}) if out is not None else {}
        for k in sorted(came):
            name = self._removed_names.pop(k, None)
            if k not in self._objects:
                self._objects[k] = name or saved.get(k) or f"object {k}"
        if not self._objects:
            self._objects[1] = self._removed_names.pop(1, "object 1")
        if self._current not in self._objects:
            self._current = max(self._objects)

    def reset_object(self, k: int | None = None) -> None:
        """Forget object ``k`` (selected one by default): results, strokes, session memory."""
        k = self._current if k is None else int(k)
        if not self.is_idle():
            show_warning("IPNet: wait for the running job to finish before resetting")
            return
        changes: dict[int, tuple[Any, list]] = {}  # id(layer) -> (layer, changes)
        for rec in self._records.values():
            if k in rec.session.object_ids:
                rec.session.reset(k)
                rec.round = None
                rec.empty.pop(k, None)
                # the engine cannot be rolled back across a reset (the layer can)
                self._undo_steps = [s for s in self._undo_steps if s.record is not rec]
                self._erase(rec, [k], changes)
        for layer, layer_changes in changes.values():
            apply_with_history(layer, layer_changes)
        self._clear_strokes({k})
        if len(self._objects) > 1 and k in self._objects:
            del self._objects[k]
            self._current = min(self._objects)
        self._refresh_objects()
        self.status_label.setText(f"Object {k} reset.")

    def reset_all(self) -> None:
        """Forget every object IPNet manages; other labels of the output layer are kept."""
        if not self.is_idle():
            show_warning("IPNet: wait for the running job to finish before resetting")
            return
        changes: dict[int, tuple[Any, list]] = {}  # id(layer) -> (layer, changes)
        for rec in self._records.values():
            ids = rec.session.object_ids
            rec.session.reset()
            self._erase(rec, ids, changes)
        for layer, layer_changes in changes.values():
            apply_with_history(layer, layer_changes)
        self._clear_strokes(None)
        self._records.clear()
        self._undo_steps.clear()  # the engine cannot be rolled back across a reset
        self._active = None
        self._objects = {1: "object 1"}
        self._current = 1
        self._refresh_objects()
        self.status_label.setText("All objects reset.")

    def _erase(self, rec: _Record, ids, changes: dict) -> None:
        """Add the changes erasing objects ``ids`` of ``rec`` from the layers it wrote to."""
        shape = spatial_shape(rec.layer)
        for layer in rec.output_layers():
            if layer not in self.viewer.layers or tuple(layer.data.shape) != shape:
                continue
            todo = changes.setdefault(id(layer), (layer, []))[1]
            for k in ids:
                todo += [erase_change(layer.data, rec.spec, f, k) for f in range(rec.frames.shape[0])]

    def _clear_strokes(self, ids: set[int] | None) -> None:
        """Remove the strokes of ``ids`` (all when None) from the scribble layers."""
        self._clearing_strokes = True
        try:
            self._remove_strokes(ids)
        finally:
            self._clearing_strokes = False

    def _remove_strokes(self, ids: set[int] | None) -> None:
        for layer in list(self.viewer.layers):
            if id(layer) not in self._links:
                continue
            role = layer.metadata.get(ROLE_KEY)
            if role in ("scribbles", "clicks"):
                if not len(layer.data):
                    continue
                obj = np.asarray(layer.features["object_id"]) if "object_id" in layer.features else None
                if ids is None or obj is None:
                    drop = set(range(len(layer.data)))
                else:
                    drop = {i for i, v in enumerate(obj) if int(v) in ids}
                if drop:
                    layer.selected_data = drop
                    layer.remove_selected()
                self._seen_count[id(layer)] = len(layer.data)
            elif role == "brush":
                data = layer.data
                if ids is None:
                    data[...] = 0
                else:
                    for k in ids:
                        data[data == k] = 0
                layer.refresh()
                for key in [key for key in self._brush_seen if key[0] == id(layer)]:
                    del self._brush_seen[key]


def _make_cleanup(viewer_ref, connected, bound_keys, hooked=(), widget_ref=None):
    """Cleanup run when the Qt widget is destroyed (holds no reference to it)."""

    def cleanup(*_args):
        if hooked:
            _remove_history_hooks(hooked, widget_ref)
        for emitter, cb in list(connected):
            try:
                emitter.disconnect(cb)
            except Exception:  # noqa: BLE001
                pass
        connected.clear()
        viewer = viewer_ref()
        if viewer is not None:
            for key, previous in list(bound_keys):
                try:
                    viewer.bind_key(key, previous, overwrite=True)
                except Exception:  # noqa: BLE001
                    pass
        bound_keys.clear()

    return cleanup
