"""The "Objects" panel: the object list, the confidence strip, Add / Reset / Reset all.

The list (:class:`~._object_list.ObjectList`) shows the controller's objects in the
output layer's colours; selecting or renaming a row is reported with the panel's
signals, by object id. The strip (:class:`~._confidence.ConfidenceStrip`) is filled
by the widget's :class:`~._confidence.FrameNavigator`. The buttons are wired by the
dock widget (they call its actions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QVBoxLayout

from ._confidence import ConfidenceStrip
from ._object_list import ObjectList
from ._run_panel import button

LIST_TOOLTIP = ("Objects (label values of the output layer, colours from it). Select with "
                "Alt+1..Alt+9 or a click; double-click to rename.")


def new_name(names: Mapping[int, str], k: int, name: str) -> str | None:
    """The name object ``k`` gets from an edit of its row to ``name`` (None: no rename).

    An empty name, or the one the object already has, renames nothing.
    """
    name = name.strip()
    return name if name and name != names.get(k) else None


class ObjectsPanel(QGroupBox):
    """The objects, the confidence strip and Add / Reset object / Reset all.

    Parameters
    ----------
    keys : dict of str to str
        Shortcut of each action (``"add_object"`` -> ``"Alt+A"``), for the tooltips.
    """

    object_chosen = Signal(int)  # the user selected this object's row
    object_edited = Signal(int, str)  # the user edited this object's row: the name in it

    def __init__(self, keys: dict[str, str], parent=None) -> None:
        super().__init__("Objects", parent)
        v = QVBoxLayout(self)
        self.object_list = ObjectList()
        self.object_list.setToolTip(LIST_TOOLTIP)
        v.addWidget(self.object_list)
        self.confidence_strip = ConfidenceStrip()
        v.addWidget(self.confidence_strip)
        row = QHBoxLayout()
        self.add_btn = button("Add", f"Add an object [{keys['add_object']}]")
        self.reset_btn = button("Reset object", "Forget the selected object: its results, strokes and memory")
        self.reset_all_btn = button("Reset all", "Forget every object IPNet manages (other labels are kept)")
        for b in (self.add_btn, self.reset_btn, self.reset_all_btn):
            row.addWidget(b)
        v.addLayout(row)
        self.object_list.currentRowChanged.connect(self._on_row)
        self.object_list.itemChanged.connect(self._on_item_changed)

    def show_objects(
        self, objects: dict[int, str], current: int, empty: dict[int, set[int]], color_of: Callable[[int], object]
    ) -> None:
        """List ``objects`` (id -> name) in their colours, ``current`` selected (no signal)."""
        self.object_list.show_objects(objects, current, empty, color_of)

    def set_busy(self, busy: bool) -> None:
        """Enable the reset buttons while no job runs."""
        self.reset_btn.setEnabled(not busy)
        self.reset_all_btn.setEnabled(not busy)

    def _on_row(self, row: int) -> None:
        item = self.object_list.item(row)
        if item is not None:
            self.object_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_item_changed(self, item) -> None:
        self.object_edited.emit(*ObjectList.name_in(item))
