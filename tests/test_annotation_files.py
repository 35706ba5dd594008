"""Save / open / autosave of the controller's sessions (Qt-free, stub networks).

napari layer models stand for the layers; jobs run in the calling thread.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

napari_layers = pytest.importorskip("napari.layers")

from napari_ipnet.annotation import AnnotationController, Stroke  # noqa: E402
from napari_ipnet.annotation.files import (  # noqa: E402
    AUTOSAVE_ENV,
    PATH_KEY,
    SessionFiles,
    autosave_dir,
    autosave_name,
    session_source,
    spec_for_source,
)
from napari_ipnet.session_file import read_session  # noqa: E402


def _shape_model(stub_model, propagation_gain=0.9):
    """Stub networks whose masks follow the strokes (dilated) and the neighbour mask."""
    import torch.nn.functional as F

    model = stub_model()
    model.interaction.value = lambda rgb, prev, pos, neg: 0.05 + 0.9 * F.max_pool2d(pos, 21, 1, 10) * (1 - neg)
    model.propagation.value = lambda rgb, prev, nb: 0.05 + propagation_gain * nb
    return model


def _stroke(frame_shape=(48, 64), y=20, x0=14, x1=30, obj=1, positive=True):
    m = np.zeros(frame_shape, bool)
    m[y, x0:x1] = True
    return Stroke(None, -1, obj, positive, m)


class Clock:
    """A settable clock for the autosavers."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _controller(stub_model, out, **model_kwargs):
    ctrl = AnnotationController(output_for=lambda rec: out, current_output=lambda: out)
    ctrl.set_model(_shape_model(stub_model, **model_kwargs), "stub")
    events: dict[str, list] = {}
    for name in ("message", "status", "job_failed"):
        getattr(ctrl, name).connect(lambda *args, name=name: events.setdefault(name, []).append(args))
    return ctrl, events


@pytest.fixture
def annotated(stub_model, small_frames, tmp_path):
    """A controller with two named objects, one interaction each, propagated; its image read from a .npy."""
    from napari_ipnet.annotation.sequence import make_spec

    npy = tmp_path / "movie.npy"
    np.save(npy, small_frames)
    image = napari_layers.Image(np.load(npy, mmap_mode="r"), rgb=True, name="movie", metadata={"source": str(npy)})
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl, events = _controller(stub_model, out)
    clock = Clock()
    files = SessionFiles(ctrl, min_interval=10.0, clock=clock)
    spec = make_spec(image, 0, np.zeros(3), None)
    ctrl.rename_object(1, "square")
    ctrl.add_object("shadow")
    ctrl.submit_interaction(image, spec, 2, [_stroke(obj=1), _stroke(y=40, x0=40, x1=60, obj=2)])
    ctrl.propagate()
    assert ctrl.is_idle() and out.data.any()
    return ctrl, files, image, out, spec, events, clock


def test_autosave_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "here"))
    assert autosave_dir() == tmp_path / "here"
    monkeypatch.setenv(AUTOSAVE_ENV, "")
    assert autosave_dir() is None
    monkeypatch.delenv(AUTOSAVE_ENV)
    assert autosave_dir() is not None and autosave_dir().parts[-2:] == (".napari-ipnet", "autosave")


def test_autosave_names_keep_the_sessions_of_one_image_apart():
    from napari_ipnet.annotation.sequence import SequenceSpec

    assert autosave_name("cells", SequenceSpec(3, 0)) == "cells-axis0.ipnet"
    assert autosave_name("a/b: c", SequenceSpec(4, 1, ((0, 3),), 2)) == "a_b_ c-axis1-fixed0=3-channel2.ipnet"


def test_save_then_open_gives_the_same_labels_and_names(annotated, stub_model, tmp_path):
    ctrl, files, image, out, spec, events, clock = annotated
    path = files.save(tmp_path / "job")  # the suffix is added
    assert path == tmp_path / "job.ipnet" and path.is_file()
    assert ctrl.status_text == f"Session saved to {path}."
    header = read_session(path).header
    assert header["source"]["kind"] == "file" and header["source"]["axis"] == 0
    assert header["source"]["path"] == str((tmp_path / "movie.npy").resolve())
    assert header["names"] == {"1": "square", "2": "shadow"}
    saved = ctrl.session.labels

    # a fresh controller, the image open in another layer read from the same file
    image2 = napari_layers.Image(np.load(tmp_path / "movie.npy"), rgb=True, name="again",
                                 metadata={"source": str(tmp_path / "movie.npy")})
    out2 = napari_layers.Labels(np.zeros(saved.shape, np.uint8))
    ctrl2, events2 = _controller(stub_model, out2)
    files2 = SessionFiles(ctrl2)
    progress = []
    files2.replay_progress.connect(lambda i, n: progress.append((i, n)))
    opened = []
    files2.opened.connect(opened.append)
    asked = []
    assert files2.open(path, layers=[image2], confirm=lambda q: asked.append(q) or False)
    assert ctrl2.is_idle() and not asked  # found by its file: nothing to ask
    assert not events2.get("job_failed"), events2
    assert len(opened) == 1 and opened[0].layer is image2 and ctrl2.active is opened[0]
    np.testing.assert_array_equal(out2.data, saved)
    np.testing.assert_array_equal(ctrl2.session.labels, saved)
    assert ctrl2.objects == {1: "square", 2: "shadow"}
    assert progress[-1] == (len(header["log"]),) * 2
    assert ctrl2.status_text.startswith("Opened job.ipnet: 2 objects")
    assert not [m for m in events2.get("message", []) if m[0] != "info"], events2
    # undoing the open empties the layer and the session; the session goes on from the file
    ctrl2.undo(out2)
    assert not out2.data.any() and ctrl2.session.object_ids == []


def test_open_reopens_the_recorded_image_when_it_is_not_open(annotated, stub_model, tmp_path):
    ctrl, files, image, out, spec, events, clock = annotated
    path = files.save(tmp_path / "job.ipnet")
    added = []

    def add_image(p, name):
        layer = napari_layers.Image(np.load(p), rgb=True, name=name, metadata={PATH_KEY: p})
        added.append(layer)
        return layer

    out2 = napari_layers.Labels(np.zeros(out.data.shape, np.uint8))
    ctrl2, events2 = _controller(stub_model, out2)
    files2 = SessionFiles(ctrl2)
    assert files2.open(path, layers=[], add_image=add_image)
    assert len(added) == 1 and added[0].name == "movie" and ctrl2.active.layer is added[0]
    np.testing.assert_array_equal(out2.data, ctrl.session.labels)


def test_memory_image_is_put_back_on_the_current_layer_when_the_user_agrees(stub_model, small_frames, tmp_path):
    from napari_ipnet.annotation.sequence import make_spec

    image = napari_layers.Image(small_frames, rgb=True, name="mem")
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl, _events = _controller(stub_model, out)
    files = SessionFiles(ctrl)
    spec = make_spec(image, 0, np.zeros(3), None)
    ctrl.submit_interaction(image, spec, 4, [_stroke()])
    source = session_source(image, spec)
    assert source["kind"] == "memory" and source["layer"] == "mem" and source["axis"] == 0
    path = files.save(tmp_path / "mem.ipnet")

    other = napari_layers.Image(small_frames.copy(), rgb=True, name="other")
    out2 = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl2, events2 = _controller(stub_model, out2)
    files2 = SessionFiles(ctrl2)
    assert not files2.open(path, layers=[other], current=other, confirm=lambda q: False)
    assert events2["message"][-1][0] == "error" and "was in memory" in events2["message"][-1][1]
    questions = []
    assert files2.open(path, layers=[other], current=other, confirm=lambda q: questions.append(q) or True)
    assert "'other'" in questions[0] and ctrl2.session.pending_frame == 4  # the round is open again
    np.testing.assert_array_equal(out2.data, ctrl.session.labels)
    # a layer of another shape never fits
    small = napari_layers.Image(small_frames[:5], rgb=True, name="mem")
    assert spec_for_source(small, source, (8, 48, 64)) is None


def test_autosave_after_interaction_and_propagation_is_loadable(stub_model, small_frames, autosave_in_tmp):
    from napari_ipnet.annotation.sequence import make_spec
    from napari_ipnet.session import Session

    image = napari_layers.Image(small_frames, rgb=True, name="cells")
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl, events = _controller(stub_model, out)
    clock = Clock()
    files = SessionFiles(ctrl, min_interval=10.0, clock=clock)
    spec = make_spec(image, 0, np.zeros(3), None)
    ctrl.submit_interaction(image, spec, 2, [_stroke()])
    path = autosave_in_tmp / "cells-axis0.ipnet"
    assert files.autosave_path() == path and path.is_file()
    assert ctrl.status_text.endswith(f"Autosaving to {path}.")  # said once, in the status line
    first = Session.load(path, small_frames, ctrl.model)
    np.testing.assert_array_equal(first.labels, ctrl.session.labels)
    assert first.pending_frame == 2

    clock.t = 3.0  # within the interval: the propagation only marks the autosave dirty
    ctrl.propagate()
    assert Session.load(path, small_frames, ctrl.model).pending_frame == 2
    assert "Autosaving" not in ctrl.status_text
    clock.t = 20.0
    assert files.flush() == 1  # what the widget's timer and its close do
    loaded = Session.load(path, small_frames, ctrl.model)
    assert loaded.pending_frame is None
    np.testing.assert_array_equal(loaded.labels, ctrl.session.labels)
    assert files.flush() == 0  # nothing new

    clock.t = 40.0  # an undo is autosaved too
    ctrl.undo(out)
    assert Session.load(path, small_frames, ctrl.model).pending_frame == 2


def test_autosave_off_with_an_empty_folder(stub_model, small_frames, monkeypatch, autosave_in_tmp):
    from napari_ipnet.annotation.sequence import make_spec

    monkeypatch.setenv(AUTOSAVE_ENV, "")
    image = napari_layers.Image(small_frames, rgb=True, name="cells")
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl, _events = _controller(stub_model, out)
    files = SessionFiles(ctrl)
    ctrl.submit_interaction(image, make_spec(image, 0, np.zeros(3), None), 2, [_stroke()])
    assert files.autosave_path() is None and not autosave_in_tmp.exists()
    assert "Autosaving" not in ctrl.status_text


def test_corrupt_and_newer_files_give_clear_error_messages(annotated, tmp_path):
    ctrl, files, image, out, spec, events, clock = annotated
    path = files.save(tmp_path / "job.ipnet")
    broken = tmp_path / "broken.ipnet"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    failed = []
    files.open_failed.connect(failed.append)
    before = out.data.copy()
    assert not files.open(broken, layers=[image])
    level, text = events["message"][-1]
    assert level == "error" and "broken.ipnet" in text and "damaged" in text
    assert failed == [text] and ctrl.status_text == "Opening broken.ipnet failed."
    np.testing.assert_array_equal(out.data, before)

    import json

    newer = tmp_path / "newer.ipnet"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(newer, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "session.json":
                header = json.loads(data)
                header["version"] = 99
                data = json.dumps(header).encode()
            zout.writestr(item, data)
    assert not files.open(newer, layers=[image])
    level, text = events["message"][-1]
    assert level == "error" and "newer" in text and "update napari-ipnet" in text

    assert not files.open(tmp_path / "missing.ipnet", layers=[image])
    assert events["message"][-1][0] == "error" and "no session file" in events["message"][-1][1]
    assert ctrl.is_idle() and not ctrl.jobs


def test_another_model_is_reported_as_a_mismatch(annotated, stub_model, tmp_path):
    ctrl, files, image, out, spec, events, clock = annotated
    path = files.save(tmp_path / "job.ipnet")
    out2 = napari_layers.Labels(np.zeros(out.data.shape, np.uint8))
    ctrl2, events2 = _controller(stub_model, out2, propagation_gain=0.3)  # weaker propagation: other masks
    ctrl2.model.name = "other"
    files2 = SessionFiles(ctrl2)
    assert files2.open(path, layers=[image])
    warnings = [m[1] for m in events2["message"] if m[0] == "warning"]
    assert any("replayed with 'other'" in w for w in warnings), warnings
    assert any("differ from the saved ones" in w for w in warnings), warnings
    np.testing.assert_array_equal(out2.data, ctrl2.session.labels)  # the replayed masks are shown


def test_nothing_to_save_and_busy_are_refused(stub_model, small_frames, tmp_path):
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl, events = _controller(stub_model, out)
    files = SessionFiles(ctrl)
    assert files.save(tmp_path / "x.ipnet") is None
    assert events["message"][-1] == ("warning", "IPNet: nothing to save yet: scribble on a frame first")
    assert not (tmp_path / "x.ipnet").exists()
