"""The widget's Qt-free helpers: layer -> frames, scribbles -> maps, results -> Labels history."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_ipnet.annotation.results import (
    RoundRecorder,
    apply_with_history,
    erase_change,
    frame_change,
)
from napari_ipnet.annotation.sequence import (
    FrameView,
    SequenceSpec,
    UnsupportedLayerError,
    check_layer,
    frame_view,
    make_spec,
)
from napari_ipnet.annotation.strokes import (
    CLICK_RADIUS,
    click_map,
    paint_bounds,
    shape_map,
    to_layer_coords,
)


class Recording:
    """Array-like recording the keys it is read with; refuses whole conversion."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.keys = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self._data[key]

    def __array__(self, *a, **k):
        raise AssertionError("the whole stack was converted")


def test_frame_view_reads_one_frame_at_a_time():
    data = np.arange(2 * 5 * 6 * 7, dtype=np.uint16).reshape(2, 5, 6, 7)  # T, Z, Y, X
    rec = Recording(data)
    view = FrameView(rec, SequenceSpec(ndim=4, axis=1, fixed=((0, 1),)))
    assert view.shape == (5, 6, 7) and view.dtype == np.uint16 and view.ndim == 3 and len(view) == 5
    np.testing.assert_array_equal(view[3], data[1, 3])
    np.testing.assert_array_equal(view[-1], data[1, 4])
    assert rec.keys == [(1, 3), (1, 4)]
    with pytest.raises(IndexError):
        view[5]


def test_frame_view_channel_of_rgb_video():
    data = np.random.default_rng(0).integers(0, 255, (4, 40, 50, 3), dtype=np.uint8)
    layer = Image(data, rgb=True)
    spec = make_spec(layer, 0, channel=2)
    view = frame_view(layer, spec)
    assert view.shape == (4, 40, 50)
    np.testing.assert_array_equal(view[1], data[1, ..., 2])
    colour = frame_view(layer, make_spec(layer, 0))
    assert colour.shape == (4, 40, 50, 3)


def test_session_reads_frames_lazily(lite_model):
    from napari_ipnet import Session

    data = np.random.default_rng(0).integers(0, 255, (3, 6, 48, 64), dtype=np.uint8)
    rec = Recording(data)
    view = FrameView(rec, SequenceSpec(ndim=4, axis=1, fixed=((0, 2),)))
    s = Session(view, lite_model)
    pos = np.zeros((48, 64), bool)
    pos[20:23, 10:40] = True
    s.interact(4, pos, None, 1)
    assert {k[0] for k in rec.keys} == {2}  # only time point 2 was ever read
    assert all(isinstance(k, tuple) and len(k) == 2 for k in rec.keys)


def test_spec_and_unsupported_layers():
    stack = Image(np.zeros((3, 4, 20, 30), np.uint8))
    spec = make_spec(stack, 1, position=(7, 2, 0, 0))  # t clipped into the layer
    assert spec.fixed == ((0, 2),) and spec.index(3) == (2, 3)
    frame, spec2 = spec.frame_of((1.2, 2.6, 10, 10))
    assert frame == 3 and spec2.fixed == ((0, 1),)
    with pytest.raises(UnsupportedLayerError, match="2D image"):
        check_layer(Image(np.zeros((20, 30))))
    with pytest.raises(UnsupportedLayerError, match="RGB image"):
        check_layer(Image(np.zeros((40, 50, 3), np.uint8), rgb=True))
    with pytest.raises(UnsupportedLayerError, match="Labels"):
        check_layer(Labels(np.zeros((3, 20, 30), np.uint8)))
    with pytest.raises(UnsupportedLayerError, match="cannot be propagated"):
        make_spec(stack, 2)


def test_shapes_to_maps():
    m = shape_map(np.array([[10, 5], [10, 25]]), "path", 30, 40)
    assert m[10, 5:26].all() and m[9, 15] and m[11, 15] and not m[12, 15]  # 1-px line dilated by 1
    assert m.sum() == 3 * 21 + 2  # the 3x3 dilation of a 21-px line (cross-shaped ends)
    filled = shape_map(np.array([[5, 5], [5, 15], [15, 15], [15, 5]]), "rectangle", 30, 40)
    assert filled[5:16, 5:16].all() and filled.sum() == 121
    ell = shape_map(np.array([[5, 5], [5, 25], [15, 25], [15, 5]]), "ellipse", 30, 40)
    assert ell[10, 15] and not ell[5, 5]
    out = shape_map(np.array([[-5, -5], [-5, 100]]), "path", 30, 40)
    assert not out.any()  # outside the image: empty, no error
    clipped = shape_map(np.array([[0, -10], [0, 100]]), "line", 30, 40)
    assert clipped[0].all()
    disk = click_map(np.array([[10, 10]]), 30, 40)
    yy, xx = np.mgrid[0:30, 0:40]
    np.testing.assert_array_equal(disk, (yy - 10) ** 2 + (xx - 10) ** 2 < CLICK_RADIUS**2)
    with pytest.raises(ValueError):
        shape_map(np.zeros((2, 2)), "star", 30, 40)


def test_to_layer_coords_follows_scale():
    from napari.layers import Shapes

    image = Image(np.zeros((4, 20, 30)), scale=(1, 2, 2))
    same = Shapes(ndim=3, scale=(1, 2, 2))
    other = Shapes(ndim=3)  # unit scale: world coords == its data coords
    pts = np.array([[1.0, 10.0, 12.0]])
    np.testing.assert_allclose(to_layer_coords(same, image, pts), pts)
    np.testing.assert_allclose(to_layer_coords(other, image, pts), [[1.0, 5.0, 6.0]])


def test_paint_bounds_of_both_history_atom_kinds():
    layer = Labels(np.zeros((5, 20, 30), np.uint8))
    seen = []
    layer.events.paint.connect(lambda e: seen.append(e.value))
    layer.paint((3, 10, 10), 1)
    layer.data_setitem((np.array([1, 4]), np.array([2, 2]), np.array([3, 3])), 2)
    assert paint_bounds(seen[0], 3) == [(3,)]
    assert paint_bounds(seen[1], 3) == [(1,), (4,)]
    assert paint_bounds([object()], 3) is None


def test_frame_change_keeps_labels_it_does_not_manage():
    data = np.zeros((3, 4, 5), np.uint8)
    data[1, 0, :] = 7  # a hand-made label
    data[1, 1, :] = 1  # object 1, managed
    spec = SequenceSpec(ndim=3, axis=0)
    new = np.full((4, 5), 1, np.uint8)
    new[3] = 0
    idx, old, val = frame_change(data, spec, 1, new, managed=[1])
    data[idx] = val
    assert (data[1, 0] == 7).all() and (data[1, 1:3] == 1).all() and (data[1, 3] == 0).all()
    assert frame_change(data, spec, 1, new, managed=[1]) is None  # nothing left to change
    new2 = np.zeros((4, 5), np.uint8)
    idx, old, val = frame_change(data, spec, 1, new2, managed=[1])  # object 1 vanishes
    data[idx] = val
    assert (data[1, 0] == 7).all() and not (data[1, 1:] == 1).any()
    assert erase_change(data, spec, 0, 1) is None


def test_round_recorder_makes_one_undo_step():
    layer = Labels(np.zeros((4, 6, 8), np.uint8))
    layer.data[0, :2] = 3  # user's own label, must survive
    spec = SequenceSpec(ndim=3, axis=0)
    apply_with_history(layer, [frame_change(layer.data, spec, 0, np.ones((6, 8), np.uint8), [1])])
    after_interaction = layer.data.copy()
    rec = RoundRecorder(layer)
    for t in (1, 2, 3):
        rec.write(t, frame_change(layer.data, spec, t, np.full((6, 8), 1, np.uint8), [1]))
        assert layer.data[t].all()  # shown at once
    layer.data[3, 0, 0] = 9  # the user paints while the round runs
    n = rec.commit()
    assert n == 3 * 48 - 1
    round_result = layer.data.copy()
    layer.undo()
    expected = after_interaction.copy()
    expected[3, 0, 0] = 9  # the user's pixel is not part of the round
    np.testing.assert_array_equal(layer.data, expected)
    layer.redo()
    np.testing.assert_array_equal(layer.data, round_result)
    layer.undo()
    layer.undo()
    assert (layer.data[0, :2] == 3).all() and not (layer.data[0, 2:]).any()


def test_gui_leaves_a_core_to_the_qt_thread(monkeypatch):
    import os

    from napari_ipnet._qt.widget import THREADS_ENV, cpu_threads_for_gui

    monkeypatch.delenv(THREADS_ENV, raising=False)
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpu_threads_for_gui() == max(1, n - 1)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert cpu_threads_for_gui() == 3


def test_move_model_moves_the_sessions_after_the_model_and_sets_autocast():
    import torch

    from napari_ipnet.annotation.device import autocast_for, move_model

    calls = []

    class Model:
        device = torch.device("cpu")
        use_autocast = False

        def to(self, device):
            calls.append(("model", torch.device(device)))
            self.device = torch.device(device)
            return self

    class Sess:
        def __init__(self, name, fail_on=None):
            self.name, self.fail_on = name, fail_on

        def to_device(self, device):
            calls.append((self.name, torch.device(device)))
            if torch.device(device).type == self.fail_on:
                raise RuntimeError("CUDA out of memory")

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    model = Model()
    move_model(model, [Sess("a"), Sess("b")], cuda)  # nothing really moves: no GPU needed
    assert calls == [("model", cuda), ("a", cuda), ("b", cuda)]
    assert model.use_autocast is True  # as load_model(device="cuda")
    calls.clear()
    move_model(model, [Sess("a")], cpu)
    assert calls == [("model", cpu), ("a", cpu)] and model.use_autocast is False
    calls.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        move_model(model, [Sess("a"), Sess("b", fail_on="cuda")], cuda)
    assert calls[-3:] == [("model", cpu), ("a", cpu), ("b", cpu)]  # all moved back
    assert model.device == cpu and model.use_autocast is False
    assert autocast_for(cuda) and not autocast_for(torch.device("mps")) and not autocast_for("cpu")


def test_empty_objects_and_frame_ranges():
    from napari_ipnet.annotation.results import empty_objects, frame_ranges, frames_text

    labels = np.zeros((4, 5), np.uint8)
    labels[0, 0], labels[1, 1] = 1, 3
    assert empty_objects(labels, [1, 2, 3, 4]) == [2, 4]
    assert empty_objects(labels.astype(np.uint16) * 300, [300, 900, 2]) == [2]
    assert empty_objects(labels.astype(np.int32), [3, 5]) == [5]
    assert empty_objects(np.zeros((2, 2), np.uint8), []) == []
    assert frame_ranges([12, 3, 13, 14, 19, 13]) == "3, 12-14, 19"
    assert frame_ranges([]) == "" and frame_ranges([7]) == "7"
    assert frames_text([12, 13, 14, 15, 16, 17, 18, 19]) == "frames 12-19"
    assert frames_text([7]) == "frame 7"


def test_worker_warnings_are_logged_once_per_place(caplog, monkeypatch):
    import logging

    from napari_ipnet._qt import _workers as widget  # the widget's napari workers

    monkeypatch.setattr(widget, "_LOGGED_WARNINGS", set())
    args = (UserWarning("slow path"), UserWarning, "/x/torch/nn.py", 12, None, None)
    with caplog.at_level(logging.WARNING, logger=widget.__name__):
        for _ in range(3):  # a warning met on every frame of a propagation
            widget._relay_warning(args)
        widget._relay_warning((RuntimeWarning("overflow"), RuntimeWarning, "/x/np.py", 3, None, None))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "UserWarning: slow path" in messages[0] and "RuntimeWarning" in messages[1]
