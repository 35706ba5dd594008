"""The object list of the dock widget: as tall as its objects, within limits."""

from __future__ import annotations

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QListWidget, QSizePolicy

#: rows the list asks room for: at least the first number, at most the second; past
#: that (or when the dock is short of room) it scrolls
OBJECT_ROWS = (4, 16)


class ObjectList(QListWidget):
    """A list whose size hint grows with its rows, from ``OBJECT_ROWS[0]`` to ``OBJECT_ROWS[1]``.

    The layout gives it that height when the dock has room, and may shrink it to
    the minimum (then it scrolls) when the dock is short.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def _rows_height(self, rows: int) -> int:
        row = max(self.sizeHintForRow(0), self.fontMetrics().height() + 2)
        return rows * row + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:  # noqa: D102
        rows = min(max(self.count(), OBJECT_ROWS[0]), OBJECT_ROWS[1])
        return QSize(super().sizeHint().width(), self._rows_height(rows))

    def minimumSizeHint(self) -> QSize:  # noqa: D102
        return QSize(super().minimumSizeHint().width(), self._rows_height(OBJECT_ROWS[0]))
