"""Fixtures of the viewer tests (run under Xvfb via pytest-xvfb; CPU; random weights)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

_GUI_FIXTURES = {"qtbot", "make_napari_viewer", "make_widget", "qapp"}


_HERE = Path(__file__).resolve().parent

#: warning filters of every test in tests/_qt (pytest ``filterwarnings`` syntax). A
#: FutureWarning is how napari announces that something we use goes away: it fails
#: the viewer tests the day it lands, not the day the API is gone. The module part is
#: a regular expression matched at the start of the module the warning is attributed
#: to: "napari" covers napari itself and our napari_ipnet, where napari's
#: ``stacklevel=2`` deprecations point when our code calls the deprecated API.
#: Warnings napari raises from its own internals, not triggered by our code, would be
#: filtered here one by one, by message (none with napari 0.9.2).
QT_WARNING_FILTERS = ["error::FutureWarning:napari"]


def pytest_collection_modifyitems(config, items):
    """Viewer tests: FutureWarnings are errors; without a display they are skipped.

    Without a display (e.g. ``-p no:xvfb`` on a headless machine) Qt would abort the
    whole test process instead of failing one test. pytest-xvfb (installed with the
    testing extra) provides the display automatically.
    """
    ours = [item for item in items if _HERE in Path(str(item.path)).resolve().parents]
    for item in ours:
        for spec in QT_WARNING_FILTERS:
            item.add_marker(pytest.mark.filterwarnings(spec))
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    skip = pytest.mark.skip(reason="no display: install pytest-xvfb (or run under xvfb-run)")
    for item in ours:
        if _GUI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def future_warnings_guard():
    """Fail on a napari FutureWarning met in a worker thread.

    superqt's workers catch warnings ('always') and hand them over with their
    ``warned`` signal, so the filters above cannot make them errors there; the widget
    relays FutureWarnings to napari notifications, which this fixture watches. (A
    FutureWarning raised as an error in a worker would become an error notification.)
    Gives the list of offending messages: a test expecting one clears it.
    """
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def record(event):
        warning = getattr(event, "warning", None)
        where = str(getattr(event, "filename", ""))
        if isinstance(warning, FutureWarning) and "napari" in where:
            seen.append(str(event))
        elif "FutureWarning" in str(event.message):
            seen.append(str(event.message))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
    assert not seen, f"napari FutureWarning in a worker thread: {seen}"


@pytest.fixture
def notes():
    """Notifications shown while the test runs: list of (severity, message)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(event):
        seen.append((str(event.severity), str(event.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def tiny_rgb():
    """6 RGB frames of 64x80 with a bright square moving right."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (6, 64, 80, 3), dtype=np.uint8)
    for t in range(6):
        frames[t, 20:40, 10 + 6 * t : 30 + 6 * t] = 220
    return frames


@pytest.fixture
def make_widget(make_napari_viewer, qt_model):
    """Factory: ``make_widget(data=None, show=False, **image_kwargs)`` -> (viewer, widget, image).

    The widget is docked, uses the seeded random EfficientNet-Lite0 model, and has
    the image selected (when ``data`` is given).
    """
    from napari_ipnet._qt.widget import IPNetWidget

    def factory(data=None, show=False, model=True, **kwargs):
        viewer = make_napari_viewer(show=show)
        image = viewer.add_image(data, **kwargs) if data is not None else None
        widget = IPNetWidget(viewer)
        viewer.window.add_dock_widget(widget, name="IPNet")
        if model:
            widget.set_model(qt_model, "random weights (untrained)")
        if image is not None:
            widget.set_image_layer(image)
        return viewer, widget, image

    return factory


@pytest.fixture(scope="session")
def qt_model(lite_model):
    """Random EfficientNet-Lite0 weights whose networks say "foreground" inside their ROI.

    Plain random weights give a probability near 0.5 everywhere, on either side of
    0.5 depending on the input: a frame could stay empty whether or not it was
    written. A large foreground bias on both heads makes every written frame visibly
    change, so the tests can tell written frames from skipped ones. Nothing here is
    about accuracy.
    """
    import copy

    import torch

    model = copy.deepcopy(lite_model)
    with torch.no_grad():
        model.interaction.Decoder.pred2.bias[1] += 8.0
        model.propagation.Decoder.pred2.bias[1] += 8.0
    return model
