"""``napari-ipnet demo`` (GUI part): sample, docked widget, first scribble."""

from __future__ import annotations

import argparse

import numpy as np
from qt_helpers import wait_idle

from napari_ipnet import demo


def test_demo_opens_sample_widget_and_first_scribble(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer, widget, label = demo.open_viewer("cell-timelapse", device="cpu", viewer=viewer)
    assert label  # which weights were used ("RANDOM weights (untrained ...)" without trained ones)
    wait_idle(qtbot, widget)
    shapes = widget.scribble_layer()
    assert len(shapes.data) == 1 and shapes.data[0][0, 0] == 0  # a stroke on frame 0
    assert widget.session.pending_frame == 0
    out = widget.output_layer  # (with random weights the mask itself may be empty)
    np.testing.assert_array_equal(out.data[0], widget.session.label_frame(0))
    assert not out.data[1:].any()
    assert viewer.layers.selection.active is shapes and shapes.mode == "add_path"


def test_demo_arguments_and_headless_hook(monkeypatch):
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--headless", "out", "--sample", "cell-timelapse"])
    assert args.headless == "out" and args.sample == "cell-timelapse" and args.weights == "default"
    import sys
    import types

    seen = []
    fake = types.ModuleType("napari_ipnet.demo_headless")
    fake.run_headless = lambda a: seen.append(a) or 0
    monkeypatch.setitem(sys.modules, "napari_ipnet.demo_headless", fake)
    assert demo.run(args) == 0 and seen == [args]


def test_first_stroke_lies_inside_the_object():
    from napari_ipnet._sample_data import make_colour_sequence

    frames, labels = make_colour_sequence(n_frames=3)
    pts = demo.first_stroke(labels[0], 1)
    ys, xs = np.rint(pts).astype(int).T
    assert (labels[0][ys, xs] == 1).all()


def test_demo_nuclei_zstack_starts_where_the_nucleus_is_and_lets_it_end(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer, widget, _ = demo.open_viewer("nuclei-zstack", device="cpu", viewer=viewer)
    wait_idle(qtbot, widget)
    _, labels, _ = demo.sample_data("nuclei-zstack")
    frame = demo.first_frame(labels)
    assert frame > 0 and (labels[frame] == 1).any() and not (labels[0] == 1).any()
    assert widget.scribble_layer().data[0][0, 0] == frame and widget.session.pending_frame == frame
    assert widget.objects_may_end and widget.session.objects_may_end  # the axis is named z
