"""The widget on stacks with several axes: an output layer per propagation axis, refused
pixels told, the axis list following the axis names (issue 19), the ending default."""

from __future__ import annotations

import numpy as np
from qt_helpers import path, propagate_and_wait, wait_idle

from napari_ipnet._qt.widget import ROLE_KEY


def _scribble(qtbot, widget, lead, y=24, x0=20, x1=40):
    widget.scribble_layer().add_paths([path(lead, y, x0, x1)])
    wait_idle(qtbot, widget)


_propagate = propagate_and_wait


def _stub(stub_model):
    """Stub networks: a mask around the stroke, carried unchanged from frame to frame."""
    import torch.nn.functional as F

    model = stub_model()
    model.interaction.value = lambda rgb, prev, pos, neg: 0.05 + 0.9 * F.max_pool2d(pos, 21, 1, 10) * (1 - neg)
    model.propagation.value = lambda rgb, prev, nb: 0.05 + 0.9 * nb
    return model


def _outputs(viewer):
    return [x for x in viewer.layers if x.metadata.get(ROLE_KEY) == "output"]


def test_t_and_z_results_on_one_stack_never_collide(make_widget, qtbot, stub_model, notes):
    stack = np.random.default_rng(3).integers(100, 400, (3, 5, 48, 64), dtype=np.uint16)  # (T, Z, Y, X)
    viewer, w, image = make_widget(stack, model=False)
    w.set_model(_stub(stub_model), "stub")
    viewer.dims.axis_labels = ("t", "z", "y", "x")
    w.set_axis(0)
    _scribble(qtbot, w, lead=(1, 2))  # along t, at z = 2
    _propagate(qtbot, w)
    out_t, s_t = w.output_layer, w.session
    assert out_t.name == f"{image.name} IPNet masks (t)"
    np.testing.assert_array_equal(out_t.data[:, 2], s_t.labels)
    assert (s_t.labels == 1).any(axis=(1, 2)).all()

    # along z on the same stack, a new object over the same place: its own layer
    w.set_axis(1)
    assert w.output_layer is None and w.output_combo.currentText() == "new layer"
    assert w.add_object() == 2
    _scribble(qtbot, w, lead=(1, 2))  # along z, at t = 1, plane 2
    _propagate(qtbot, w)
    out_z, s_z = w.output_layer, w.session
    assert s_z is not s_t and out_z is not out_t and out_z.name == f"{image.name} IPNet masks (z)"
    assert (s_z.labels == 2).any(axis=(1, 2)).all()
    np.testing.assert_array_equal(out_z.data[1], s_z.labels)  # everything the session computed
    np.testing.assert_array_equal(out_t.data[:, 2], s_t.labels)  # t's results untouched
    assert not out_z.data[[0, 2]].any() and not out_t.data[:, [0, 1, 3, 4]].any()
    assert not [m for _s, m in notes if "not written" in m]
    assert len(_outputs(viewer)) == 2
    w.set_axis(0)
    assert w.output_layer is out_t
    w.set_axis(1)
    assert w.output_layer is out_z

    # the user chooses t's layer for the z session: what it cannot write is told
    w.set_output_layer(out_t)
    before = out_t.data[1, 2].copy()
    _scribble(qtbot, w, lead=(1, 2), y=26)
    labels = s_z.label_frame(2)
    refused = int(((labels == 2) & (before == 1)).sum())
    assert refused > 100
    warnings = [m for sev, m in notes if sev == "warning" and "not written" in m]
    assert len(warnings) == 1, notes
    assert f"{refused:,} pixels of object 2 on frame 2 were not written to {out_t.name!r}" in warnings[0]
    assert "label 1" in warnings[0]
    assert f"{refused:,} pixels of object 2" in w.status_label.text()
    assert w.output_layer is out_t  # an explicit choice stays
    _propagate(qtbot, w)  # other planes hold no t labels: nothing more refused
    assert len([m for sev, m in notes if "not written" in m]) == 1

    # 'new layer' redoes the axis into a fresh layer
    w.set_output_layer(None)
    _scribble(qtbot, w, lead=(1, 2), y=28)
    fresh = w.output_layer
    assert fresh not in (out_t, out_z) and len(_outputs(viewer)) == 3
    np.testing.assert_array_equal(fresh.data[1, 2], s_z.label_frame(2))

    # reset erases each session's objects from the layers it wrote to
    w.reset_all()
    assert not out_z.data.any() and not fresh.data.any() and not out_t.data.any()


def test_a_round_keeps_its_output_when_the_axis_changes(make_widget, qtbot, stub_model):
    stack = np.random.default_rng(4).integers(0, 255, (4, 3, 40, 48), dtype=np.uint8)
    viewer, w, image = make_widget(stack, model=False)
    w.set_model(_stub(stub_model), "stub")
    w.set_axis(0)
    _scribble(qtbot, w, lead=(1, 1), y=20, x0=10, x1=30)
    out_t = w.output_layer
    w.set_axis(1)  # the t round is still waiting to be propagated
    _propagate(qtbot, w)
    assert _outputs(viewer) == [out_t] and w.output_layer is None
    assert all(out_t.data[t, 1].any() for t in range(4))
    assert out_t.name == f"{image.name} IPNet masks (axis 0)"


def test_axis_list_follows_the_axis_names_and_guesses(make_widget, qt_model):
    stack = np.zeros((20, 5, 32, 40), np.uint8)  # unnamed (T, Z, Y, X)
    viewer, w, image = make_widget(stack)
    texts = lambda: [w.axis_combo.itemText(i) for i in range(w.axis_combo.count())]  # noqa: E731
    assert texts() == ["axis 0 (20 frames; guessed t)", "axis 1 (5 planes; guessed z)"]
    assert "guess" in w.axis_combo.itemData(1, 3)  # Qt.ToolTipRole
    w.set_axis(1)
    assert w.objects_may_end, "a guessed z: objects may end"
    w.set_axis(0)
    assert not w.objects_may_end
    w.set_axis(1)
    viewer.dims.axis_labels = ("t", "z", "y", "x")  # renamed in the viewer: the list follows
    assert texts() == ["t (20 frames)", "z (5 planes)"] and w.axis == 1 and w.objects_may_end
    viewer.dims.axis_labels = ("time", "frame", "y", "x")
    assert texts() == ["time (20 frames)", "frame (5 frames)"] and w.axis == 1
    assert not w.objects_may_end, "the default follows the new name"
    w.ending_check.setChecked(True)  # the user's choice ...
    viewer.dims.axis_labels = ("time", "index", "y", "x")
    assert w.objects_may_end, "... is kept when names change"
    assert "along index" in w.sequence_label.text()


def test_a_depth_axis_lets_objects_end(make_widget):
    stack = np.zeros((6, 4, 32, 40), np.uint8)
    viewer, w, image = make_widget(stack)
    viewer.dims.axis_labels = ("Time", "Depth", "y", "x")
    w.set_axis(1)
    assert w.objects_may_end and w.axis_may_end_default(image, 1)
    w.set_axis(0)
    assert not w.objects_may_end


def test_tiff_axes_reach_the_widget(make_widget, tmp_path):
    import tifffile

    from napari_ipnet._reader import read_tiff

    stack = np.zeros((4, 3, 32, 40), np.uint16)
    p = tmp_path / "cells.tif"
    tifffile.imwrite(p, stack, imagej=True, metadata={"axes": "TZYX"})
    viewer, w, _ = make_widget()
    (data, meta, _kind), = read_tiff(str(p))
    image = viewer.add_image(data, **meta)  # what napari does with our reader's tuple
    w.set_image_layer(image)
    assert [w.axis_combo.itemText(i) for i in range(2)] == ["t (4 frames)", "z (3 planes)"]
    # opened with napari's own reader: the widget reads the axes from the file
    viewer.layers.clear()
    layer = viewer.open(str(p), plugin="napari")[0]
    assert tuple(str(x) for x in layer.axis_labels)[0] != "t"
    w.set_image_layer(layer)
    assert [w.axis_combo.itemText(i) for i in range(2)] == ["t (4 frames)", "z (3 planes)"]
