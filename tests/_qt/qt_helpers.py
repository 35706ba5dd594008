"""Helpers of the viewer tests (imported as a plain module: tests/_qt is on sys.path)."""

from __future__ import annotations

import numpy as np

WAIT_MS = 60_000  # generous: the CPU may be shared with training jobs


def wait_idle(qtbot, widget, timeout=WAIT_MS):
    qtbot.waitUntil(widget.is_idle, timeout=timeout)


def path(lead, y, x0, x1, n=6):
    """A horizontal freehand path at row ``y``; ``lead`` holds the leading coordinates (frame...)."""
    return np.asarray([[*lead, y, x] for x in np.linspace(x0, x1, n)], dtype=float)
