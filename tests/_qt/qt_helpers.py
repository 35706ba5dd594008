"""Helpers of the viewer tests (imported as a plain module: tests/_qt is on sys.path)."""

from __future__ import annotations

import numpy as np

WAIT_MS = 60_000  # generous: the CPU may be shared with training jobs


def wait_idle(qtbot, widget, timeout=WAIT_MS):
    qtbot.waitUntil(widget.is_idle, timeout=timeout)


def path(lead, y, x0, x1, n=6):
    """A horizontal freehand path at row ``y``; ``lead`` holds the leading coordinates (frame...)."""
    return np.asarray([[*lead, y, x] for x in np.linspace(x0, x1, n)], dtype=float)


def draw_stroke(qtbot, widget, frame, y=30, x0=15, x1=35, lead=None):
    """Add a freehand stroke on ``frame`` (or at the leading coordinates ``lead``) to the
    widget's scribble layer and wait until the widget has segmented it."""
    shapes = widget.scribble_layer()
    shapes.add_paths([path(lead if lead is not None else (frame,), y, x0, x1)])
    wait_idle(qtbot, widget)
    return shapes


def propagate_and_wait(qtbot, widget):
    """Press Propagate and wait for the end; returns the signal's (frames, cancelled)."""
    with qtbot.waitSignal(widget.propagation_finished, timeout=WAIT_MS) as blocker:
        widget.propagate()
    wait_idle(qtbot, widget)
    return blocker.args


def wait_autosaved(qtbot, widget, timeout=WAIT_MS):
    """Wait until the widget's autosaves are on disk (a worker thread writes them)."""
    qtbot.waitUntil(lambda: not widget.session_panel.files.writing, timeout=timeout)
