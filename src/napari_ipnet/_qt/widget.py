"""IPNet dock widget: scribble on a frame, segment it, propagate through the stack.

A thin view over :class:`napari_ipnet.annotation.AnnotationController`, which owns
the objects, the strokes of the open round, the job queue, the model and the undo
link with the output layer. This file puts the panels together and wires them to it
(their controls and methods are also the widget's attributes: ``w.axis_combo``,
``w.set_axis``); the panels and helpers live in their own files:

- panels, top to bottom: ``_sequence_panel``: image / axis / output;
  ``_scribble_panel``: Freehand / Brush / Clicks and negative strokes;
  ``_objects_panel``: the object list (``_object_list``), the confidence strip and
  Add / Reset; ``_run_panel``: propagate, undo, progress and status;
  ``_session_panel``: save / open session files and autosave; ``_model_panel``:
  weights and device;
- ``_scribble_layers``: the layers strokes are drawn on; ``_confidence``: the
  confidence strip and the frame to check next; ``_colors``: object colours (and
  fitting them to the image under an object's first mask);
- ``_shortcuts``: the keyboard shortcuts; ``_viewer_link``: the connections to the
  viewer's events and their cleanup; ``_workers``: napari threads and notifications.

torch is imported only when a model is loaded or a session is created, so opening the
plugin menu stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..annotation import MAX_OBJECTS, STROKE_FEATURE, AnnotationController
from ..session_file import logged_strokes
from ._colors import fit_object_colors, layer_object_color
from ._confidence import FrameNavigator
from ._model_panel import (
    DEVICE_CHOICES,
    MODEL_CHOICES,
    THREADS_ENV,
    ModelPanel,
    cpu_threads_for_gui,
)
from ._objects_panel import ObjectsPanel, new_name
from ._run_panel import RunPanel
from ._scribble_layers import NEGATIVE_COLOR, ScribbleLayers
from ._scribble_panel import ScribblePanel
from ._sequence_panel import AXIS_KEY, ENDING_TOOLTIP, ROLE_KEY, SOURCE_KEY, SequencePanel
from ._session_panel import SessionPanel
from ._shortcuts import (
    SHORTCUTS,
    add_widget_shortcuts,
    bind_keys,
    help_label,
    shortcut_help,
    shortcut_keys,
)
from ._viewer_link import ViewerLink
from ._workers import napari_runner, show_job_error, show_message

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
        self.scribble_panel = ScribblePanel(keys)
        self.objects_panel = ObjectsPanel(keys)
        self.navigator = FrameNavigator(
            self.viewer, self.controller, self.sequence_panel, self.objects_panel.confidence_strip, self._object_color
        )
        self.run_panel = RunPanel(keys, self.controller.status_text)
        lay = QVBoxLayout(self)
        for panel in (self.sequence_panel, self.scribble_panel, self.objects_panel, self.run_panel,
                      self.session_panel, self.model_panel):
            lay.addWidget(panel)
        lay.addWidget(help_label())
        lay.addStretch(1)
        self.setToolTip("Interactive segmentation (IPNet)\n" + shortcut_help())

        self.sequence_panel.output_changed.connect(self._refresh_objects)
        self.scribble_panel.kind_chosen.connect(self.activate_scribbles)
        self.scribble_panel.negative_toggled.connect(self.set_negative)
        self.objects_panel.object_chosen.connect(self._on_object_chosen)
        self.objects_panel.object_edited.connect(self._on_object_edited)
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
        c.status.connect(self.run_panel.show_status)
        c.message.connect(show_message)
        c.job_failed.connect(show_job_error)
        c.objects_changed.connect(self._refresh_objects)
        c.interaction_done.connect(self._interaction_done)
        c.propagation_started.connect(self._propagation_started)
        c.frame_done.connect(self._frame_done)
        c.progress.connect(self.run_panel.show_progress)
        c.propagation_finished.connect(self._propagation_finished)
        c.confidence_changed.connect(self.navigator.update)
        c.busy_changed.connect(self._update_buttons)
        c.strokes_undone.connect(self.scribbles.take_off)
        c.strokes_redone.connect(self.scribbles.draw_again)
        self.session_panel.files.opened.connect(self._paint_opened_strokes)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        """Fit the image to the canvas once docking has narrowed it (else its right edge is cut off)."""
        super().showEvent(event)
        if not self._view_fitted:
            self._view_fitted = True
            QTimer.singleShot(0, self.link.fit_view)

    def close(self) -> bool:  # noqa: D102
        self.cleanup()
        return super().close()

    def cleanup(self) -> None:
        """Write pending autosaves, cancel work, unbind shortcuts, disconnect from the viewer."""
        self.session_panel.close_files()
        self.controller.close()
        self.link.cleanup()

    # ================================================================== scribbles and objects
    def _object_color(self, k: int) -> np.ndarray:
        """RGBA colour of object ``k`` as the output layer shows it (its own colours if chosen)."""
        return layer_object_color(self.output_layer, k)

    def _refresh_objects(self) -> None:
        c = self.controller
        self.objects_panel.show_objects(c.objects, c.current, c.empty_frames(), self._object_color)
        self.scribbles.apply_stroke_style()
        self.navigator.update()

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

    def select_object(self, k: int) -> None:
        """Select object ``k``."""
        self.controller.select_object(k)

    def _on_object_chosen(self, k: int) -> None:
        self.controller.current = k
        self.scribbles.apply_stroke_style()

    def _on_object_edited(self, k: int, name: str) -> None:
        name = new_name(self.controller.objects, k, name)
        if name is not None:
            self.rename_object(k, name)

    def set_negative(self, negative: bool) -> None:
        """Draw negative (background) strokes from now on, or positive ones."""
        self.controller.negative = bool(negative)
        self.scribble_panel.show_negative(self.controller.negative)
        self.scribbles.apply_stroke_style()

    def toggle_negative(self) -> None:
        """Switch between positive and negative strokes."""
        self.set_negative(not self.controller.negative)

    # ================================================================== model and sessions
    model = property(lambda self: self.controller.model, doc="The IPNetModel in use (None: not loaded).")
    model_label_text = property(lambda self: self.controller.model_name)
    session = property(lambda self: self.controller.session, doc="Session of the last interaction.")
    sessions = property(lambda self: self.controller.sessions, doc="Every session.")
    last_propagation_seconds = property(lambda self: self.controller.last_propagation_seconds)
    last_round_frames = property(lambda self: self.controller.last_round_frames)

    # ================================================================== jobs
    def _update_buttons(self, *_args) -> None:
        c = self.controller
        busy = not c.is_idle()
        self.run_panel.set_busy(busy, c.propagating)
        self.objects_panel.set_busy(busy)
        self.load_btn.setEnabled(not c.loading)
        self.busy_changed.emit(busy)

    def _propagation_started(self, start: int, total: int) -> None:
        self.run_panel.propagation_started(start, total, self.cancel)
        self._update_buttons()

    def _frame_done(self, t: int) -> None:
        self.frame_done.emit(t)
        self.run_panel.frame_done()  # last: its update may let the queued end of the job run

    def _propagation_finished(self, frames, cancelled: bool) -> None:
        self.run_panel.propagation_finished()
        self.propagation_finished.emit(frames, cancelled)

    # ================================================================== confidence
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


#: the panels' controls, properties and methods, and the controller's methods the widget
#: offers as they are, as the widget's own attributes (``w.axis_combo``, ``w.axis``,
#: ``w.set_axis``, ``w.propagate``): the widget's attribute holding the panel, its class
#: (for the docstrings) and the names
_FORWARDED = [
    ("sequence_panel", SequencePanel, {
        "image_combo", "axis_combo", "channel_combo", "output_combo", "ending_check", "sequence_label",
        "image_layer", "axis", "channel", "output_layer", "objects_may_end",
        "set_image_layer", "set_axis", "set_channel", "set_output_layer", "ensure_output", "output_name",
        "axis_may_end_default", "_on_image_changed",
    }),
    ("scribbles", ScribbleLayers, {"scribble_layer", "clicks_layer", "brush_layer", "activate_scribbles"}),
    ("scribble_panel", ScribblePanel, {"freehand_btn", "brush_btn", "clicks_btn", "negative_check"}),
    ("objects_panel", ObjectsPanel, {"object_list", "confidence_strip", "add_btn", "reset_btn", "reset_all_btn"}),
    ("run_panel", RunPanel, {
        "propagate_btn", "cancel_btn", "undo_btn", "next_btn", "progress_label", "status_label", "_pbar",
    }),
    ("session_panel", SessionPanel, {"save_btn", "open_btn", "save_session", "open_session", "autosave_label"}),
    ("model_panel", ModelPanel, {"model_combo", "device_combo", "load_btn", "model_status", "load_model"}),
    ("controller", AnnotationController, {
        "add_object", "rename_object", "set_model", "is_idle", "propagate", "cancel",
    }),
]
for _panel, _cls, _names in _FORWARDED:
    for _name in sorted(_names):
        setattr(IPNetWidget, _name, property(lambda self, p=_panel, n=_name: getattr(getattr(self, p), n),
                                             doc=getattr(getattr(_cls, _name, None), "__doc__", None)))
