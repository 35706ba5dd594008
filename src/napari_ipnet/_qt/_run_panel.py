"""The "Run" panel: propagate, cancel, undo, next frame to check, progress and status.

Its buttons are wired by the dock widget (they call the widget's actions); the panel
shows what the controller reports: the propagation's progress bar (napari's, with
Cancel) and frame count, and the status line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ._workers import CancelProgress


def button(text: str, tip: str) -> QPushButton:
    """A push button with a tooltip."""
    b = QPushButton(text)
    b.setToolTip(tip)
    return b


class RunPanel(QGroupBox):
    """Propagate / Cancel / Undo / Next frame to check, the progress and the status line.

    Parameters
    ----------
    keys : dict of str to str
        Shortcut of each action (``"propagate"`` -> ``"Shift+Enter"``), for the tooltips.
    status : str
        The status line to start with.
    """

    def __init__(self, keys: dict[str, str], status: str = "", parent=None) -> None:
        super().__init__("Run", parent)
        self._pbar = None
        v = QVBoxLayout(self)
        row = QHBoxLayout()
        self.propagate_btn = button(
            f"Propagate  [{keys['propagate']}]",
            "Carry the masks of the last scribbled frame through the stack, in a background "
            f"thread, frame by frame [{keys['propagate']}]",
        )
        self.cancel_btn = button("Cancel", f"Stop propagating; finished frames are kept [{keys['cancel']}]")
        self.undo_btn = button(
            "Undo",
            f"Undo the last result [{keys['undo']}; Ctrl+Z with the output layer selected]: the "
            "strokes of that interaction and their mask, or a whole propagation. Ctrl+Shift+Z "
            "on the layer redoes it.",
        )
        for b in (self.propagate_btn, self.cancel_btn, self.undo_btn):
            row.addWidget(b)
        v.addLayout(row)
        self.next_btn = button(
            f"Next frame to check  [{keys['next_frame_to_check']}]",
            "Show the frame IPNet is least sure of (lowest in the confidence strip) among the "
            "frames you have not annotated: correct it there and propagate again.",
        )
        v.addWidget(self.next_btn)
        self.progress_label = QLabel("")
        v.addWidget(self.progress_label)
        self.status_label = QLabel(status)
        self.status_label.setWordWrap(True)
        v.addWidget(self.status_label)

    def show_status(self, text: str) -> None:
        """Set the status line."""
        try:
            self.status_label.setText(text)
        except RuntimeError:  # the Qt widget is already deleted
            pass

    def set_busy(self, busy: bool, propagating: bool) -> None:
        """Enable the buttons that make sense now."""
        self.cancel_btn.setEnabled(propagating)
        self.propagate_btn.setEnabled(not propagating)
        self.next_btn.setEnabled(not busy)

    def propagation_started(self, start: int, total: int, cancel: Callable[[], None]) -> None:
        """Open the progress bar of a propagation from ``start`` over ``total`` frames."""
        self._pbar = CancelProgress(
            total=max(1, total), desc=f"IPNet: propagating from frame {start}", cancel_callback=cancel,
        )
        self.progress_label.setText(f"Frame 0 / {total}")

    def frame_done(self) -> None:
        """One more frame propagated (last: its update may let the queued end of the job run)."""
        if self._pbar is not None:
            self._pbar.update(1)

    def show_progress(self, done: int, total: int, left: float) -> None:
        """``"Frame 3 / 7, about 2 s left"``."""
        tail = f", about {left:.0f} s left" if math.isfinite(left) and done < total else ""
        self.progress_label.setText(f"Frame {done} / {total}{tail}")

    def propagation_finished(self) -> None:
        """Close the progress bar."""
        if self._pbar is not None:
            self._pbar.close()
        self._pbar = None
        self.progress_label.setText("")
