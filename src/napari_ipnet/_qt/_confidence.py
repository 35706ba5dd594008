"""The confidence strip: one row of cells per object along the stack axis.

Each cell is a frame; its bar is as high as the engine's confidence in the object's
mask there (:meth:`Session.frame_confidence`), in the object's colour; frames below
:data:`LOW` get a red mark, frames the user annotated a white one on top. A click
on a cell asks to show that frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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
