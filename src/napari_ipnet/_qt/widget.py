"""IPNet dock widget: scribble on a frame, segment it, propagate through the stack.

A thin view over :class:`napari_ipnet.annotation.AnnotationController`, which owns
the objects, the strokes of the open round, the job queue, the model and the undo
link with the output layer. This file builds the controls and wires them to it; the
panels live in their own files (``_sequence_panel``: image / axis / output,
``_model_panel``: weights and device, ``_run_panel``: propagate, undo, progress and
status, ``_session_panel``: save / open session files
and autosave, ``_scribble_layers``: the layers strokes are drawn on, ``_confidence``:
the confidence strip, ``_workers``: napari threads).

torch is imported only when a model is loaded or a session is created, so opening the
plugin menu stays fast.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..annotation import MAX_OBJECTS, STROKE_FEATURE, AnnotationController, remove_history_hooks
from ..annotation.strokes import NEGATIVE_LABEL
from ._colors import (
    LOW_CONTRAST,
    contrast,
    label_colormap_with,
    most_contrasting,
    object_color,
    shown_color,
)
from ._confidence import ConfidenceStrip, FrameNavigator
from ._model_panel import (
    DEVICE_CHOICES,
    MODEL_CHOICES,
    THREADS_ENV,
    ModelPanel,
    cpu_threads_for_gui,
)
from ._object_list import ObjectList
from ._run_panel import RunPanel, button
from ._scribble_layers import NEGATIVE_COLOR, ScribbleLayers
from ._sequence_panel import AXIS_KEY, ENDING_TOOLTIP, ROLE_KEY, SOURCE_KEY, SequencePanel
from ._session_panel import SessionPanel
from ._workers import napari_runner, show_job_error

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "AXIS_KEY",
    "DEVICE_CHOICES",
    "ENDING_TOOLTIP",
    "MAX_OBJECTS",
    "MODEL_CHOICES",
    "NEGATIVE_COLOR",
    "ROLE_KEY",
    "SHORTCUTS",
    "SOURCE_KEY",
    "STROKE_FEATURE",
    "THREADS_ENV",
    "IPNetWidget",
    "cpu_threads_for_gui",
    "shortcut_help",
]

COLORS_KEY = "napari_ipnet_colors"  # output layer metadata: object -> RGBA chosen for its first mask

#: (napari key, Qt key sequence, action, description). None of these clashes with
#: napari's default viewer or layer shortcuts (napari 0.9: plain digits switch layer
#: modes, Alt+F/V/L/P/W/H/D open menus, Alt+S/C/T take screenshots / debug).
SHORTCUTS: list[tuple[str, str, str, str]] = [
    ("Shift-Enter", "Shift+Return", "propagate", "propagate the current round through the stack"),
    ("Shift-Escape", "Shift+Escape", "cancel", "cancel the running propagation (keeps finished frames)"),
    ("Alt-A", "Alt+A", "add_object", "add a new object and select it"),
    ("Alt-N", "Alt+N", "toggle_negative", "toggle negative (background) strokes"),
    ("Alt-Z", "Alt+Z", "undo", "undo the last IPNet result in the output Labels layer"),
    ("Alt-K", "Alt+K", "next_frame_to_check", "show the least confident frame not yet annotated"),
] + [
    (f"Alt-{k}", f"Alt+{k}", f"select_{k}", f"select object {k}") for k in range(1, 10)
]


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


class IPNetWidget(QWidget):
    """Dock widget: interactive video object segmentation with IPNet.

    Programmatic use (tests, scripts)::

        w = IPNetWidget(viewer)
        w.set_model(model)               # or let it load the selected weights
        w.set_image_layer(layer); w.set_axis(0)
        shapes = w.scribble_layer()      # draw paths on it: each one runs the network
        w.propagate()                    # worker thread; results appear frame by frame
        w.save_session("job.ipnet")      # and later, in another viewer: w.open_session("job.ipnet")
    """

    interaction_done = Signal(int)  # frame
    frame_done = Signal(int)  # frame written during propagation
    propagation_finished = Signal(object, bool)  # frames, cancelled
    busy_changed = Signal(bool)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer = napari_viewer
        self._connected: list[tuple] = []  # (emitter, callback) to disconnect
        self._bound_keys: list[tuple] = []
        self._view_fitted = False  # the view is reset once, when the docked widget first shows
        ctrl = self.controller = AnnotationController(
            has_layer=lambda layer: any(layer is x for x in viewer.layers), runner=napari_runner,
        )
        self.sequence_panel = SequencePanel(viewer, ctrl)
        self.model_panel = ModelPanel(ctrl)
        ctrl.output_for = self.sequence_panel.output_for
        ctrl.current_output = lambda panel=self.sequence_panel: panel.output_layer
        ctrl.request_model = self.model_panel.load_model
        self.scribbles = ScribbleLayers(viewer, ctrl, self.sequence_panel, self._object_color, self._connect)
        self.session_panel = SessionPanel(viewer, ctrl, self.sequence_panel)
        self._build_ui()
        self._wire_controller()
        self._connect_viewer()
        self._bind_keys()
        self.sequence_panel._refresh_layers()
        self._refresh_objects()
        self._update_buttons()

    # ================================================================== UI
    def _build_ui(self) -> None:
        keys = {action: key.replace("-", "+") for key, _q, action, _d in SHORTCUTS}
        lay = QVBoxLayout(self)
        lay.addWidget(self.sequence_panel)

        box = QGroupBox("Scribbles")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.freehand_btn = button("Freehand", "Shapes layer in freehand path mode: each stroke you release runs "
                                    "IPNet on its frame. Polygons, rectangles and ellipses are filled.")
        self.brush_btn = button("Brush", f"Labels layer painted with the brush: label k scribbles object k, label "
                                 f"{NEGATIVE_LABEL} is background (negative). Each finished stroke runs IPNet.")
        self.clicks_btn = button("Clicks", "Points layer: each click is a small disk scribble")
        for b, kind in ((self.freehand_btn, "shapes"), (self.brush_btn, "brush"), (self.clicks_btn, "clicks")):
            row.addWidget(b)
            b.clicked.connect(lambda _=False, kind=kind: self.activate_scribbles(kind))
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
        self.object_list.setToolTip("Objects (label values of the output layer, colours from it). Select with "
                                    "Alt+1..Alt+9 or a click; double-click to rename.")
        v.addWidget(self.object_list)
        self.confidence_strip = ConfidenceStrip()
        self.navigator = FrameNavigator(
            self.viewer, self.controller, self.sequence_panel, self.confidence_strip, self._object_color
        )
        v.addWidget(self.confidence_strip)
        row = QHBoxLayout()
        self.add_btn = button("Add", f"Add an object [{keys['add_object']}]")
        self.reset_btn = button("Reset object", "Forget the selected object: its results, strokes and memory")
        self.reset_all_btn = button("Reset all", "Forget every object IPNet manages (other labels are kept)")
        for b in (self.add_btn, self.reset_btn, self.reset_all_btn):
            row.addWidget(b)
        v.addLayout(row)
        lay.addWidget(box)

        self.run_panel = RunPanel(keys, self.controller.status_text)
        lay.addWidget(self.run_panel)

        lay.addWidget(self.session_panel)
        lay.addWidget(self.model_panel)
        help_label = QLabel("Shortcuts: hover for details")
        help_label.setToolTip(shortcut_help())
        lay.addWidget(help_label)
        lay.addStretch(1)
        self.setToolTip("Interactive segmentation (IPNet)\n" + shortcut_help())

        self.sequence_panel.output_changed.connect(self._refresh_objects)
        self.negative_check.toggled.connect(self.set_negative)
        self.object_list.currentRowChanged.connect(self._on_object_row)
        self.object_list.itemChanged.connect(self._on_object_renamed)
        self.add_btn.clicked.connect(lambda: self.add_object())
        self.reset_btn.clicked.connect(lambda: self.reset_object(self.controller.current))
        self.reset_all_btn.clicked.connect(lambda: self.reset_all())
        self.propagate_btn.clicked.connect(lambda: self.propagate())
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        self.undo_btn.clicked.connect(lambda: self.undo())
        self.next_btn.clicked.connect(lambda: self.next_frame_to_check())
        self.confidence_strip.frame_clicked.connect(self.show_frame)
        # the same shortcuts while the widget itself has the keyboard focus
        for _k, qkey, action, _d in SHORTCUTS:
            sc = QShortcut(QKeySequence(qkey), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(self._action(action))

    def _wire_controller(self) -> None:
        c = self.controller
        c.status.connect(self._show_status)
        c.message.connect(self._show_message)
        c.job_failed.connect(show_job_error)
        c.objects_changed.connect(self._refresh_objects)
        c.interaction_done.connect(self._interaction_done)
        c.propagation_started.connect(self._propagation_started)
        c.frame_done.connect(self._frame_done)
        c.progress.connect(self._show_progress)
        c.propagation_finished.connect(self._propagation_finished)
        c.confidence_changed.connect(self._update_confidence)
        c.busy_changed.connect(self._update_buttons)
        c.model_set.connect(self._model_set)
        c.strokes_undone.connect(self.scribbles.take_off)
        c.strokes_redone.connect(self.scribbles.draw_again)

    def _show_status(self, text: str) -> None:
        self.run_panel.show_status(text)

    @staticmethod
    def _show_message(level: str, text: str) -> None:
        {"info": show_info, "warning": show_warning}.get(level, show_error)(text)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Fit the image to the canvas once docking has narrowed it (else its right edge is cut off)."""
        super().showEvent(event)
        if not self._view_fitted:
            self._view_fitted = True
            QTimer.singleShot(0, self._fit_view)

    def _fit_view(self) -> None:
        try:
            if len(self.viewer.layers):
                self.viewer.reset_view()
        except (RuntimeError, AttributeError):  # viewer or widget already closed
            pass

    def _action(self, action: str):
        ref = weakref.ref(self)

        def run(*_args):
            w = ref()
            if w is None:
                return
            if action.startswith("select_"):
                w.select_object(int(action.split("_")[1]))
            elif action == "toggle_negative":
                w.set_negative(not w.controller.negative)
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

    def _connect(self, emitter, callback) -> None:
        emitter.connect(callback)
        self._connected.append((emitter, callback))

    def _connect_viewer(self) -> None:
        ev = self.viewer.layers.events
        panel = self.sequence_panel
        self._connect(ev.inserted, self._on_layer_inserted)
        self._connect(ev.removed, self._on_layer_removed)
        self._connect(ev.moved, panel._refresh_layers)
        self._connect(self.viewer.dims.events.current_step, panel._update_sequence_label)
        self._connect(self.viewer.dims.events.current_step, self.navigator.show_current)
        self._connect(self.viewer.dims.events.axis_labels, panel._on_axis_labels_changed)
        for layer in self.viewer.layers:
            self._watch_layer(layer)
        self.destroyed.connect(_make_cleanup(
            weakref.ref(self.viewer), self._connected, self._bound_keys, self.controller.hooked,
            self.controller.self_ref, self.session_panel.files.close,
        ))

    def close(self) -> bool:  # noqa: D102
        self.cleanup()
        return super().close()

    def cleanup(self) -> None:
        """Write pending autosaves, cancel work, unbind shortcuts, disconnect from the viewer."""
        self.session_panel.close_files()
        self.controller.close()
        _make_cleanup(weakref.ref(self.viewer), self._connected, self._bound_keys)()

    # ================================================================== layers
    def _watch_layer(self, layer) -> None:
        self._connect(layer.events.name, self.sequence_panel._refresh_layers)
        if isinstance(layer, Image) and hasattr(layer.events, "axis_labels"):
            self._connect(layer.events.axis_labels, self.sequence_panel._on_axis_labels_changed)
        role = layer.metadata.get(ROLE_KEY) if isinstance(layer.metadata, dict) else None
        if role in ("scribbles", "clicks", "brush") and not self.scribbles.is_linked(layer):
            source = layer.metadata.get(SOURCE_KEY)
            image = next((x for x in self.viewer.layers if isinstance(x, Image) and x.name == source), None)
            if image is not None:
                self.scribbles.link(layer, image)

    def _on_layer_inserted(self, event) -> None:
        self._watch_layer(event.value)
        self.sequence_panel._refresh_layers()

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        for emitter, cb in list(self._connected):
            if getattr(emitter, "source", None) is layer:
                try:
                    emitter.disconnect(cb)
                except Exception:  # noqa: BLE001
                    pass
                self._connected.remove((emitter, cb))
        self.scribbles.forget(layer)
        self.controller.layer_removed(layer)
        if layer is self.sequence_panel._output:
            self.sequence_panel._output = None
        self.sequence_panel._refresh_layers()

    # the sequence panel's choices, as the widget's API
    image_layer = property(lambda self: self.sequence_panel.image_layer, doc="The image layer chosen (None: none).")
    axis = property(lambda self: self.sequence_panel.axis, doc="The axis to propagate along.")
    channel = property(lambda self: self.sequence_panel.channel, doc="Colour channel used (None: colour).")
    output_layer = property(lambda self: self.sequence_panel.output_layer, doc="The output Labels layer.")
    objects_may_end = property(lambda self: self.sequence_panel.objects_may_end, doc="'Objects may end'.")

    # ================================================================== scribbles and objects
    def scribble_layer(self, image=None):
        """The freehand Shapes scribble layer of ``image`` (created if needed)."""
        return self.scribbles.scribble_layer(image)

    def clicks_layer(self, image=None):
        """The Points scribble layer of ``image`` (created if needed)."""
        return self.scribbles.clicks_layer(image)

    def brush_layer(self, image=None):
        """The brush Labels scribble layer of ``image`` (created if needed)."""
        return self.scribbles.brush_layer(image)

    def activate_scribbles(self, kind: str = "shapes") -> None:
        """Create (if needed), select and arm a scribble layer: shapes, brush or clicks."""
        self.scribbles.activate_scribbles(kind)

    def _object_color(self, k: int) -> np.ndarray:
        """RGBA colour of object ``k`` as the output layer shows it (its own colours if chosen)."""
        out = self.output_layer
        if out is None:
            return np.asarray(object_color(k), dtype=float)
        return np.asarray(out.colormap.map(np.asarray([k], dtype=np.int64)), dtype=float).reshape(-1)[:4]

    def _refresh_objects(self) -> None:
        c = self.controller
        self.object_list.show_objects(c.objects, c.current, c.empty_frames(), self._object_color)
        self.scribbles.apply_stroke_style()
        self._update_confidence()

    def _interaction_done(self, frame: int) -> None:
        self._fit_object_colors(frame)
        self.interaction_done.emit(frame)

    def _fit_object_colors(self, frame: int) -> None:
        """Give an object whose first mask hardly shows on the image a colour that stands out.

        Once per object, on its first mask, in output layers the widget made (a layer
        the user chose keeps its colours): when the object's colour is too close to the
        mean colour the image shows under the mask, the palette colour with the largest
        contrast there (and not shown by another object) replaces it. The strokes and
        the object list follow the layer's colours.
        """
        rec, out = self.controller.active, self.output_layer
        if rec is None or out is None or out.metadata.get(ROLE_KEY) != "output":
            return
        placed = out.metadata.setdefault(COLORS_KEY, {})
        region = np.asarray(out.data[rec.spec.index(frame)])
        changed = False
        for k in rec.session.object_ids:
            mask = region == k
            if k in placed or not mask.any():
                continue
            shown = shown_color(rec.layer, np.asarray(rec.frames[frame])[mask])
            color = self._object_color(k)
            if shown is not None and contrast(color[:3], shown) < LOW_CONTRAST:
                others = {int(j) for j in self.controller.objects if j != k}
                color = object_color(most_contrasting(shown, exclude=others))
                changed = True
            placed[int(k)] = np.asarray(color, float).tolist()
        if changed:
            out.colormap = label_colormap_with(placed)
            for k, color in placed.items():
                self.scribbles.recolor(k, color)
            self._refresh_objects()

    objects = property(lambda self: dict(self.controller.objects), doc="Object id (label value) -> name.")
    current_object = property(lambda self: self.controller.current, doc="The selected object.")

    def add_object(self, name: str | None = None) -> int | None:
        """Add an object (next free label value) and select it."""
        return self.controller.add_object(name)

    def select_object(self, k: int) -> None:
        """Select object ``k``."""
        self.controller.select_object(k)

    def rename_object(self, k: int, name: str) -> None:
        """Rename object ``k``."""
        self.controller.rename_object(k, name)

    def _on_object_row(self, row: int) -> None:
        item = self.object_list.item(row)
        if item is not None:
            self.controller.current = int(item.data(Qt.ItemDataRole.UserRole))
            self.scribbles.apply_stroke_style()

    def _on_object_renamed(self, item) -> None:
        k, name = ObjectList.name_in(item)
        if name and name != self.controller.objects.get(k):
            self.rename_object(k, name)

    def set_negative(self, negative: bool) -> None:
        """Draw negative (background) strokes from now on, or positive ones."""
        self.controller.negative = bool(negative)
        if self.negative_check.isChecked() != self.controller.negative:
            self.negative_check.blockSignals(True)
            self.negative_check.setChecked(self.controller.negative)
            self.negative_check.blockSignals(False)
        self.scribbles.apply_stroke_style()

    def toggle_negative(self) -> None:
        """Switch between positive and negative strokes."""
        self.set_negative(not self.controller.negative)

    # ================================================================== model
    model = property(lambda self: self.controller.model, doc="The IPNetModel in use (None: not loaded).")
    model_label_text = property(lambda self: self.controller.model_name)

    def set_model(self, model, name: str | None = None) -> None:
        """Use ``model`` (an IPNetModel); existing sessions restart (results are kept)."""
        self.controller.set_model(model, name)

    def _model_set(self, model) -> None:
        if getattr(getattr(model, "device", None), "type", None) == "cpu":
            import torch

            torch.set_num_threads(cpu_threads_for_gui())
        uses_flag = bool(getattr(model, "uses_objects_may_end", False))
        self.ending_check.setEnabled(uses_flag)
        self.ending_check.setToolTip(ENDING_TOOLTIP if uses_flag else "This model does not tell the two cases apart.")

    def load_model(self) -> None:
        """Load the weights chosen in the widget (in a worker thread)."""
        self.model_panel.load_model()

    session = property(lambda self: self.controller.session, doc="Session of the last interaction.")
    sessions = property(lambda self: self.controller.sessions, doc="Every session.")
    last_propagation_seconds = property(lambda self: self.controller.last_propagation_seconds)
    last_round_frames = property(lambda self: self.controller.last_round_frames)

    # ================================================================== jobs
    def is_idle(self) -> bool:
        """No job running or waiting (the model may still be loading)."""
        return self.controller.is_idle()

    def _update_buttons(self, *_args) -> None:
        c = self.controller
        busy = not c.is_idle()
        self.run_panel.set_busy(busy, c.propagating)
        self.reset_btn.setEnabled(not busy)
        self.reset_all_btn.setEnabled(not busy)
        self.load_btn.setEnabled(not c.loading)
        self.busy_changed.emit(busy)

    def propagate(self) -> None:
        """Propagate the last scribbled frame through the stack (queued if busy)."""
        self.controller.propagate()

    def cancel(self) -> None:
        """Stop the running propagation after the current frame; drop queued propagations."""
        self.controller.cancel()

    def _propagation_started(self, start: int, total: int) -> None:
        self.run_panel.propagation_started(start, total, self.cancel)
        self._update_buttons()

    def _frame_done(self, t: int) -> None:
        self.frame_done.emit(t)
        self.run_panel.frame_done()  # last: its update may let the queued end of the job run

    def _show_progress(self, done: int, total: int, left: float) -> None:
        self.run_panel.show_progress(done, total, left)

    def _propagation_finished(self, frames, cancelled: bool) -> None:
        self.run_panel.propagation_finished()
        self.propagation_finished.emit(frames, cancelled)

    # ================================================================== confidence
    def _update_confidence(self, *_args) -> None:
        self.navigator.update()

    def show_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the active session's sequence."""
        self.navigator.show_frame(frame)

    def next_frame_to_check(self) -> int | None:
        """Show the least confident frame not yet annotated; returns it (None: none)."""
        return self.navigator.next_frame()

    # ================================================================== undo / reset
    def undo(self) -> None:
        """Undo the last write to the output layer (one interaction or one round)."""
        self.controller.undo(self.output_layer)

    def reset_object(self, k: int | None = None) -> None:
        """Forget object ``k`` (selected one by default): results, strokes, session memory."""
        k = self.controller.current if k is None else int(k)
        if self.controller.reset_object(k):
            self.scribbles.clear_strokes({k})

    def reset_all(self) -> None:
        """Forget every object IPNet manages; other labels of the output layer are kept."""
        if self.controller.reset_all():
            self.scribbles.clear_strokes(None)


#: the panels' controls and methods, as the widget's own attributes (``w.axis_combo``, ``w.set_axis``)
_PANEL_NAMES = {
    "image_combo", "axis_combo", "channel_combo", "output_combo", "ending_check", "sequence_label",
    "set_image_layer", "set_axis", "set_channel", "set_output_layer", "ensure_output", "output_name",
    "axis_may_end_default", "_on_image_changed",
}
_MODEL_NAMES = {"model_combo", "device_combo", "load_btn", "model_status"}
_RUN_NAMES = {"propagate_btn", "cancel_btn", "undo_btn", "next_btn", "progress_label", "status_label", "_pbar"}
_SESSION_NAMES = {"save_btn", "open_btn", "save_session", "open_session", "autosave_label"}
for _name in sorted(_PANEL_NAMES):
    setattr(IPNetWidget, _name, property(lambda self, n=_name: getattr(self.sequence_panel, n)))
for _name in sorted(_MODEL_NAMES):
    setattr(IPNetWidget, _name, property(lambda self, n=_name: getattr(self.model_panel, n)))
for _name in sorted(_RUN_NAMES):
    setattr(IPNetWidget, _name, property(lambda self, n=_name: getattr(self.run_panel, n)))
for _name in sorted(_SESSION_NAMES):
    setattr(IPNetWidget, _name, property(lambda self, n=_name: getattr(self.session_panel, n)))


def _make_cleanup(viewer_ref, connected, bound_keys, hooked=(), ctrl_ref=None, flush=None):
    """Cleanup run when the Qt widget is destroyed (holds no reference to it)."""

    def cleanup(*_args):
        if flush is not None:
            try:
                flush()  # the pending autosaves
            except Exception:  # noqa: BLE001
                pass
        if hooked:
            remove_history_hooks(hooked, ctrl_ref)
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
