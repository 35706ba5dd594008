"""The "Model" panel: which weights, on which device; loading them in the background."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error, show_warning
from napari.utils.progress import progress
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
)

from ._workers import short

if TYPE_CHECKING:  # pragma: no cover
    from ..annotation import AnnotationController

MODEL_CHOICES = [
    ("default", "Bundled default (EfficientNet-Lite0)"),
    ("ipnet-paper", "Original IPNet (ResNet-50, non-commercial)"),
    ("file", "Checkpoint file..."),
]
DEVICE_CHOICES = ["auto", "cuda", "mps", "cpu"]

PAPER_LICENSE_TEXT = (
    "The original IPNet weights (Oh et al., CVPR 2019) are distributed under the "
    "Creative Commons BY-NC-SA 4.0 licence: non-commercial use only, with attribution, "
    "and derived works under the same licence.\n\n"
    "Accept this licence and download them now into the napari-ipnet cache folder?"
)
THREADS_ENV = "NAPARI_IPNET_THREADS"


def _license_text() -> str:
    try:
        from ..fetch import LICENSE_NOTICE
    except ImportError:
        return PAPER_LICENSE_TEXT
    return LICENSE_NOTICE.replace("=" * 72, "").strip() + "\n\nAccept this licence and download them now?"


def cpu_threads_for_gui() -> int:
    """torch CPU threads while napari runs: one core is left to the Qt main thread.

    With as many torch threads as cores, each network call stalls whenever the GUI
    (or any other process) takes a core: on a 2-core machine we measured the same
    interaction call at 0.11 s with one thread and 0.3-3.8 s with two. Override with
    the environment variable ``NAPARI_IPNET_THREADS``.
    """
    env = os.environ.get(THREADS_ENV)
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, n - 1)


class ModelPanel(QGroupBox):
    """Weights choice, device choice, Load button and the model's status line."""

    def __init__(self, controller: AnnotationController, parent=None) -> None:
        super().__init__("Model", parent)
        self.controller = controller
        self.model_source: str | None = None  # checkpoint path when "file"
        form = QFormLayout(self)
        self.model_combo = QComboBox()
        for key, text in MODEL_CHOICES:
            self.model_combo.addItem(text, key)
        self.model_combo.setToolTip(
            "Bundled default weights, the original IPNet weights (downloaded once, "
            "non-commercial licence), or a checkpoint file (.safetensors, .pt, .pth)"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.device_combo.setToolTip("auto: CUDA GPU, then Apple MPS, then the CPU")
        self.load_btn = QPushButton("Load")
        self.model_status = QLabel("Model: not loaded")
        self.model_status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(self.load_btn)
        form.addRow("Weights", self.model_combo)
        form.addRow("Device", row)
        form.addRow(self.model_status)
        self.load_btn.clicked.connect(lambda: self.load_model())
        self.model_combo.currentIndexChanged.connect(self._on_model_choice)
        self.device_combo.currentIndexChanged.connect(self._on_device_changed)
        controller.model_changed.connect(self.show_model)
        controller.model_set.connect(self.model_set)

    @staticmethod
    def model_set(model) -> None:
        """A model on the CPU computes with :func:`cpu_threads_for_gui` threads (the viewer stays responsive)."""
        if getattr(getattr(model, "device", None), "type", None) == "cpu":
            import torch

            torch.set_num_threads(cpu_threads_for_gui())

    def show_model(self, text: str, device=None) -> None:
        """Show the model's status line; make the device choice follow ``device``."""
        self.model_status.setText(text)
        if device is not None:
            self._show_model_device(device)

    def _on_model_choice(self, *_args) -> None:
        if self.model_combo.currentData() == "file":
            path, _ = QFileDialog.getOpenFileName(
                self, "IPNet checkpoint", "", "Checkpoints (*.safetensors *.pt *.pth)"
            )
            if not path:
                self.model_combo.setCurrentIndex(0)
                return
            self.model_source = path
        self.controller.model = None
        self.model_status.setText("Model: not loaded (loads with the first scribble, or press Load)")

    def _on_device_changed(self, *_args) -> None:
        """Move the model to the chosen device: now, or once the running job has finished."""
        if self.controller.model is None and not self.controller.loading:
            return  # the weights load onto the chosen device
        choice = self.device_combo.currentText()
        try:
            from ..weights import resolve_device

            dev = resolve_device(choice)
        except Exception as err:  # noqa: BLE001
            show_error(f"IPNet: cannot use device {choice!r}: {short(err)}. Choose 'auto' or 'cpu'.")
            self._show_device_choice("auto")
            return
        self.controller.request_device(dev)

    def _show_model_device(self, dev) -> None:
        """Make the device choice say where the model is ('auto' stays when it means that)."""
        kind = getattr(dev, "type", None)
        if kind not in DEVICE_CHOICES:
            return
        try:
            from ..weights import resolve_device

            chosen = resolve_device(self.device_combo.currentText()).type
        except Exception:  # noqa: BLE001 - an unavailable choice: show the model's
            chosen = None
        if chosen != kind:
            self._show_device_choice(kind)

    def _show_device_choice(self, text: str) -> None:
        self.device_combo.blockSignals(True)
        self.device_combo.setCurrentText(text)
        self.device_combo.blockSignals(False)

    def load_model(self) -> None:
        """Load the weights chosen in the panel (in a worker thread)."""
        if self.controller.loading:
            return
        choice = self.model_combo.currentData()
        device = self.device_combo.currentText()
        name = self.model_source if choice == "file" else choice
        if choice == "file" and not name:
            show_error("IPNet: choose a checkpoint file first (Weights > Checkpoint file...)")
            self.controller.fail_jobs_needing_model()
            return
        if choice == "ipnet-paper" and not self._paper_weights_present():
            if not self._ask_license():
                show_warning(
                    "IPNet: the original weights were not downloaded. Choose the bundled default "
                    "weights or a checkpoint file, or run `napari-ipnet fetch-weights ipnet-paper`."
                )
                self.controller.fail_jobs_needing_model()
                return
            self._start_load(name, device, download=True)
            return
        self._start_load(name, device)

    def _paper_weights_present(self) -> bool:
        from ..weights import PAPER_FILES, cache_dir

        folder = cache_dir() / "ipnet-paper"
        return all((folder / f).is_file() for f in PAPER_FILES.values())

    def _ask_license(self) -> bool:
        answer = QMessageBox.question(
            self,
            "IPNet original weights: licence",
            _license_text(),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _start_load(self, name: str, device: str, download: bool = False) -> None:
        self.model_status.setText(f"Model: loading {name} ..." if not download else "Model: downloading ...")

        def work():
            if download:
                try:
                    from ..fetch import fetch_weights
                except ImportError as err:
                    raise RuntimeError(
                        "this installation cannot download weights (napari_ipnet.fetch is missing); "
                        "run `napari-ipnet fetch-weights ipnet-paper` or use a checkpoint file"
                    ) from err
                fetch_weights("ipnet-paper", progress=False, accept_license=True)
            from ..weights import load_model

            return load_model(name, device=device)

        pbar = progress(total=0, desc="IPNet: downloading weights" if download else "IPNet: loading weights")
        what = "getting the original weights" if download else "loading the weights"
        self.controller.load(work, name, what, on_finish=pbar.close)
