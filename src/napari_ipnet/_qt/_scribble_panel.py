"""The "Scribbles" panel: the kind of scribble layer to draw on, and negative strokes.

Its buttons ask for a scribble layer (the dock widget has
:class:`~._scribble_layers.ScribbleLayers` make, select and arm it); the check box
switches between positive strokes and negative (background) ones, which the widget
tells the controller. The panel only shows the choice: :meth:`ScribblePanel.show_negative`
ticks the box without asking again.
"""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QVBoxLayout

from ..annotation.strokes import NEGATIVE_LABEL
from ._run_panel import button

#: (button text, scribble kind of ``ScribbleLayers.activate_scribbles``, tooltip), in button order
SCRIBBLE_KINDS: tuple[tuple[str, str, str], ...] = (
    ("Freehand", "shapes", ("Shapes layer in freehand path mode: each stroke you release runs IPNet on "
                            "its frame. Polygons, rectangles and ellipses are filled.")),
    ("Brush", "brush", (f"Labels layer painted with the brush: label k scribbles object k, label "
                        f"{NEGATIVE_LABEL} is background (negative). Each finished stroke runs IPNet.")),
    ("Clicks", "clicks", "Points layer: each click is a small disk scribble"),
)


def negative_texts(keys: dict[str, str]) -> tuple[str, str]:
    """(text, tooltip) of the negative-strokes check box, with its shortcut from ``keys``."""
    key = keys["toggle_negative"]
    return (f"Negative (background) strokes  [{key}]",
            f"Strokes mark background for the selected object (drawn in red). A stroke across a cell "
            f"or blob that the object wrongly covers takes the object off all of it. Toggle: {key}")


class ScribblePanel(QGroupBox):
    """Freehand / Brush / Clicks buttons and the "Negative strokes" check box.

    Parameters
    ----------
    keys : dict of str to str
        Shortcut of each action (``"toggle_negative"`` -> ``"Alt+N"``), for the texts.
    """

    kind_chosen = Signal(str)  # a button was clicked: "shapes", "brush" or "clicks"
    negative_toggled = Signal(bool)  # the user ticked / unticked the box

    def __init__(self, keys: dict[str, str], parent=None) -> None:
        super().__init__("Scribbles", parent)
        v = QVBoxLayout(self)
        row = QHBoxLayout()
        self.freehand_btn, self.brush_btn, self.clicks_btn = buttons = [
            button(text, tip) for text, _kind, tip in SCRIBBLE_KINDS
        ]
        for b, (_text, kind, _tip) in zip(buttons, SCRIBBLE_KINDS):
            row.addWidget(b)
            b.clicked.connect(lambda _=False, kind=kind: self.kind_chosen.emit(kind))
        v.addLayout(row)
        text, tip = negative_texts(keys)
        self.negative_check = QCheckBox(text)
        self.negative_check.setToolTip(tip)
        v.addWidget(self.negative_check)
        self.negative_check.toggled.connect(self.negative_toggled.emit)

    def show_negative(self, negative: bool) -> None:
        """Tick the box (or not) as ``negative`` says, without emitting ``negative_toggled``."""
        if self.negative_check.isChecked() != bool(negative):
            self.negative_check.blockSignals(True)
            self.negative_check.setChecked(bool(negative))
            self.negative_check.blockSignals(False)
