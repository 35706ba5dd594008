"""Save session / Open session / autosave in a real viewer (Xvfb, CPU, random weights)."""

from __future__ import annotations

import numpy as np
from qt_helpers import path, wait_autosaved, wait_idle
from qtpy.QtWidgets import QFileDialog, QMessageBox


def _annotate(qtbot, w):
    """One stroke on frame 2, object 1 renamed, propagated; returns the labels."""
    shapes = w.scribble_layer()
    shapes.add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    w.rename_object(1, "square")
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        w.propagate()
    wait_idle(qtbot, w)
    return w.output_layer.data.copy()


def test_save_and_open_buttons_round_trip(make_widget, tiny_rgb, qtbot, tmp_path, monkeypatch, notes,
                                           autosave_in_tmp):
    viewer, w, image = make_widget(tiny_rgb, name="tiny")
    assert str(autosave_in_tmp) in w.autosave_label.text()
    labels = _annotate(qtbot, w)
    assert labels.any()
    wait_autosaved(qtbot, w)
    auto = autosave_in_tmp / "tiny-axis0.ipnet"
    assert auto.is_file()  # after the interaction
    target = tmp_path / "job.ipnet"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    w.save_btn.click()
    assert target.is_file() and w.status_label.text() == f"Session saved to {target}."

    # another viewer, the same frames in memory under the same name: the file goes back on them
    viewer2, w2, image2 = make_widget(tiny_rgb.copy(), name="tiny")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(target), "")))
    w2.open_btn.click()
    wait_idle(qtbot, w2)
    out2 = w2.output_layer
    assert out2 is not None and w2.session is not None
    np.testing.assert_array_equal(out2.data, labels)
    assert w2.objects == {1: "square"}
    assert w2.object_list.item(0).text().startswith("1") and "square" in w2.object_list.item(0).text()
    assert w2.status_label.text().startswith("Opened job.ipnet: 1 objects")
    assert not [n for n in notes if n[0] in ("error", "warning")], notes
    from napari.utils.progress import progress

    assert not [p for p in progress._all_instances if "IPNet" in str(p.desc)]  # the replay's bar closed
    # the session goes on: a correction on frame 4 runs on the replayed session
    w2.scribble_layer().add_paths([path((4,), 30, 40, 60)])
    wait_idle(qtbot, w2)
    assert w2.session.pending_frame == 4 and set(w2.session.annotated_frames()) == {2}


def test_open_reopens_the_recorded_image_file(make_widget, tiny_rgb, qtbot, tmp_path, monkeypatch, notes):
    npy = tmp_path / "movie.npy"
    np.save(npy, tiny_rgb)
    viewer, w, image = make_widget(np.load(npy, mmap_mode="r"), name="movie", metadata={"source": str(npy)})
    labels = _annotate(qtbot, w)
    target = w.save_session(tmp_path / "movie")
    assert target == tmp_path / "movie.ipnet"

    viewer2, w2, _none = make_widget()  # no image open
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(target), "")))
    asked = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes))
    w2.open_btn.click()
    wait_idle(qtbot, w2)
    assert not asked
    assert [x.name for x in viewer2.layers][0] == "movie" and w2.image_layer is viewer2.layers["movie"]
    np.testing.assert_array_equal(w2.output_layer.data, labels)
    assert not [n for n in notes if n[0] == "error"], notes


def test_damaged_session_file_is_an_error_notification(make_widget, tiny_rgb, qtbot, tmp_path, monkeypatch, notes):
    viewer, w, image = make_widget(tiny_rgb)
    bad = tmp_path / "bad.ipnet"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(bad), "")))
    w.open_btn.click()
    assert w.is_idle() and w.session is None
    errors = [m for s, m in notes if s == "error"]
    assert errors and "bad.ipnet" in errors[-1] and "damaged" in errors[-1]


def test_closing_the_widget_writes_the_pending_autosave(make_widget, tiny_rgb, qtbot, autosave_in_tmp):
    from napari_ipnet.session_file import read_session

    viewer, w, image = make_widget(tiny_rgb, name="tiny")
    w.session_panel.files.min_interval = 3600.0  # only the first save happens by itself
    w.scribble_layer().add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    wait_autosaved(qtbot, w)
    auto = autosave_in_tmp / "tiny-axis0.ipnet"
    assert read_session(auto).header["pending_frame"] == 2
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        w.propagate()
    wait_idle(qtbot, w)
    assert not w.session_panel.files.writing  # throttled: nothing written
    assert read_session(auto).header["pending_frame"] == 2
    w.close()
    assert read_session(auto).header["pending_frame"] is None


def test_open_session_paints_its_strokes_back(make_widget, tiny_rgb, qtbot, tmp_path, notes):
    from qt_helpers import draw_stroke, propagate_and_wait

    from napari_ipnet.annotation.strokes import NEGATIVE_LABEL
    from napari_ipnet.session_file import logged_strokes

    _viewer, w, _image = make_widget(tiny_rgb, name="tiny")
    draw_stroke(qtbot, w, 2)  # object 1 on frame 2
    w.set_negative(True)
    draw_stroke(qtbot, w, 2, y=50, x0=40, x1=60)  # a negative stroke of object 1
    w.set_negative(False)
    propagate_and_wait(qtbot, w)
    w.add_object()
    draw_stroke(qtbot, w, 4, y=10, x0=50, x1=70)  # object 2 on frame 4: the round left open
    drawn = logged_strokes(w.session)
    assert [(st.frame, st.object_id, st.positive) for st in drawn] == [(2, 1, True), (2, 1, False), (4, 2, True)]
    target = w.save_session(tmp_path / "job.ipnet")

    _viewer2, w2, _image2 = make_widget(tiny_rgb.copy(), name="tiny")
    assert w2.open_session(target)
    wait_idle(qtbot, w2)
    brush = w2.brush_layer()
    assert brush.metadata["napari_ipnet_role"] == "brush" and w2.scribbles.is_linked(brush)
    data = np.asarray(brush.data)
    assert data.shape == tiny_rgb.shape[:3]
    expected = np.zeros_like(data)
    for st in drawn:
        expected[st.frame][np.asarray(st.stroke_map)] = st.object_id if st.positive else NEGATIVE_LABEL
    np.testing.assert_array_equal(data, expected)
    assert data[2, 30, 25] == 1 and data[2, 50, 50] == NEGATIVE_LABEL and data[4, 10, 60] == 2
    assert not data[[0, 1, 3, 5]].any()
    assert w2.is_idle() and w2.session.pending_frame == 4 and len(w2.session._log) == len(w.session._log)

    # brushing on goes on from there: only the new paint goes to the network
    brush.brush_size = 3
    with qtbot.waitSignal(w2.interaction_done, timeout=60_000):
        brush.paint((4, 40, 20), 2)
    wait_idle(qtbot, w2)
    last = w2.session._log[-1]
    assert last["call"] == "interact" and last["frame"] == 4 and last["object_id"] == 2
    sent = np.asarray(last["positive"])
    assert sent[40, 20] and not sent[10, 50:71].any()
    assert not [n for n in notes if n[0] == "error"], notes  # (random weights: masks may come out empty)


def test_autosaves_are_written_in_a_worker_and_closing_waits_for_them(make_widget, tiny_rgb, qtbot,
                                                                      autosave_in_tmp, monkeypatch):
    import threading
    import time

    from napari_ipnet.annotation import files as files_mod
    from napari_ipnet.session_file import read_session

    in_main_thread = []
    real = files_mod.write_session

    def slow_write(data, target):  # a slow disk
        in_main_thread.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.5)
        return real(data, target)

    monkeypatch.setattr(files_mod, "write_session", slow_write)
    _viewer, w, _image = make_widget(tiny_rgb, name="tiny")
    w.session_panel.files.min_interval = 0.0  # every change is autosaved
    w.scribble_layer().add_paths([path((2,), 30, 15, 35)])
    wait_idle(qtbot, w)
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        w.propagate()
    wait_idle(qtbot, w)
    t0 = time.monotonic()
    w.close()  # the write in progress ends, the queued one is written: the newest state
    assert time.monotonic() - t0 < files_mod.CLOSE_TIMEOUT / 2  # not stuck until the timeout
    auto = autosave_in_tmp / "tiny-axis0.ipnet"
    assert read_session(auto).header["pending_frame"] is None
    assert in_main_thread and in_main_thread[0] is False
    assert not list(autosave_in_tmp.glob(".*.part"))
