"""The Scribbles and Objects panels on their own (Qt, no viewer): what they emit and show."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt

from napari_ipnet._qt._objects_panel import LIST_TOOLTIP, ObjectsPanel
from napari_ipnet._qt._scribble_panel import ScribblePanel
from napari_ipnet._qt._shortcuts import help_label, shortcut_help, shortcut_keys


def test_scribble_panel_buttons_and_negative_box(qtbot):
    panel = ScribblePanel(shortcut_keys())
    qtbot.addWidget(panel)
    assert panel.title() == "Scribbles"
    kinds = []
    panel.kind_chosen.connect(kinds.append)
    for b in (panel.freehand_btn, panel.brush_btn, panel.clicks_btn):
        qtbot.mouseClick(b, Qt.MouseButton.LeftButton)
    assert kinds == ["shapes", "brush", "clicks"]
    assert [b.text() for b in (panel.freehand_btn, panel.brush_btn, panel.clicks_btn)] == ["Freehand", "Brush", "Clicks"]

    toggled = []
    panel.negative_toggled.connect(toggled.append)
    assert "[Alt+N]" in panel.negative_check.text() and "Alt+N" in panel.negative_check.toolTip()
    panel.negative_check.click()  # the user ticks it
    assert toggled == [True] and panel.negative_check.isChecked()
    panel.show_negative(False)  # the controller says positive (e.g. the shortcut): no echo
    panel.show_negative(False)
    assert toggled == [True] and not panel.negative_check.isChecked()
    panel.show_negative(True)
    assert toggled == [True] and panel.negative_check.isChecked()


def test_objects_panel_reports_choices_and_edits_by_object_id(qtbot):
    panel = ObjectsPanel(shortcut_keys())
    qtbot.addWidget(panel)
    assert panel.title() == "Objects" and panel.object_list.toolTip() == LIST_TOOLTIP
    assert "[Alt+A]" in panel.add_btn.toolTip()
    chosen, edited = [], []
    panel.object_chosen.connect(chosen.append)
    panel.object_edited.connect(lambda k, name: edited.append((k, name)))

    def red(_k):
        return np.array([1.0, 0.0, 0.0, 1.0])

    panel.show_objects({2: "cell", 5: "nucleus"}, 5, {2: {3, 4}}, red)
    lst = panel.object_list
    assert [lst.item(i).text() for i in range(lst.count())] == ["2: cell  [empty: 3-4]", "5: nucleus"]
    assert lst.currentRow() == 1 and chosen == [] and edited == []  # showing is not choosing

    lst.setCurrentRow(0)  # the user clicks the first row
    assert chosen == [2]
    lst.item(0).setText("2: big cell  [empty: 3-4]")  # the user renames it (the mark stays)
    assert edited == [(2, "big cell")]

    panel.set_busy(True)
    assert not panel.reset_btn.isEnabled() and not panel.reset_all_btn.isEnabled() and panel.add_btn.isEnabled()
    panel.set_busy(False)
    assert panel.reset_btn.isEnabled() and panel.reset_all_btn.isEnabled()
    assert panel.confidence_strip.parent() is panel


def test_help_label(qtbot):
    label = help_label()
    qtbot.addWidget(label)
    assert label.text() == "Shortcuts: hover for details" and label.toolTip() == shortcut_help()
