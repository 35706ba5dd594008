"""Save session / Open session / autosave in a real viewer (Xvfb, CPU, random weights)."""

from __future__ import annotations

import numpy as np
from qt_helpers import path, wait_idle
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
    auto = autosave_in_tmp / "tiny-axis0.ipnet"
    assert read_session(auto).header["pending_frame"] == 2
    with qtbot.waitSignal(w.propagation_finished, timeout=60_000):
        w.propagate()
    wait_idle(qtbot, w)
    assert read_session(auto).header["pending_frame"] == 2  # throttled
    w.close()
    assert read_session(auto).header["pending_frame"] is None
