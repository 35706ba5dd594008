"""The IPNet dock widget in a real napari viewer (Xvfb, CPU, random weights).

Random weights make the masks meaningless: these tests check the plumbing (which
frames are touched, what the layers hold, undo, cancel, errors), never accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
from qt_helpers import draw_stroke, path, propagate_and_wait, wait_idle

from napari_ipnet._qt.widget import NEGATIVE_COLOR, SHORTCUTS, IPNetWidget, shortcut_help

_scribble = draw_stroke
_propagate = propagate_and_wait  # returns (frames, cancelled)


def test_widget_docks_with_manifest_command(make_napari_viewer):
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-ipnet", "Interactive segmentation")
    assert isinstance(widget, IPNetWidget)
    assert widget.image_layer is None
    assert "Alt+1" in widget.toolTip() and "Shift+Enter" in widget.toolTip()


def test_stroke_runs_interaction_on_its_frame_only(make_widget, tiny_rgb, qtbot, notes):
    viewer, w, image = make_widget(tiny_rgb)
    assert w.output_layer is None
    w.activate_scribbles("shapes")  # the Freehand button
    shapes = w.scribble_layer()
    assert viewer.layers.selection.active is shapes and shapes.mode == "add_path"
    out = w.output_layer  # made with the scribble layer
    assert out is not None and out.data.shape == (6, 64, 80) and not out.data.any()
    with qtbot.waitSignal(w.interaction_done, timeout=60_000) as blocker:
        _scribble(qtbot, w, frame=2)
    assert blocker.args == [2]
    s = w.session
    assert s.object_ids == [1] and s.pending_frame == 2
    touched = [t for t in range(6) if out.data[t].any()]
    assert touched == [2]
    np.testing.assert_array_equal(out.data[2], s.label_frame(2))
    assert not [n for n in notes if n[0] == "error"]
    # one undo step for the interaction
    out.undo()
    assert not out.data.any()


def test_propagate_fills_every_frame_in_plan_order(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=2)
    plan = w.session.propagation_plan()
    assert sorted(plan) == [0, 1, 3, 4, 5]
    seen = []
    w.frame_done.connect(seen.append)
    frames, cancelled = _propagate(qtbot, w)
    assert not cancelled
    assert seen == plan == frames
    out = w.output_layer
    assert all(out.data[t].any() for t in range(6))
    np.testing.assert_array_equal(out.data, w.session.labels)
    assert w.session.pending_frame is None
    assert w.last_propagation_seconds is not None and w.last_propagation_seconds > 0
    print(f"\n[timing] propagate 5 frames of 64x80 (random weights, CPU): {w.last_propagation_seconds:.2f} s")
    from napari.utils.progress import progress

    assert not [p for p in progress._all_instances if "IPNet" in str(p.desc)]


@pytest.mark.parametrize("how", ["widget", "progress bar", "worker quit"])
def test_cancel_halfway_keeps_a_consistent_state(make_widget, tiny_rgb, qtbot, how):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=0)
    session = w.session
    plan = session.propagation_plan()
    assert plan == [1, 2, 3, 4, 5]
    label_frame = session.label_frame

    def slow_label_frame(t):  # leave the main thread ample time to cancel after frame 2
        if t > 2:
            import time

            time.sleep(0.5)
        return label_frame(t)

    session.label_frame = slow_label_frame
    def cancel_at_2(t):
        if t == 2:
            if how == "widget":
                w.cancel_btn.click()
            elif how == "progress bar":
                w._pbar.cancel()  # what the Cancel button of napari's progress bar does
            else:
                w.controller.worker.quit()  # what cancelling the task in napari's activity dock does

    w.frame_done.connect(cancel_at_2)
    frames, cancelled = _propagate(qtbot, w)
    w.frame_done.disconnect(cancel_at_2)
    assert cancelled
    assert frames == plan[: len(frames)] and 2 <= len(frames) < len(plan)
    del session.label_frame
    out = w.output_layer
    s = w.session
    # the layer and the engine agree frame by frame; frames not reached are untouched
    np.testing.assert_array_equal(out.data, s.labels)
    assert [t for t in range(6) if out.data[t].any()] == [0, *frames]
    assert s.pending_frame is None  # the round is closed
    # one undo step covers the part of the round that was done, in the layer and the engine
    before_round = out.data.copy()
    out.undo()
    assert not out.data[frames].any() and out.data[0].any()
    assert s.pending_frame == 0 and s.annotated_frames() == []  # the round is open again
    np.testing.assert_array_equal(out.data, s.labels)
    out.redo()
    np.testing.assert_array_equal(out.data, before_round)
    assert s.pending_frame is None and s.annotated_frames() == [0]
    np.testing.assert_array_equal(out.data, s.labels)
    if how != "widget":
        return
    # the session keeps working: a correction on the last frame propagates back
    _scribble(qtbot, w, frame=5)
    frames2, cancelled2 = _propagate(qtbot, w)
    assert not cancelled2 and frames2 and all(t < 5 for t in frames2)


def test_docking_fits_the_image_to_the_narrower_canvas(make_widget, tiny_rgb, qtbot):
    """The dock takes canvas width: the view is reset so that the image is not cut off."""
    viewer, w, image = make_widget(tiny_rgb, show=True)
    qtbot.waitUntil(w.isVisible, timeout=5000)
    qtbot.wait(100)
    zoom, center = viewer.camera.zoom, tuple(viewer.camera.center)
    viewer.reset_view()
    assert viewer.camera.zoom == pytest.approx(zoom)
    assert tuple(viewer.camera.center) == pytest.approx(center)


def test_undo_restores_previous_labels_per_round(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=3)
    out = w.output_layer
    after_interaction = out.data.copy()
    _propagate(qtbot, w)
    after_round = out.data.copy()
    assert (after_round != after_interaction).any()
    s = w.session
    out.undo()  # what Ctrl+Z does on the selected Labels layer
    np.testing.assert_array_equal(out.data, after_interaction)
    assert s.pending_frame == 3 and s.annotated_frames() == []  # the engine follows
    out.redo()
    np.testing.assert_array_equal(out.data, after_round)
    assert s.pending_frame is None and s.annotated_frames() == [3]
    w.undo()  # the widget's Undo (Alt+Z): the same history
    np.testing.assert_array_equal(out.data, after_interaction)
    np.testing.assert_array_equal(out.data, s.labels)
    w.undo()
    assert not out.data.any()
    assert s.object_ids == [] and s.pending_frame is None and not s.labels.any()


def _shape_model(stub_model):
    """Deterministic stub networks whose masks follow the strokes and the neighbour mask.

    (The random-weight model of these tests says "foreground" everywhere, so a second
    round would not change the layer.)
    """
    import torch.nn.functional as F

    model = stub_model()
    model.interaction.value = lambda rgb, prev, pos, neg: 0.05 + 0.9 * F.max_pool2d(pos, 21, 1, 10) * (1 - neg)
    model.propagation.value = lambda rgb, prev, nb: 0.05 + 0.9 * nb
    return model


def test_undo_and_redo_roll_the_engine_back_and_forth(make_widget, tiny_rgb, qtbot, stub_model):
    from qtpy.QtCore import Qt

    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.set_model(_shape_model(stub_model), "stub")
    _scribble(qtbot, w, frame=3)
    _propagate(qtbot, w)
    s = w.session
    out = w.output_layer
    after_a = out.data.copy()
    np.testing.assert_array_equal(after_a, s.labels)
    fused_a = s._objects[1].fused_reference

    # round B: a correction on frame 0, propagated
    _scribble(qtbot, w, frame=0, y=25, x0=5, x1=20)
    assert s.pending_frame == 0
    _propagate(qtbot, w)
    after_b = out.data.copy()
    assert s.annotated_frames() == [0, 3] and (after_b != after_a).any()

    # Ctrl+Z twice on the output layer: round B, then its interaction
    viewer.layers.selection.active = out
    canvas = viewer.window._qt_viewer.canvas.native
    ctrl = Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(canvas, Qt.Key.Key_Z, ctrl)
    assert s.pending_frame == 0 and s.annotated_frames() == [3]
    np.testing.assert_array_equal(out.data, s.labels)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, ctrl)
    np.testing.assert_array_equal(out.data, after_a)
    np.testing.assert_array_equal(s.labels, after_a)
    assert s.pending_frame is None and s.annotated_frames() == [3]
    assert s._objects[1].fused_reference is fused_a and not s._objects[1].positive
    assert w.session.propagation_plan() == []
    # Ctrl+Shift+Z redoes both, the engine too
    shift_ctrl = ctrl | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(canvas, Qt.Key.Key_Z, shift_ctrl)
    assert s.pending_frame == 0 and s.annotated_frames() == [3]
    qtbot.keyClick(canvas, Qt.Key.Key_Z, shift_ctrl)
    np.testing.assert_array_equal(out.data, after_b)
    np.testing.assert_array_equal(s.labels, after_b)
    assert s.annotated_frames() == [0, 3] and s.pending_frame is None

    # undo round B again (widget Undo), then do it once more: the same result as the
    # first time, as if the undone round had never happened
    w.undo()
    w.undo()
    np.testing.assert_array_equal(s.labels, after_a)
    _scribble(qtbot, w, frame=0, y=25, x0=5, x1=20)
    assert s.pending_frame == 0 and s.annotated_frames() == [3]
    _propagate(qtbot, w)
    np.testing.assert_array_equal(out.data, after_b)
    np.testing.assert_array_equal(s.labels, after_b)
    # the redo side is gone with the new round: redo changes nothing
    out.redo()
    np.testing.assert_array_equal(out.data, after_b)
    assert s.annotated_frames() == [0, 3]


def test_undo_and_redo_keep_the_object_list_in_step(make_widget, tiny_rgb, qtbot, stub_model):
    """Objects undone away leave the list (Add gives the next id again); redo brings them back."""
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.set_model(_shape_model(stub_model), "stub")
    _scribble(qtbot, w, frame=3)
    _propagate(qtbot, w)
    assert w.add_object() == 2
    w.rename_object(2, "cell")
    _scribble(qtbot, w, frame=3, y=10, x0=50, x1=70)
    assert w.add_object() == 3
    _scribble(qtbot, w, frame=3, y=55, x0=50, x1=70)
    _propagate(qtbot, w)
    s, out = w.session, w.output_layer
    assert s.object_ids == [1, 2, 3] and sorted(w.objects) == [1, 2, 3]
    after = out.data.copy()
    w.undo()  # the round
    assert sorted(w.objects) == [1, 2, 3]
    w.undo()  # object 3's interaction
    assert s.object_ids == [1, 2] and sorted(w.objects) == [1, 2] and w.current_object == 2
    w.undo()  # object 2's interaction
    assert s.object_ids == [1] and w.objects == {1: "object 1"} and w.current_object == 1
    assert w.object_list.count() == 1
    out.redo()
    out.redo()
    out.redo()
    np.testing.assert_array_equal(out.data, after)
    assert w.objects == {1: "object 1", 2: "cell", 3: "object 3"} and w.object_list.count() == 3
    w.undo()
    w.undo()
    assert sorted(w.objects) == [1, 2]
    assert w.add_object() == 3  # the lowest id above the existing ones, not 4


def test_undo_is_refused_while_propagating(make_widget, tiny_rgb, qtbot, notes):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=0)
    out = w.output_layer
    after_interaction = out.data.copy()
    tried = []

    def undo_at_1(t):
        if t == 1:
            out.undo()  # Ctrl+Z on the output layer while the round runs
            tried.append(out.data[0].copy())

    w.frame_done.connect(undo_at_1)
    frames, cancelled = _propagate(qtbot, w)
    w.frame_done.disconnect(undo_at_1)
    assert tried and not cancelled
    np.testing.assert_array_equal(tried[0], after_interaction[0])  # nothing undone
    assert any(sev == "warning" and "wait for the running job" in msg for sev, msg in notes)
    np.testing.assert_array_equal(out.data, w.session.labels)
    out.undo()  # now it works, for both
    np.testing.assert_array_equal(out.data, after_interaction)
    assert w.session.pending_frame == 0
    # closing the widget gives the layer its own undo / redo back
    assert "undo" in vars(out) and "redo" in vars(out)
    w.cleanup()
    assert "undo" not in vars(out) and "redo" not in vars(out)
    out.redo()
    assert w.session.pending_frame == 0  # no longer followed


def test_two_objects(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    shapes = _scribble(qtbot, w, frame=1, y=30, x0=18, x1=30)
    k = w.add_object("square")
    assert k == 2 and w.current_object == 2
    _scribble(qtbot, w, frame=1, y=55, x0=40, x1=70)
    assert list(shapes.features["object_id"]) == [1, 2]
    assert list(shapes.features["positive"]) == [True, True]
    out = w.output_layer
    for i, obj in enumerate((1, 2)):  # stroke colour = the object's colour in the output layer
        np.testing.assert_allclose(shapes.edge_color[i][:3], out.colormap.map(np.array([obj]))[0][:3], atol=1e-3)
    s = w.session
    assert s.object_ids == [1, 2]
    frames, _ = _propagate(qtbot, w)
    assert frames == [2, 3, 4, 5, 0]
    assert set(np.unique(out.data)) <= {0, 1, 2}
    np.testing.assert_array_equal(out.data, s.labels)
    w.rename_object(2, "ball")
    assert w.objects[2] == "ball" and out.metadata["napari_ipnet_objects"][2] == "ball"


def test_negative_strokes_and_object_reset(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    shapes = _scribble(qtbot, w, frame=1)
    w.set_negative(True)
    _scribble(qtbot, w, frame=1, y=5, x0=50, x1=75)
    assert list(shapes.features["positive"]) == [True, False]
    np.testing.assert_allclose(shapes.edge_color[1][:3], [1.0, 0x30 / 255, 0x30 / 255], atol=1e-3)
    assert NEGATIVE_COLOR == "#ff3030"
    w.set_negative(False)
    w.add_object()
    _scribble(qtbot, w, frame=1, y=55, x0=40, x1=70)
    out = w.output_layer
    assert w.session.object_ids == [1, 2]
    ones_before = int((out.data == 1).sum())
    w.reset_object(1)
    assert not (out.data == 1).any() and ones_before > 0
    assert w.session.object_ids == [2]
    assert list(shapes.features["object_id"]) == [2]  # the strokes of object 1 are gone
    out.undo()  # the reset is one undo step
    assert int((out.data == 1).sum()) == ones_before
    out.redo()
    assert not (out.data == 1).any()
    w.reset_all()
    assert not (out.data == 1).any() and not (out.data == 2).any()
    assert len(shapes.data) == 0 and w.session is None


def _delete_strokes(qtbot, widget, shapes, indices):
    shapes.selected_data = set(indices)
    shapes.remove_selected()
    wait_idle(qtbot, widget)


def test_deleting_a_stroke_takes_its_effect_back_until_propagated(make_widget, tiny_rgb, qtbot, notes):
    big = np.repeat(np.repeat(tiny_rgb, 4, axis=1), 4, axis=2)  # room for regions of interest
    _viewer, w, _image = make_widget(big)
    shapes = _scribble(qtbot, w, frame=2, y=100, x0=50, x1=70)
    out = w.output_layer
    only_first = out.data[2].copy()
    _scribble(qtbot, w, frame=2, y=130, x0=80, x1=110)  # widens the region of interest
    both = out.data[2].copy()
    w.add_object()
    _scribble(qtbot, w, frame=2, y=20, x0=260, x1=300)  # object 2
    assert w.session.object_ids == [1, 2] and (out.data[2] == 2).any()
    assert (both != only_first).any()
    assert len(set(shapes.features["stroke"])) == 3  # each stroke has its own id

    # object 2's only stroke: object 2 leaves the frame and the engine
    _delete_strokes(qtbot, w, shapes, [2])
    assert w.session.object_ids == [1] and not (out.data == 2).any()
    np.testing.assert_array_equal(out.data[2], both)
    # the second stroke of object 1: the frame is segmented again from the first one alone
    _delete_strokes(qtbot, w, shapes, [1])
    np.testing.assert_array_equal(out.data[2], only_first)
    np.testing.assert_array_equal(w.session.label_frame(2), only_first)
    assert w.session.pending_frame == 2
    assert "strokes left" in w.status_label.text()
    out.undo()  # taking a stroke back is one undo step, engine and stroke included
    np.testing.assert_array_equal(out.data[2], both)
    np.testing.assert_array_equal(w.session.label_frame(2), both)
    assert len(shapes.data) == 2, "undoing the deletion draws the stroke again"
    out.redo()
    np.testing.assert_array_equal(w.session.label_frame(2), only_first)
    assert len(shapes.data) == 1
    assert not [n for n in notes if n[0] == "error"]
    # after undo / redo the round's strokes are still known: deleting the last one takes
    # the round back (nothing to say "stays" about)
    _delete_strokes(qtbot, w, shapes, [0])
    assert not out.data[2].any() and w.session.pending_frame is None
    assert "back to before this round" in w.status_label.text()
    assert not any("effect stays" in n[1] for n in notes)


def test_deleting_a_stroke_while_the_network_runs_on_it(make_widget, tiny_rgb, qtbot, notes):
    big = np.repeat(np.repeat(tiny_rgb, 4, axis=1), 4, axis=2)
    _viewer, w, _image = make_widget(big)
    shapes = _scribble(qtbot, w, frame=2, y=100, x0=50, x1=70)
    out = w.output_layer
    only_first = out.data[2].copy()
    shapes.add_paths([path((2,), 130, 80, 110)])  # starts the network on frame 2 ...
    assert not w.is_idle()
    _delete_strokes(qtbot, w, shapes, [1])  # ... and is deleted before it returns
    np.testing.assert_array_equal(out.data[2], only_first)
    np.testing.assert_array_equal(w.session.label_frame(2), only_first)
    assert not [n for n in notes if "effect stays" in n[1]]


def test_deleting_every_stroke_of_a_round_and_a_propagated_one(make_widget, tiny_rgb, qtbot, notes):
    big = np.repeat(np.repeat(tiny_rgb, 4, axis=1), 4, axis=2)
    _viewer, w, _image = make_widget(big)
    shapes = _scribble(qtbot, w, frame=1, y=100, x0=50, x1=70)
    out = w.output_layer
    _propagate(qtbot, w)
    after_round1 = out.data.copy()
    w.add_object()
    _scribble(qtbot, w, frame=4, y=20, x0=260, x1=300)  # round 2 on frame 4: a second object
    assert w.session.pending_frame == 4 and (out.data[4] == 2).any()
    _delete_strokes(qtbot, w, shapes, [1])
    # back to before round 2: nothing waits to be propagated, object 2 is gone
    np.testing.assert_array_equal(out.data, after_round1)
    assert w.session.pending_frame is None and w.session.object_ids == [1]
    np.testing.assert_array_equal(w.session.labels, after_round1)
    # round 1 is propagated: deleting its stroke changes nothing, and says so
    _delete_strokes(qtbot, w, shapes, [0])
    np.testing.assert_array_equal(out.data, after_round1)
    assert any("effect stays" in n[1] for n in notes)
    assert len(shapes.data) == 0


def test_deleting_a_click_keeps_the_brush_paint_of_its_round(make_widget, tiny_rgb, qtbot):
    big = np.repeat(np.repeat(tiny_rgb, 4, axis=1), 4, axis=2)
    _viewer, w, _image = make_widget(big)
    brush = w.brush_layer()
    brush.brush_size = 9
    with qtbot.waitSignal(w.interaction_done, timeout=60_000):
        brush.paint((2, 100, 60), 1)
    wait_idle(qtbot, w)
    out = w.output_layer
    painted = out.data[2].copy()
    assert painted.any()
    w.add_object()
    clicks = w.clicks_layer()
    clicks.add([[2, 20, 290]])  # object 2, same round
    wait_idle(qtbot, w)
    assert w.session.object_ids == [1, 2] and (out.data[2] == 2).any()
    _delete_strokes(qtbot, w, clicks, [0])
    # brush paint cannot be deleted stroke by stroke: it stays in the round
    np.testing.assert_array_equal(out.data[2], painted)
    assert w.session.object_ids == [1] and w.session.pending_frame == 2


def test_existing_labels_are_respected(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    user = np.zeros((6, 64, 80), np.uint8)
    user[:, 50:60, 60:75] = 7  # an object the user painted by hand
    labels = viewer.add_labels(user.copy(), name="hand made")
    w.set_output_layer(labels)
    assert w.output_layer is labels
    assert w.add_object() == 8  # above the labels already in the layer
    w.select_object(1)
    _scribble(qtbot, w, frame=2)
    _propagate(qtbot, w)
    assert (labels.data[user == 7] == 7).all()  # never overwritten
    assert all((labels.data[t] == 1).any() for t in range(6))  # but every frame got a result
    w.reset_all()
    np.testing.assert_array_equal(labels.data, user)


def test_z_axis_of_a_4d_stack(make_widget, qtbot):
    rng = np.random.default_rng(1)
    stack = rng.integers(100, 400, (3, 5, 48, 64), dtype=np.uint16)  # (T, Z, Y, X)
    viewer, w, image = make_widget(stack)
    assert w.axis_combo.count() == 2
    w.set_axis(1)  # propagate along z; t is fixed where the user scribbles
    viewer.dims.set_current_step(0, 1)
    w.scribble_layer()
    assert w.scribble_layer().ndim == 4
    _scribble(qtbot, w, frame=2, lead=(1, 2))
    rec = w.controller.active
    assert rec.spec.axis == 1 and rec.spec.fixed == ((0, 1),)
    assert rec.frames.shape == (5, 48, 64)
    np.testing.assert_array_equal(rec.frames[3], stack[1, 3])
    out = w.output_layer
    assert out.data.shape == stack.shape
    frames, _ = _propagate(qtbot, w)
    assert sorted(frames) == [0, 1, 3, 4]
    assert all(out.data[1, z].any() for z in range(5))
    assert not out.data[0].any() and not out.data[2].any()
    np.testing.assert_array_equal(out.data[1], w.session.labels)
    # scribbling at another time point starts another session, along z again
    _scribble(qtbot, w, frame=0, lead=(2, 0))
    assert w.controller.active.spec.fixed == ((0, 2),) and len(w.sessions) == 2


def test_time_axis_of_a_4d_stack_fixes_z(make_widget, qtbot):
    stack = np.random.default_rng(2).integers(0, 255, (4, 3, 40, 48), dtype=np.uint8)
    viewer, w, image = make_widget(stack)
    w.set_axis(0)
    _scribble(qtbot, w, frame=1, lead=(1, 2), y=20, x0=5, x1=30)
    assert w.controller.active.spec.fixed == ((1, 2),)
    assert w.output_layer.data[1, 2].any() and not w.output_layer.data[1, 0].any()


def test_brush_and_click_scribbles(make_widget, tiny_rgb, qtbot):
    viewer, w, image = make_widget(tiny_rgb)
    w.activate_scribbles("brush")
    brush = w.brush_layer()
    assert viewer.layers.selection.active is brush and brush.mode == "paint"
    assert brush.selected_label == 1
    brush.brush_size = 3
    with qtbot.waitSignal(w.interaction_done, timeout=60_000) as blocker:
        brush.paint((3, 30, 30), 1)  # one finished brush stroke on frame 3
    wait_idle(qtbot, w)
    assert blocker.args == [3]
    out = w.output_layer
    assert [t for t in range(6) if out.data[t].any()] == [3]
    assert w.session.object_ids == [1] and w.session.pending_frame == 3
    # negative brush label
    w.set_negative(True)
    assert brush.selected_label == 255
    with qtbot.waitSignal(w.interaction_done, timeout=60_000):
        brush.paint((3, 5, 70), brush.selected_label)
    wait_idle(qtbot, w)
    # painting label 2 creates object 2
    w.set_negative(False)
    with qtbot.waitSignal(w.interaction_done, timeout=60_000):
        brush.paint((3, 50, 10), 2)
    wait_idle(qtbot, w)
    assert 2 in w.objects and w.session.object_ids == [1, 2]
    # a click (Points layer) is a small disk scribble on its frame
    clicks = w.clicks_layer()
    w.select_object(1)
    with qtbot.waitSignal(w.interaction_done, timeout=60_000) as blocker:
        clicks.add([[4, 32, 40]])
    wait_idle(qtbot, w)
    assert blocker.args == [4]
    assert out.data[4].any() and w.session.pending_frame == 4


def test_keyboard_shortcuts(make_widget, tiny_rgb, qtbot):
    from qtpy.QtCore import Qt

    viewer, w, image = make_widget(tiny_rgb)
    w.scribble_layer()
    canvas = viewer.window._qt_viewer.canvas.native
    alt = Qt.KeyboardModifier.AltModifier
    qtbot.keyClick(canvas, Qt.Key.Key_A, alt)
    assert w.current_object == 2
    qtbot.keyClick(canvas, Qt.Key.Key_1, alt)
    assert w.current_object == 1
    qtbot.keyClick(canvas, Qt.Key.Key_N, alt)
    assert w.negative_check.isChecked()
    qtbot.keyClick(canvas, Qt.Key.Key_N, alt)
    assert not w.negative_check.isChecked()
    _scribble(qtbot, w, frame=4)
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        qtbot.keyClick(canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    wait_idle(qtbot, w)
    assert w.output_layer.data.all(axis=(1, 2)).any()
    out = w.output_layer
    after_round = out.data.copy()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, alt)  # undo the round, whatever layer is selected
    after_undo = out.data.copy()
    assert (after_undo != after_round).any()
    assert w.session.pending_frame == 4
    out.redo()
    viewer.layers.selection.active = out
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # napari's own undo
    np.testing.assert_array_equal(out.data, after_undo)
    # no clash with napari's own defaults
    from napari.utils.shortcuts import default_shortcuts

    napari_keys = {str(k) for ks in default_shortcuts.values() for k in ks}
    from napari.utils.key_bindings import coerce_keybinding

    ours = {str(coerce_keybinding(k)) for k, *_ in SHORTCUTS}
    assert not ours & napari_keys
    assert "Shift+Enter" in shortcut_help()


def test_shortcuts_unbound_when_widget_closes(make_widget, tiny_rgb):
    viewer, w, image = make_widget(tiny_rgb)
    from napari.utils.key_bindings import coerce_keybinding

    key = coerce_keybinding("Alt-A")
    assert key in viewer.keymap
    w.cleanup()
    assert key not in viewer.keymap


def test_unsupported_layers_notify_without_crashing(make_widget, qtbot, notes):
    viewer, w, _ = make_widget()
    flat = viewer.add_image(np.zeros((64, 80), np.uint8), name="flat")
    w.set_image_layer(flat)
    assert any(sev == "warning" and "2D image" in msg for sev, msg in notes)
    w.activate_scribbles("shapes")
    assert any(sev == "error" and "2D image" in msg for sev, msg in notes)
    assert not any(x.metadata.get("napari_ipnet_role") for x in viewer.layers)
    photo = viewer.add_image(np.zeros((64, 80, 3), np.uint8), name="photo", rgb=True)
    w.set_image_layer(photo)
    assert any("RGB image" in msg for _, msg in notes)
    w.propagate()
    assert any("scribble on a frame first" in msg for _, msg in notes)
    assert w.is_idle()


def test_missing_weights_are_reported(make_widget, tiny_rgb, qtbot, notes, monkeypatch, tmp_path):
    import napari_ipnet.weights as weights

    monkeypatch.setattr(weights, "bundled_weights_dir", lambda: tmp_path)  # no default weights here
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.scribble_layer().add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    errors = [msg for sev, msg in notes if sev == "error"]
    assert errors and "weights" in errors[0] and "Checkpoint file" in errors[0]
    assert w.model is None and w.is_idle()


def test_layer_removed_mid_run(make_widget, tiny_rgb, qtbot, notes):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=0)
    w.frame_done.connect(lambda t: viewer.layers.remove(image) if image in viewer.layers else None)
    frames, cancelled = _propagate(qtbot, w)
    assert cancelled and len(frames) < 5
    assert any(sev == "warning" and "removed" in msg for sev, msg in notes)
    assert w.is_idle() and w.session is None
    assert not [n for n in notes if n[0] == "error"]


def test_output_layer_removed_mid_run(make_widget, tiny_rgb, qtbot, notes):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=0)
    out = w.output_layer
    w.frame_done.connect(lambda t: viewer.layers.remove(out) if out in viewer.layers else None)
    frames, cancelled = _propagate(qtbot, w)
    assert cancelled
    assert any("output layer" in msg for _, msg in notes)
    assert w.is_idle() and w.output_layer is None
    # a new scribble makes a new output layer
    _scribble(qtbot, w, frame=1)
    assert w.output_layer is not None and w.output_layer.data[1].any()


def test_worker_errors_become_notifications(make_widget, tiny_rgb, qtbot, notes, monkeypatch):
    viewer, w, image = make_widget(tiny_rgb)
    _scribble(qtbot, w, frame=0)
    session = w.session

    def boom(frame):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(session, "label_frame", boom)
    frames, cancelled = _propagate(qtbot, w)
    errors = [msg for sev, msg in notes if sev == "error"]
    assert errors and "out of GPU memory" in errors[-1] and "cpu" in errors[-1]
    assert w.is_idle()


@pytest.mark.parametrize("channel", [None, 1])
def test_rgb_channel_choice(make_widget, tiny_rgb, qtbot, channel):
    viewer, w, image = make_widget(tiny_rgb)
    assert w.channel_combo.count() == 4  # colour, R, G, B
    w.set_channel(channel)
    _scribble(qtbot, w, frame=0)
    frames = w.controller.active.frames
    expected = tiny_rgb[5] if channel is None else tiny_rgb[5, ..., channel]
    np.testing.assert_array_equal(frames[5], expected)


def test_freehand_drawing_with_the_mouse(make_widget, tiny_rgb, qtbot):
    """The real GUI path: press, drag, release in add_path mode on frame 3."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    viewer, w, image = make_widget(tiny_rgb)
    w.activate_scribbles("shapes")
    shapes = w.scribble_layer()
    viewer.dims.set_current_step(0, 3)
    pts = [(3, 30, x) for x in (12, 18, 24, 30, 36)]

    def ev(kind, p):
        return read_only_mouse_event(type=kind, is_dragging=True, position=p, pos=np.asarray(p[1:]) * 4)

    mouse_press_callbacks(shapes, ev("mouse_press", pts[0]))
    for p in pts[1:]:
        mouse_move_callbacks(shapes, ev("mouse_move", p))
    assert w.is_idle()  # nothing runs while the stroke is being drawn
    with qtbot.waitSignal(w.interaction_done, timeout=60_000) as blocker:
        mouse_release_callbacks(shapes, ev("mouse_release", pts[-1]))
    wait_idle(qtbot, w)
    assert blocker.args == [3] and shapes.shape_type == ["path"]
    assert [t for t in range(6) if w.output_layer.data[t].any()] == [3]
    # the new stroke is selected by napari: changing object must not recolour it
    old = shapes.edge_color[0].copy()
    w.add_object()
    np.testing.assert_allclose(shapes.edge_color[0], old)


def test_load_a_checkpoint_file(make_widget, tiny_rgb, qtbot, lite_model, tmp_path, monkeypatch, notes):
    from qtpy.QtWidgets import QFileDialog

    from napari_ipnet.weights import save_checkpoint

    ckpt = save_checkpoint(lite_model, tmp_path / "mine.safetensors")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(ckpt), "")))
    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.device_combo.setCurrentText("cpu")
    w.model_combo.setCurrentIndex(w.model_combo.findData("file"))
    assert w.model is None and w.model_panel.model_source == str(ckpt)
    w.load_btn.click()
    wait_idle(qtbot, w)
    assert w.model is not None and str(w.model.device) == "cpu"
    assert "mine.safetensors" in w.model_status.text()
    _scribble(qtbot, w, frame=1)
    assert w.output_layer.data[1].any()
    assert not [n for n in notes if n[0] == "error"]


def test_paper_weights_need_the_licence(make_widget, tiny_rgb, qtbot, monkeypatch, tmp_path, notes):
    from qtpy.QtWidgets import QMessageBox

    import napari_ipnet.fetch as fetch

    monkeypatch.setenv("NAPARI_IPNET_CACHE", str(tmp_path))  # no weights downloaded here
    asked = []

    def answer(reply):
        def question(parent, title, text, *args, **kwargs):
            asked.append(text)
            return reply

        return staticmethod(question)

    viewer, w, image = make_widget(tiny_rgb, model=False)
    w.model_combo.setCurrentIndex(w.model_combo.findData("ipnet-paper"))
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    w.load_model()
    assert asked and "NON-COMMERCIAL" in asked[0].upper() and "BY-NC-SA" in asked[0]
    assert any(sev == "warning" and "not downloaded" in msg for sev, msg in notes)
    assert w.is_idle() and w.model is None

    calls = []

    def no_network(name, dest=None, urls=None, progress=True, accept_license=False, **kw):
        calls.append((name, accept_license))
        raise fetch.FetchError("cannot reach www.dropbox.com (offline?)")

    monkeypatch.setattr(fetch, "fetch_weights", no_network)
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    w.load_model()
    wait_idle(qtbot, w)
    assert calls == [("ipnet-paper", True)]
    assert any(sev == "error" and "offline" in msg for sev, msg in notes)
    assert w.model is None and w.is_idle()


def test_unavailable_device_is_reported(make_widget, tiny_rgb, notes):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    viewer, w, image = make_widget(tiny_rgb)
    w.device_combo.setCurrentText("cuda")
    assert any(sev == "error" and "cuda" in msg and "cpu" in msg for sev, msg in notes)
    assert w.device_combo.currentText() == "auto" and str(w.model.device) == "cpu"


def test_objects_may_end_follows_the_axis_and_reaches_the_session(make_widget, qtbot, qt_model):
    import dataclasses

    from napari_ipnet.model.networks import build_model

    stack = np.random.default_rng(1).integers(100, 400, (3, 5, 48, 64), dtype=np.uint16)  # (T, Z, Y, X)
    viewer, w, _ = make_widget(stack)
    assert not w.ending_check.isEnabled(), "a model with one propagation network cannot use it"
    two = build_model(dataclasses.replace(qt_model.config, ending_network=True))
    w.set_model(two, "two propagation networks")
    assert w.ending_check.isEnabled()
    w.set_model(qt_model, "one")
    assert not w.ending_check.isEnabled()
    w.set_model(two, "two propagation networks")
    viewer.dims.axis_labels = ("t", "z", "y", "x")
    w._on_image_changed()
    w.set_axis(1)
    assert w.objects_may_end, "on by default along z"
    w.set_axis(0)
    assert not w.objects_may_end, "off along time"
    w.set_axis(1)
    viewer.dims.set_current_step(0, 1)
    _scribble(qtbot, w, frame=2, lead=(1, 2))
    assert w.session.objects_may_end is True
    w.ending_check.setChecked(False)  # the user overrides: the running session follows
    assert w.session.objects_may_end is False
    _propagate(qtbot, w)
    assert w.output_layer.data[1].any()


def test_future_warning_in_a_worker_is_shown_and_fails_the_tests(
    make_widget, tiny_rgb, qtbot, notes, monkeypatch, future_warnings_guard
):
    """superqt hides a worker's warnings; the widget relays FutureWarnings (deprecations)."""
    import warnings

    viewer, w, image = make_widget(tiny_rgb)
    shapes = w.scribble_layer()
    from napari_ipnet.session import Session

    interact = Session.interact

    def deprecated_interact(self, *args, **kwargs):
        where = "napari/layers/labels.py"
        warnings.warn_explicit("Labels.thing is deprecated", FutureWarning, where, 1)
        return interact(self, *args, **kwargs)

    monkeypatch.setattr(Session, "interact", deprecated_interact)
    shapes.add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    assert any(sev == "warning" and "Labels.thing is deprecated" in msg for sev, msg in notes)
    assert len(future_warnings_guard) == 1  # would fail this test at teardown
    future_warnings_guard.clear()


def test_device_change_waits_for_the_running_job(make_widget, tiny_rgb, qtbot, stub_model, monkeypatch, notes):
    """The move happens once no job runs; the sessions' references follow, undo included.

    No GPU here: "cuda" resolves to the 'meta' device, which tensors can move to.
    """
    import torch

    import napari_ipnet.weights as weights

    meta = torch.device("meta")
    monkeypatch.setattr(weights, "resolve_device", lambda d: meta if str(d) == "cuda" else torch.device("cpu"))
    viewer, w, image = make_widget(tiny_rgb, model=False)
    model = _shape_model(stub_model)
    moves = []

    def to(device):
        moves.append((torch.device(device), w.controller.worker is None))
        model.device = torch.device(device)
        return model

    model.to = to
    w.device_combo.setCurrentText("cuda")  # no model yet: the next load uses it
    w.set_model(model, "stub")  # a model on the CPU: the choice says so
    assert w.device_combo.currentText() == "cpu" and not moves
    w.device_combo.setCurrentText("auto")  # idle: applied at once
    assert moves == [(torch.device("cpu"), True)]
    moves.clear()
    _scribble(qtbot, w, frame=0)
    s = w.session
    out = w.output_layer
    at_finish = []
    w.frame_done.connect(lambda t: w.device_combo.setCurrentText("cuda") if t == 2 else None)
    w.propagation_finished.connect(lambda *_: at_finish.append(list(moves)))
    _propagate(qtbot, w)
    assert any(sev == "info" and "once the running job has finished" in msg for sev, msg in notes)
    assert at_finish == [[]], "not moved while propagating"
    assert moves == [(meta, True)], "moved once, with no job running"
    assert s._objects[1].fused_reference.device == meta
    assert model.use_autocast is False and "on meta" in w.model_status.text()
    # undo brings back a snapshot from before the move: its references follow the model
    out.undo()
    assert s.pending_frame == 0 and s._objects[1].reference.device == meta


def test_objects_use_one_bright_palette_and_the_list_grows(make_widget, tiny_rgb, qtbot):
    from napari_ipnet._qt._colors import object_colors
    from napari_ipnet._qt._object_list import OBJECT_ROWS

    viewer, w, image = make_widget(tiny_rgb, show=True)
    lst = w.object_list
    tol = 9 / 255  # the icons are pixmaps of Xvfb's 16-bit display (5 bits for red and blue)
    icon = lst.item(0).icon().pixmap(12, 12).toImage().pixelColor(6, 6)  # no output layer yet
    np.testing.assert_allclose([icon.redF(), icon.greenF(), icon.blueF()], object_colors(1)[0, :3], atol=tol)
    shapes = _scribble(qtbot, w, frame=1)
    out = w.output_layer
    np.testing.assert_allclose(out.colormap.map(np.arange(1, 51)), object_colors(50), atol=1e-6)
    np.testing.assert_allclose(shapes.edge_color[0], object_colors(1)[0], atol=1e-3)
    row = lst.sizeHintForRow(0)
    assert lst.minimumSizeHint().height() >= OBJECT_ROWS[0] * row
    for _ in range(11):
        w.add_object()
    assert lst.count() == 12 and lst.sizeHint().height() >= 12 * row  # 12 objects: room for all
    viewer.window._qt_window.resize(1100, 1400)  # a tall window (Xvfb's screen is small)
    qtbot.waitUntil(lambda: lst.height() >= 12 * row, timeout=5000)  # given when the dock has room
    assert lst.verticalScrollBar().maximum() == 0
    k = w.current_object
    icon = lst.item(lst.count() - 1).icon().pixmap(12, 12).toImage().pixelColor(6, 6)
    np.testing.assert_allclose(
        [icon.redF(), icon.greenF(), icon.blueF()], out.colormap.map(np.array([k]))[0, :3], atol=tol
    )
    brush = w.brush_layer()
    np.testing.assert_allclose(brush.colormap.map(np.array([k]))[0], object_colors(k)[-1], atol=1e-6)
    for _ in range(30):
        w.add_object()
    assert OBJECT_ROWS[1] * row <= lst.sizeHint().height() < (OBJECT_ROWS[1] + 1) * row  # then it scrolls
    qtbot.waitUntil(lambda: lst.verticalScrollBar().maximum() > 0, timeout=5000)
    # a Labels layer chosen as output keeps its own colours; strokes and list follow it
    mine = viewer.add_labels(np.zeros((6, 64, 80), np.uint8), name="mine")
    w.set_output_layer(mine)
    w.select_object(3)
    from napari.utils.colormaps.standardize_color import transform_color

    current = transform_color(shapes.current_edge_color)[0]
    np.testing.assert_allclose(current, mine.colormap.map(np.array([3]))[0], atol=2 / 255)


def test_empty_results_are_reported(make_widget, tiny_rgb, qtbot, stub_model, notes):
    """An object left without a mask is named: after its stroke, and after propagation."""
    import torch

    frames = tiny_rgb.copy()
    frames[4:] = (0, 0, 255)  # flat blue frames: there the stub network finds nothing
    viewer, w, image = make_widget(frames, model=False)
    model = _shape_model(stub_model)
    follow = model.propagation.value

    def propagation(rgb, prev, nb):
        return torch.full_like(nb, 0.01) if rgb[:, 0].max() < 0.01 else follow(rgb, prev, nb)

    model.propagation.value = propagation
    w.set_model(model, "stub")
    _scribble(qtbot, w, frame=1)  # object 1: found
    assert "no mask" not in w.status_label.text() and not notes
    w.add_object("cell")
    model.interaction.value = 0.01  # object 2: the network finds nothing under its stroke
    _scribble(qtbot, w, frame=1, y=55, x0=40, x1=70)
    model.interaction.value = _shape_model(stub_model).interaction.value
    assert "object 2 (cell) got no mask there" in w.status_label.text()
    warnings = [msg for sev, msg in notes if sev == "warning"]
    assert len(warnings) == 1 and "object 2 (cell)" in warnings[0] and "frame 1" in warnings[0]
    lst = w.object_list
    assert lst.item(1).text() == "2: cell  [empty: 1]" and "frame 1" in lst.item(1).toolTip()
    assert lst.item(0).text() == "1: object 1"

    frames_done, _ = _propagate(qtbot, w)
    assert sorted(frames_done) == [0, 2, 3, 4, 5]
    out = w.output_layer
    assert not (out.data[4:] == 1).any() and (out.data[:4] == 1).any()
    assert "Object 1 empty on frames 4-5" in w.status_label.text()  # sentences start with a capital
    assert any(sev == "warning" and "after propagating, object 1 empty on frames 4-5" in msg for sev, msg in notes)
    assert lst.item(0).text() == "1: object 1  [empty: 4-5]"
    assert lst.item(1).text() == "2: cell  [empty: 1]"  # not on frame 1 at the start: not followed
    # renaming in the list keeps the mark out of the name
    lst.item(0).setText("1: nucleus  [empty: 4-5]")
    assert w.objects[1] == "nucleus" and lst.item(0).text() == "1: nucleus  [empty: 4-5]"
    # a new stroke on frame 4 finds object 1 there again: that frame is no longer marked
    w.select_object(1)
    _scribble(qtbot, w, frame=4, y=30, x0=30, x1=50)
    assert (out.data[4] == 1).any() and lst.item(0).text() == "1: nucleus  [empty: 5]"
    w.reset_object(1)
    assert w.controller.active.empty == {2: {1}}
    assert [lst.item(i).text() for i in range(lst.count())] == ["2: cell  [empty: 1]"]
