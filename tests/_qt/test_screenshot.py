"""A real, shown napari window: the result overlay is visible on the canvas."""

from __future__ import annotations

import numpy as np
from qt_helpers import path, wait_idle


def test_result_overlay_is_visible_in_a_real_window(make_widget, tiny_rgb, qtbot, tmp_path):
    viewer, w, image = make_widget(tiny_rgb, show=True)
    qtbot.waitUntil(w.isVisible, timeout=5000)  # docked in the shown window
    w.scribble_layer().add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        w.propagate()
    wait_idle(qtbot, w)
    out = w.output_layer
    assert out.data[4].any()
    viewer.dims.set_current_step(0, 4)
    for layer in viewer.layers:  # only the image and the result
        layer.visible = layer is image or layer is out
    out.opacity = 0.8
    qtbot.wait(100)
    with_labels = viewer.screenshot(canvas_only=True, flash=False)
    out.visible = False
    qtbot.wait(100)
    without = viewer.screenshot(canvas_only=True, flash=False)
    assert with_labels.shape == without.shape
    diff = np.abs(with_labels.astype(int) - without.astype(int)).max(axis=-1)
    # the overlay changes a large part of the canvas (object 1 covers frame 4)
    assert (diff > 10).mean() > 0.05
    out.visible = True
    window = viewer.screenshot(canvas_only=False, flash=False)
    assert window.shape[1] > with_labels.shape[1]  # the whole window, dock widget included
    # the picture of the run is kept (the README's picture is made by scripts/screenshot.py
    # with the trained weights and the real sample)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "widget.png", window)
    assert iio.imread(tmp_path / "widget.png").shape == window.shape
