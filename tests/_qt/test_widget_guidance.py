"""What a new user sees: visible colours, undo in plain words, progress, what to check next."""

from __future__ import annotations

import numpy as np
from qt_helpers import draw_stroke, path, propagate_and_wait, wait_idle


def _shape_model(stub_model):
    import torch.nn.functional as F

    model = stub_model()
    model.interaction.value = lambda rgb, prev, pos, neg: 0.05 + 0.9 * F.max_pool2d(pos, 21, 1, 10) * (1 - neg)
    model.propagation.value = lambda rgb, prev, nb: 0.05 + 0.9 * nb
    return model


_scribble = draw_stroke
_propagate = propagate_and_wait  # returns (frames, cancelled)


def test_undo_before_propagating_takes_the_stroke_with_its_mask(make_widget, tiny_rgb, qtbot, stub_model, notes):
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.set_model(_shape_model(stub_model), "stub")
    shapes = _scribble(qtbot, w, frame=2)
    out = w.output_layer
    stroke_ids = list(shapes.features["stroke"])
    assert len(shapes.data) == 1 and out.data[2].any()
    w.undo()
    assert not out.data.any() and len(shapes.data) == 0, "the stroke leaves with its mask"
    assert w.status_label.text() == "Undone: the stroke on frame 2 and its mask."
    assert "memory" not in w.status_label.text()
    w.propagate()
    wait_idle(qtbot, w)
    assert "already propagated" not in w.status_label.text()
    assert w.status_label.text().startswith("Nothing to propagate")
    out.redo()  # the stroke comes back with its mask, with its identity
    assert len(shapes.data) == 1 and list(shapes.features["stroke"]) == stroke_ids and out.data[2].any()
    assert w.session.pending_frame == 2
    # it is a stroke of the open round again: deleting it takes its mask back
    shapes.selected_data = {0}
    shapes.remove_selected()
    wait_idle(qtbot, w)
    assert not out.data.any()
    assert not [n for n in notes if n[0] == "error"]


def test_propagation_shows_frame_count_and_time_left(make_widget, tiny_rgb, qtbot, stub_model):
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.set_model(_shape_model(stub_model), "stub")
    _scribble(qtbot, w, frame=0)
    seen = []
    w.frame_done.connect(lambda t: seen.append((w.progress_label.text(), w.propagate_btn.isEnabled())))
    _propagate(qtbot, w)
    texts = [t for t, _ in seen]
    assert texts[-1].startswith("Frame 5 / 5")
    assert [t.split(",")[0] for t in texts] == [f"Frame {i} / 5" for i in range(1, 6)]
    assert "s left" in texts[0]
    assert not any(enabled for _, enabled in seen), "Propagate is disabled while it runs"
    assert w.propagate_btn.isEnabled() and w.progress_label.text() == ""
    assert w.status_label.text()[0].isupper()


def test_confidence_strip_and_next_frame_to_check(make_widget, tiny_rgb, qtbot, stub_model):
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.set_model(_shape_model(stub_model), "stub")
    _scribble(qtbot, w, frame=0)
    strip = w.confidence_strip
    assert strip.n_frames == 6
    live = []
    w.frame_done.connect(lambda t: live.append(strip.confidence(1).copy()))
    _propagate(qtbot, w)
    # updated live: the frames' values appear while propagating
    known = [int((c[1:] > 0).sum()) for c in live]
    assert len(live) == 5 and known == sorted(known) and known[0] < known[-1], known
    s = w.session
    np.testing.assert_allclose(strip.confidence(1), s.frame_confidence(1))
    # the engine finds frame 4 the least sure (set here: the stub networks are too regular)
    designed = np.array([1.0, 0.9, 0.8, 0.7, 0.2, 0.6], np.float32)
    s.frame_confidence = lambda object_id=None: designed
    w.controller.confidence_changed.emit()
    np.testing.assert_allclose(strip.confidence(1), designed)
    assert w.next_btn.isEnabled()
    w.next_btn.click()
    assert viewer.dims.current_step[0] == 4
    assert w.status_label.text().startswith("Frame 4 is the least sure (confidence 0.20)")
    # once frame 4 is annotated, the next one down is proposed (the shortcut's action)
    del s.frame_confidence
    _scribble(qtbot, w, frame=4, y=30, x0=30, x1=50)
    _propagate(qtbot, w)
    assert s.annotated_frames() == [0, 4]
    designed[[0, 4]] = 1.0
    s.frame_confidence = lambda object_id=None: designed
    assert w.next_frame_to_check() == 5 and viewer.dims.current_step[0] == 5
    # a click on the strip shows that frame
    strip.frame_clicked.emit(2)
    assert viewer.dims.current_step[0] == 2


def test_first_mask_gets_a_colour_that_shows_on_the_image(make_widget, qtbot, stub_model):
    """An object whose colour matches the image under it gets the most contrasting one."""
    from napari_ipnet._qt._colors import LOW_CONTRAST, contrast, object_color

    c1 = (np.asarray(object_color(1)[:3]) * 255).round().astype(np.uint8)
    frames = np.zeros((4, 64, 80, 3), np.uint8)
    frames[...] = c1  # the whole image in object 1's palette colour
    viewer, w, image = make_widget(frames, model=False, contrast_limits=(0, 255))
    w.set_model(_shape_model(stub_model), "stub")
    shapes = _scribble(qtbot, w, frame=1)
    out = w.output_layer
    assert (out.data[1] == 1).any()
    shown = np.asarray(out.colormap.map(np.asarray([1]))).reshape(-1)[:3]
    assert contrast(shown, c1 / 255) >= LOW_CONTRAST, "the mask shows on the image"
    np.testing.assert_allclose(np.asarray(shapes.edge_color)[0, :3], shown, atol=1e-6)  # the stroke too
    icon_rgb = w.object_list.item(0).icon().pixmap(12, 12).toImage().pixelColor(5, 5)
    assert abs(icon_rgb.redF() - shown[0]) < 0.01 and abs(icon_rgb.greenF() - shown[1]) < 0.01
    # a second object on a high-contrast background keeps its palette colour
    w.add_object()
    shapes.add_paths([path((2,), 40, 40, 60)])
    wait_idle(qtbot, w)
    np.testing.assert_allclose(
        np.asarray(out.colormap.map(np.asarray([2]))).reshape(-1), object_color(2), atol=1e-6
    )


def test_next_frame_to_check_before_any_result(make_widget, tiny_rgb):
    viewer, w, image = make_widget(tiny_rgb)
    assert w.next_frame_to_check() is None
    assert w.status_label.text().startswith("Nothing to check")
