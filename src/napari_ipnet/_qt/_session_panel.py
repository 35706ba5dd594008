"""The "Session file" panel: Save session... / Open session..., and where autosaves go.

A thin view over :class:`napari_ipnet.annotation.files.SessionFiles`: file dialogs,
questions, the progress bar of a replay, and the timer that writes pending
autosaves. What is saved, how a file is matched with an image and replayed, and when
autosaves happen is decided there (Qt-free, tested without a viewer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.progress import progress
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from ..annotation.files import AUTOSAVE_ENV, AUTOSAVE_INTERVAL, PATH_KEY, SessionFiles
from ..session_file import SUFFIX, open_image

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..annotation import AnnotationController
    from ._sequence_panel import SequencePanel

FILE_FILTER = f"IPNet sessions (*{SUFFIX});;All files (*)"


class SessionPanel(QGroupBox):
    """Save / open session files; autosave timer."""

    def __init__(self, viewer: napari.Viewer, controller: AnnotationController, sequence_panel: SequencePanel,
                 parent=None) -> None:
        super().__init__("Session file", parent)
        self.viewer = viewer
        self.controller = controller
        self.sequence_panel = sequence_panel
        self.files = SessionFiles(controller)
        self._pbar = None
        self._last_dir: str | None = None
        v = QVBoxLayout(self)
        row = QHBoxLayout()
        self.save_btn = QPushButton("Save session...")
        self.save_btn.setToolTip(
            f"Save the annotation of the image and axis you last scribbled on to a {SUFFIX} file: every "
            "stroke and propagation, the object names and where the image comes from. Open it later to "
            "go on where you stopped (the networks run again on the strokes)."
        )
        self.open_btn = QPushButton("Open session...")
        self.open_btn.setToolTip(
            f"Open a {SUFFIX} file: on its image layer if it is open (else the current image layer, when "
            "its frames fit, or the recorded image file, opened as a new layer). Its strokes are replayed "
            "through the model, in the background, and painted back on the image's brush layer."
        )
        row.addWidget(self.save_btn)
        row.addWidget(self.open_btn)
        v.addLayout(row)
        self.autosave_label = QLabel("")
        self.autosave_label.setWordWrap(True)
        v.addWidget(self.autosave_label)
        self.save_btn.clicked.connect(lambda: self.save_session())
        self.open_btn.clicked.connect(lambda: self.open_session())
        files = self.files
        files.opening.connect(self._select)
        files.replay_started.connect(self._replay_started)
        files.replay_progress.connect(self._replay_progress)
        files.opened.connect(self._replay_over)
        files.open_failed.connect(self._replay_over)
        controller.busy_changed.connect(self._busy_changed)
        self.timer = QTimer(self)
        self.timer.setInterval(int(AUTOSAVE_INTERVAL * 1000))
        self.timer.timeout.connect(files.flush)
        self.timer.start()
        self.show_autosave_folder()

    # ------------------------------------------------------------------ autosave
    def show_autosave_folder(self) -> None:
        """Say in the panel where sessions autosave (or that autosaving is off)."""
        folder = self.files.autosave_folder
        if folder is None:
            self.autosave_label.setText(f"Autosave: off ({AUTOSAVE_ENV} is empty).")
        else:
            self.autosave_label.setText(f"Autosave: {folder}")
        self.autosave_label.setToolTip(
            f"After each interaction and propagation (at most every {AUTOSAVE_INTERVAL:.0f} s) and when the "
            f"widget closes, each session is saved to <image>-axis<k>{SUFFIX} in this folder. Set the "
            f"environment variable {AUTOSAVE_ENV} to another folder, or to an empty value to turn it off."
        )

    def close_files(self) -> None:
        """Stop the timer and write the pending autosaves."""
        self.timer.stop()
        self.files.close()

    # ------------------------------------------------------------------ save / open
    def _start_dir(self) -> str:
        if self._last_dir:
            return self._last_dir
        image = self.sequence_panel.image_layer
        path = getattr(getattr(image, "source", None), "path", None) if image is not None else None
        return str(Path(path).parent) if path else os.getcwd()

    def save_session(self, path: str | os.PathLike | None = None) -> Path | None:
        """Save the active session to ``path`` (None: ask with a file dialog); the file written."""
        rec = self.controller.active
        if path is None:
            if rec is None or not rec.session.object_ids:
                return self.files.save("")  # says there is nothing to save
            default = str(Path(self._start_dir()) / f"{rec.layer.name}{SUFFIX}")
            path, _ = QFileDialog.getSaveFileName(self, "Save IPNet session", default, FILE_FILTER)
            if not path:
                return None
        written = self.files.save(path)
        if written is not None:
            self._last_dir = str(written.parent)
        return written

    def open_session(self, path: str | os.PathLike | None = None) -> bool:
        """Open a session file (None: ask with a file dialog); whether its replay was queued."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open IPNet session", self._start_dir(), FILE_FILTER)
            if not path:
                return False
        self._last_dir = str(Path(path).parent)
        panel = self.sequence_panel
        return self.files.open(path, layers=panel._image_layers(), current=panel.image_layer,
                               confirm=self._confirm, add_image=self._add_image)

    def _confirm(self, question: str) -> bool:
        answer = QMessageBox.question(self, "IPNet", question)
        return answer == QMessageBox.StandardButton.Yes

    def _add_image(self, path: str, name: str):
        """Open a session's recorded image as a new layer (lazily, as the session file reads it)."""
        return self.viewer.add_image(open_image(path), name=name, metadata={PATH_KEY: str(path)})

    def _select(self, image, spec) -> None:
        """Show the image, axis and channel a session is opened on (its results go to their output)."""
        panel = self.sequence_panel
        panel.set_image_layer(image)
        panel.set_axis(spec.axis)
        if getattr(image, "rgb", False):
            panel.set_channel(spec.channel)
        if spec.fixed:  # the other leading axes where the session's frames are
            data_pos = [0.0] * image.ndim
            for ax, i in spec.fixed:
                data_pos[ax] = float(i)
            world = image.data_to_world(data_pos)
            offset = self.viewer.dims.ndim - image.ndim
            for ax, _i in spec.fixed:
                self.viewer.dims.set_point(ax + offset, float(world[ax]))

    # ------------------------------------------------------------------ progress
    def _replay_started(self, name: str, n: int) -> None:
        self._close_pbar()
        self._pbar = progress(total=max(1, n), desc=f"IPNet: opening {name}")

    def _replay_progress(self, i: int, n: int) -> None:
        if self._pbar is not None:
            self._pbar.n = i
            self._pbar.refresh()

    def _replay_over(self, *_args) -> None:
        self._close_pbar()

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
        self._pbar = None

    def _busy_changed(self, busy: bool) -> None:
        try:
            self.save_btn.setEnabled(not busy)
            self.open_btn.setEnabled(not busy)
        except RuntimeError:  # the Qt widget is already deleted
            return
        if not busy:
            self._close_pbar()
