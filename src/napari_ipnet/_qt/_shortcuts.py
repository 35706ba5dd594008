"""Keyboard shortcuts of the dock widget: the table, the actions and the key bindings.

Each shortcut works twice: as a napari viewer key binding (the canvas has the focus;
:func:`bind_keys`) and as a Qt shortcut of the dock widget (the widget has the focus;
:func:`add_widget_shortcuts`). Both run :func:`widget_action`, which holds the widget
weakly, so a binding left behind never keeps a closed widget alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "SHORTCUTS", "add_widget_shortcuts", "bind_keys", "help_label", "shortcut_help", "shortcut_keys", "widget_action",
]

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


def shortcut_keys() -> dict[str, str]:
    """Action -> its key as buttons and tooltips show it (``"Alt+N"``)."""
    return {action: key.replace("-", "+") for key, _q, action, _d in SHORTCUTS}


def widget_action(widget: Any, action: str) -> Callable[..., None]:
    """A callable running ``action`` (an action of :data:`SHORTCUTS`) on ``widget``.

    ``select_<k>`` selects object ``k``, ``toggle_negative`` flips the negative
    strokes, any other action is the widget's method of that name. The widget is
    held weakly: once it is gone the callable does nothing.
    """
    ref = weakref.ref(widget)

    def run(*_args) -> None:
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


def bind_keys(viewer: Any, widget: Any) -> list[tuple[str, Any]]:
    """Bind the :data:`SHORTCUTS` in ``viewer`` to ``widget``'s actions.

    Returns
    -------
    list of (str, callable or None)
        Each key with the binding it replaced, to put back on cleanup.
    """
    bound = []
    for key, _q, action, _d in SHORTCUTS:
        func = widget_action(widget, action)

        def handler(viewer, _f=func):
            _f()

        previous = viewer.bind_key(key, handler, overwrite=True)
        bound.append((key, previous))
    return bound


def add_widget_shortcuts(widget) -> None:
    """The same shortcuts while ``widget`` (a QWidget) or one of its children has the focus."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QKeySequence, QShortcut

    for _k, qkey, action, _d in SHORTCUTS:
        sc = QShortcut(QKeySequence(qkey), widget)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(widget_action(widget, action))


def help_label():
    """A QLabel "Shortcuts: hover for details" whose tooltip is :func:`shortcut_help`."""
    from qtpy.QtWidgets import QLabel

    label = QLabel("Shortcuts: hover for details")
    label.setToolTip(shortcut_help())
    return label
