"""The object list of the dock widget: as tall as its objects, within limits."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QSizePolicy

from ..annotation.results import frame_ranges, frames_text

EMPTY_MARK = "  [empty: "  # frames where the object has no mask, after its name

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

    def show_objects(
        self, objects: dict[int, str], current: int, empty: dict[int, set[int]], color_of: Callable[[int], object]
    ) -> None:
        """List ``objects`` (id -> name) in their colours, marking where they are empty."""
        self.blockSignals(True)
        self.clear()
        for k in sorted(objects):
            text = f"{k}: {objects[k]}"
            if empty.get(k):
                text += f"{EMPTY_MARK}{frame_ranges(empty[k])}]"
            item = QListWidgetItem(text)
            if empty.get(k):
                item.setToolTip(f"Object {k} has no mask on {frames_text(empty[k])} after the last "
                                "interaction or propagation there: scribble it on one of them.")
            item.setData(Qt.ItemDataRole.UserRole, k)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            pix = QPixmap(12, 12)
            pix.fill(QColor.fromRgbF(*[float(x) for x in list(color_of(k))[:3]]))
            item.setIcon(QIcon(pix))
            self.addItem(item)
            if k == current:
                self.setCurrentItem(item)
        self.blockSignals(False)
        self.updateGeometry()  # the size hint follows the objects

    @staticmethod
    def name_in(item) -> tuple[int, str]:
        """(object id, name) of an edited row (the "[empty: ...]" mark is not part of the name)."""
        k = int(item.data(Qt.ItemDataRole.UserRole))
        text = item.text()
        name = text[len(f"{k}: "):] if text.startswith(f"{k}: ") else text
        if EMPTY_MARK in name:
            name = name[: name.index(EMPTY_MARK)]
        return k, name.strip()
