"""The Qt-free annotation controller: objects, typed jobs, strokes, undo link, next frame.

No viewer and no Qt: napari layer models (``Image``, ``Labels``) stand for the layers,
jobs run in the calling thread (:func:`napari_ipnet.annotation.run_directly`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

napari_layers = pytest.importorskip("napari.layers")

from napari_ipnet.annotation import (  # noqa: E402
    STROKE_FEATURE,
    AnnotationController,
    InteractJob,
    PropagateJob,
    Stroke,
    WithdrawJob,
    next_frame_to_check,
)


class StrokeLayer:
    """The part of a Shapes layer a Stroke reads: its ``stroke`` feature."""

    def __init__(self) -> None:
        self.features = pd.DataFrame({STROKE_FEATURE: np.zeros(0, int)})

    def add(self, stroke_id: int) -> None:
        self.features = pd.concat([self.features, pd.DataFrame({STROKE_FEATURE: [stroke_id]})], ignore_index=True)

    def remove(self, stroke_id: int) -> None:
        self.features = self.features[self.features[STROKE_FEATURE] != stroke_id].reset_index(drop=True)


def _shape_model(stub_model):
    """Stub networks whose masks follow the strokes (dilated) and the neighbour mask."""
    import torch.nn.functional as F

    model = stub_model()
    model.interaction.value = lambda rgb, prev, pos, neg: 0.05 + 0.9 * F.max_pool2d(pos, 21, 1, 10) * (1 - neg)
    model.propagation.value = lambda rgb, prev, nb: 0.05 + 0.9 * nb
    return model


@pytest.fixture
def setup(stub_model, small_frames):
    """(controller, image layer, output layer, events) with a stroke-following stub model."""
    from napari_ipnet.annotation.sequence import make_spec

    image = napari_layers.Image(small_frames, rgb=True)
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl = AnnotationController(output_for=lambda rec: out, current_output=lambda: out)
    ctrl.set_model(_shape_model(stub_model), "stub")
    events: dict[str, list] = {}
    for name in ("status", "message", "progress", "frame_done", "propagation_finished", "strokes_undone",
                 "strokes_redone", "interaction_done", "job_failed"):
        getattr(ctrl, name).connect(lambda *args, name=name: events.setdefault(name, []).append(args))
    spec = make_spec(image, 0, np.zeros(3), None)
    return ctrl, image, out, events, spec


def _stroke(layer, sid, frame_shape=(48, 64), y=20, x0=14, x1=30, obj=1, positive=True):
    m = np.zeros(frame_shape, bool)
    m[y, x0:x1] = True
    if layer is not None:
        layer.add(sid)
    import weakref

    return Stroke(weakref.ref(layer) if layer is not None else None, sid, obj, positive, m)


def test_next_frame_to_check_skips_annotated_frames_and_walks_ties():
    conf = np.array([1.0, 0.9, 0.2, 0.8, 0.2, 0.1])
    assert next_frame_to_check(conf) == 5
    assert next_frame_to_check(conf, annotated=[5]) == 2
    assert next_frame_to_check(conf, annotated=[5], current=2) == 4  # the next tie after the shown frame
    assert next_frame_to_check(conf, annotated=[5], current=4) == 2  # wraps around
    assert next_frame_to_check(conf, annotated=range(6)) is None


def test_interaction_writes_one_undo_step_and_undo_takes_its_strokes_back(setup):
    ctrl, image, out, events, spec = setup
    strokes_layer = StrokeLayer()
    st = _stroke(strokes_layer, 0)
    ctrl.submit_interaction(image, spec, 2, [st])
    assert ctrl.is_idle() and events["interaction_done"] == [(2,)]
    s = ctrl.session
    assert s.pending_frame == 2 and out.data[2].any() and not out.data[[0, 1, 3]].any()
    np.testing.assert_array_equal(out.data[2], s.label_frame(2))
    assert ctrl.status_text.startswith("Frame 2 segmented")
    ctrl.undo(out)  # what Alt+Z does
    assert not out.data.any() and s.object_ids == [] and s.pending_frame is None
    assert events["strokes_undone"] == [([st],)], "the strokes go with their mask"
    assert ctrl.status_text == "Undone: the stroke on frame 2 and its mask."
    out.redo()  # Ctrl+Shift+Z on the layer: hooked, the engine and the strokes follow
    assert s.pending_frame == 2 and out.data[2].any()
    assert events["strokes_redone"] == [([st],)]
    assert ctrl.status_text.startswith("Redone: the stroke on frame 2")


def test_propagate_after_undoing_the_only_stroke_says_what_happened(setup):
    ctrl, image, out, events, spec = setup
    ctrl.submit_interaction(image, spec, 2, [_stroke(StrokeLayer(), 0)])
    ctrl.undo(out)
    ctrl.propagate()
    assert "already propagated" not in ctrl.status_text
    assert ctrl.status_text == "Nothing to propagate: no stroke left (undone); scribble on a frame first."
    # after a real round, the refusal is the other one
    ctrl.submit_interaction(image, spec, 2, [_stroke(StrokeLayer(), 1)])
    ctrl.propagate()
    ctrl.propagate()
    assert ctrl.status_text == "This round is already propagated; scribble a correction first."


def test_jobs_are_typed_and_run_in_order(setup):
    ctrl, image, out, events, spec = setup
    model, ctrl.model = ctrl.model, None  # jobs wait for a model
    ctrl.request_model = lambda: None
    ctrl.submit_interaction(image, spec, 0, [_stroke(None, -1)])
    ctrl.propagate()
    assert [type(j) for j in ctrl.jobs] == [InteractJob, PropagateJob]
    ctrl.set_model(model, "stub")  # runs the queue
    assert ctrl.is_idle() and not ctrl.jobs
    frames, cancelled = events["propagation_finished"][0]
    assert frames == list(range(1, 8)) and not cancelled
    np.testing.assert_array_equal(out.data, ctrl.session.labels)
    # progress: frames done of the round, with the time left (0 at the end)
    progress = events["progress"]
    assert [p[:2] for p in progress] == [(i, 7) for i in range(1, 8)]
    assert progress[-1][2] == 0.0
    assert ctrl.status_text.startswith("Propagated 7 frames")


def test_deleted_stroke_is_taken_back_by_a_withdraw_job(setup):
    ctrl, image, out, events, spec = setup
    layer = StrokeLayer()
    a = _stroke(layer, 0, y=20, x0=14, x1=30)
    ctrl.submit_interaction(image, spec, 3, [a])
    only_a = out.data[3].copy()
    b = _stroke(layer, 1, y=40, x0=40, x1=60)
    ctrl.submit_interaction(image, spec, 3, [b])
    assert (out.data[3] != only_a).any()
    layer.remove(1)
    started = []
    orig = ctrl._start_withdrawal
    ctrl._start_withdrawal = lambda job: (started.append(type(job)), orig(job))
    ctrl.strokes_removed(layer)
    assert started == [WithdrawJob]
    np.testing.assert_array_equal(out.data[3], only_a)
    assert ctrl.status_text == "Stroke deleted: frame 3 from the 1 strokes left."


def test_objects_and_reset(setup):
    ctrl, image, out, events, spec = setup
    assert ctrl.add_object("cell") == 2 and ctrl.current == 2
    ctrl.submit_interaction(image, spec, 1, [_stroke(None, -1, obj=2)])
    assert ctrl.describe([2]) == "object 2 (cell)" and ctrl.describe([1, 2]) == "objects 1 and 2 (cell)"
    assert (out.data[1] == 2).any()
    assert ctrl.reset_object(2)
    assert not out.data.any() and 2 not in ctrl.objects and ctrl.status_text == "Object 2 reset."


def _blob_stack(n=12, bad=7, size=(96, 128)):
    """A bright disk moving right on a dark textured background; frame ``bad`` is noise."""
    rng = np.random.default_rng(1)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        bg = rng.integers(10, 50, (h, w, 1))
        disk = (yy - h // 2) ** 2 + (xx - 30 - 4 * t) ** 2 < 18**2
        frames[t] = np.where(disk[..., None], np.array([230, 200, 60]), bg).astype(np.uint8)
    frames[bad] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # a corrupted frame
    return frames


def test_next_frame_to_check_finds_the_corrupted_frame_with_the_bundled_model():
    """Real weights: a frame of noise in a moving-disk stack is the least confident one."""
    import napari_ipnet
    from napari_ipnet.annotation.sequence import make_spec

    try:
        model = napari_ipnet.load_model(device="cpu")
    except Exception as err:  # noqa: BLE001 - no bundled weights in this install
        pytest.skip(f"bundled weights not available: {err}")
    frames = _blob_stack()
    image = napari_layers.Image(frames, rgb=True)
    out = napari_layers.Labels(np.zeros(frames.shape[:3], np.uint8))
    ctrl = AnnotationController(output_for=lambda rec: out, current_output=lambda: out)
    ctrl.set_model(model, "bundled")
    spec = make_spec(image, 0, np.zeros(3), None)
    m = np.zeros(frames.shape[1:3], bool)
    m[48, 22:40] = True  # a stroke inside the disk on frame 0
    ctrl.submit_interaction(image, spec, 0, [Stroke(None, -1, 1, True, m)])
    ctrl.propagate()
    conf = ctrl.session.frame_confidence()
    assert int(np.argmin(conf[1:])) + 1 == 7, conf
    assert ctrl.next_frame_to_check() == 7


def test_the_controller_imports_neither_qt_nor_napari():
    import subprocess
    import sys

    code = (
        "import sys, napari_ipnet.annotation\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'superqt'})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
