"""IPNet dock widget: scribble on a frame, segment it, propagate through the stack.

A thin view over :class:`napari_ipnet.annotation.AnnotationController`, which owns
the objects, the strokes of the open round, the job queue, the model and the undo
link with the output layer. This file builds the controls and wires them to it; the
panels and helpers live in their own files:

- ``_sequence_panel``: image / axis / output; ``_model_panel``: weights and device;
  ``_run_panel``: propagate, undo, progress and status; ``_session_panel``: save /
  open session files and autosave; ``_object_list``: the objects;
- ``_scribble_layers``: the layers strokes are drawn on; ``_confidence``: the
  confidence strip and the frame to check next; ``_colors``: object colours (and
  fitting them to the image under an object's first mask);
- ``_shortcuts``: the keyboard shortcuts; ``_viewer_link``: the connections to the
  viewer's events and their cleanup; ``_workers``: napari threads.

torch is imported only when a model is loaded or a session is created, so opening the
plugin menu stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from ..annotation import MAX_OBJECTS, STROKE_FEATURE, AnnotationController
from ..annotation.strokes import NEGATIVE_LABEL
from ..session_file import logged_strokes
from ._colors import fit_object_colors, layer_object_color
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
from ._shortcuts import SHORTCUTS, add_widget_shortcuts, bind_keys, shortcut_help, shortcut_keys
from ._viewer_link import ViewerLink
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
        self.link = ViewerLink(viewer)  # every connection to the viewer, undone on cleanup
        self._view_fitted = False  # the view is reset once, when the docked widget first shows
        ctrl = self.controller = AnnotationController(
            has_layer=lambda layer: any(layer is x for x in viewer.layers), runner=napari_runner,
        )
        self.sequence_panel = SequencePanel(viewer, ctrl)
        self.model_panel = ModelPanel(ctrl)
        ctrl.output_for = self.sequence_panel.output_for
        ctrl.current_output = lambda panel=self.sequence_panel: panel.output_layer
        ctrl.request_model = self.model_panel.load_model
        self.scribbles = ScribbleLayers(viewer, ctrl, self.sequence_panel, self._object_color, self.link.connect)
        self.session_panel = SessionPanel(viewer, ctrl, self.sequence_panel)
        self._build_ui()
        self._wire_controller()
        self.link.watch(self.sequence_panel, self.scribbles, self.navigator, ctrl)
        self.destroyed.connect(self.link.cleanup_callback(ctrl.hooked, ctrl.self_ref, self.session_panel.files.close))
        self.link.bound_keys.extend(bind_keys(viewer, self))
        self.sequence_panel._refresh_layers()
        self._refresh_objects()
        self._update_buttons()

    # ================================================================== UI
    def _build_ui(self) -> None:
        keys = shortcut_keys()
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
        add_widget_shortcuts(self)  # the same shortcuts while the widget itself has the keyboard focus

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
        self.session_panel.files.opened.connect(self._paint_opened_strokes)

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

    def close(self) -> bool:  # noqa: D102
        self.cleanup()
        return super().close()

    def cleanup(self) -> None:
        """Write pending autosaves, cancel work, unbind shortcuts, disconnect from the viewer."""
        self.session_panel.close_files()
        self.controller.close()
        self.link.cleanup()

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
        return layer_object_color(self.output_layer, k)

    def _refresh_objects(self) -> None:
        c = self.controller
        self.object_list.show_objects(c.objects, c.current, c.empty_frames(), self._object_color)
        self.scribbles.apply_stroke_style()
        self._update_confidence()

    def _interaction_done(self, frame: int) -> None:
        self._fit_object_colors(frame)
        self.interaction_done.emit(frame)

    def _fit_object_colors(self, frame: int) -> None:
        """A first mask that hardly shows on the image gets a colour that stands out (``_colors``).

        Only in output layers the widget made (a layer the user chose keeps its
        colours); the strokes and the object list follow the layer's colours.
        """
        rec, out = self.controller.active, self.output_layer
        if rec is None or out is None or out.metadata.get(ROLE_KEY) != "output":
            return
        placed = fit_object_colors(out, rec.layer, out.data[rec.spec.index(frame)], rec.frames[frame],
                                   rec.session.object_ids, self.controller.objects)
        if placed is not None:
            for k, color in placed.items():
                self.scribbles.recolor(k, color)
            self._refresh_objects()

    def _paint_opened_strokes(self, rec) -> None:
        """The strokes of an opened session file, back on its image (as brush paint)."""
        self.scribbles.paint_logged(rec.layer, rec.spec, logged_strokes(rec.session))

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

