"""The confidence strip: one row of cells per object along the stack axis.

Each cell is a frame; its bar is as high as the engine's confidence in the object's
mask there (:meth:`Session.frame_confidence`), in the object's colour; frames below
:data:`LOW` get a red mark, frames the user annotated a white one on top. A click
on a cell asks to show that frame.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
from qtpy.QtCore import QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

#: confidence under which a frame is marked (red) as worth a look
LOW = 0.5
ROW_HEIGHT = 10
_MAX_ROWS = 9  # more objects: the rows get thinner, the strip no taller


class ConfidenceStrip(QWidget):
    """Frame confidence per object, painted as a strip of cells (one per frame)."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[tuple[int, np.ndarray, np.ndarray]] = []  # (object, rgba, (T,) confidence)
        self._annotated: set[int] = set()
        self._current: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(ROW_HEIGHT)
        self.setToolTip(
            "How sure IPNet is of each frame's mask (one row per object; low bars marked "
            "red). White marks: frames you annotated. Click a frame to show it; "
            "'Next frame to check' jumps to the least confident one."
        )

    def set_rows(
        self,
        rows: Sequence[tuple[int, Sequence[float], Sequence[float]]],
        annotated: Iterable[int] = (),
        current: int | None = None,
    ) -> None:
        """Show ``rows`` of ``(object id, RGBA colour, (T,) confidence)``."""
        self._rows = [(int(k), np.asarray(c, float), np.asarray(v, float).reshape(-1)) for k, c, v in rows]
        self._annotated = {int(a) for a in annotated}
        self._current = current
        self.setFixedHeight(max(ROW_HEIGHT, ROW_HEIGHT * min(len(self._rows), _MAX_ROWS)))
        self.update()

    def set_current(self, frame: int | None) -> None:
        """Outline the frame shown in the viewer."""
        if frame != self._current:
            self._current = frame
            self.update()

    @property
    def n_frames(self) -> int:
        """Frames shown (0 when there is nothing to show)."""
        return int(self._rows[0][2].size) if self._rows else 0

    def confidence(self, object_id: int) -> np.ndarray | None:
        """The confidence shown for ``object_id`` (None if it has no row)."""
        return next((v.copy() for k, _c, v in self._rows if k == object_id), None)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(200, self.height())

    def frame_at(self, x: float) -> int | None:
        """The frame under the horizontal position ``x`` (None when empty)."""
        n = self.n_frames
        if not n or self.width() <= 0:
            return None
        return int(np.clip(int(x * n / self.width()), 0, n - 1))

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        pos = event.position() if hasattr(event, "position") else event.pos()
        frame = self.frame_at(pos.x())
        if frame is not None:
            self.frame_clicked.emit(frame)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(40, 40, 40))
            n = self.n_frames
            if not n:
                return
            w = self.width() / n
            h = self.height() / max(1, len(self._rows))
            for r, (_k, rgba, conf) in enumerate(self._rows):
                color = QColor.fromRgbF(*[float(c) for c in rgba[:3]])
                top = r * h
                for t in range(n):
                    c = float(np.clip(conf[t], 0.0, 1.0)) if t < conf.size else 0.0
                    bar = max(1.0, c * (h - 1))
                    painter.fillRect(QRectF(t * w, top + h - bar, max(1.0, w - 1), bar), color)
                    if c < LOW and t not in self._annotated:
                        painter.fillRect(QRectF(t * w, top + h - 2, max(1.0, w - 1), 2), QColor(255, 48, 48))
            for t in self._annotated:
                if 0 <= t < n:
                    painter.fillRect(QRectF(t * w, 0, max(1.0, w - 1), 2), Qt.GlobalColor.white)
            if self._current is not None and 0 <= self._current < n:
                painter.setPen(Qt.GlobalColor.white)
                painter.drawRect(QRectF(self._current * w, 0, max(1.0, w - 1), self.height() - 1))
        finally:
            painter.end()


class FrameNavigator:
    """Keeps the strip in step with the active session, and moves the viewer to frames.

    Parameters
    ----------
    viewer
        The napari viewer (its dims are moved).
    controller
        The :class:`~napari_ipnet.annotation.AnnotationController` (active session,
        confidence, the choice of the next frame, the status line).
    panel
        The sequence panel (where the viewer stands in a layer's data).
    strip
        The :class:`ConfidenceStrip` to paint.
    color_of
        ``color_of(object_id) -> RGBA``.
    """

    def __init__(self, viewer, controller, panel, strip: ConfidenceStrip, color_of: Callable[[int], object]) -> None:
        self.viewer = viewer
        self.controller = controller
        self.panel = panel
        self.strip = strip
        self.color_of = color_of
        self._annotated: set[int] = set()  # read from the session while no job runs

    def update(self) -> None:
        """Repaint the strip from the active session (live values while propagating)."""
        c = self.controller
        session = c.session
        if session is None or not session.object_ids:
            self.strip.set_rows([])
            return
        if c.worker is None:
            self._annotated = set(session.annotated_frames())
        rows = []
        for k in session.object_ids:
            conf = c.frame_confidence(k)
            if conf is not None:
                rows.append((k, self.color_of(k), conf))
        if rows or c.worker is None:
            self.strip.set_rows(rows, self._annotated, self.current_frame())

    def current_frame(self) -> int | None:
        """The frame of the active session's sequence the viewer shows (None: no session)."""
        rec = self.controller.active
        if rec is None or not self.controller.has_layer(rec.layer):
            return None
        pos = self.panel._viewer_position(rec.layer)
        return int(np.clip(round(float(pos[rec.spec.axis])), 0, rec.frames.shape[0] - 1))

    def show_current(self, *_args) -> None:
        """Outline the frame the viewer shows."""
        self.strip.set_current(self.current_frame())

    def show_frame(self, frame: int) -> None:
        """Move the viewer to ``frame`` of the active session's sequence."""
        rec = self.controller.active
        if rec is None or not self.controller.has_layer(rec.layer):
            return
        layer = rec.layer
        point = np.asarray(self.panel._viewer_position(layer), float)
        point[rec.spec.axis] = frame
        world = np.asarray(layer.data_to_world(point), float)
        offset = self.viewer.dims.ndim - world.size
        self.viewer.dims.set_point(offset + rec.spec.axis, world[rec.spec.axis])

    def next_frame(self) -> int | None:
        """Show the least confident frame not yet annotated, and say so; returns it (None: none)."""
        c = self.controller
        frame = c.next_frame_to_check(self.current_frame())
        if frame is None:
            c.set_status("Nothing to check: scribble on a frame and propagate first."
                         if c.session is None else "Every frame is annotated.")
            return None
        self.show_frame(frame)
        conf = c.frame_confidence()
        sure = f" (confidence {float(conf[frame]):.2f})" if conf is not None else ""
        c.set_status(f"Frame {frame} is the least sure{sure}: check it, and scribble a correction there.")
        return frame
