"""The dock widget's helpers that need no display: shortcuts, viewer link, colour fitting,
notifications, and the panels' display-free parts."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import numpy as np
from napari.components import ViewerModel
from napari.layers import Image, Labels, Shapes

from napari_ipnet._qt._colors import (
    COLORS_KEY,
    LOW_CONTRAST,
    contrast,
    fit_object_colors,
    label_colormap,
    layer_object_color,
    object_color,
)
from napari_ipnet._qt._model_panel import THREADS_ENV, ModelPanel
from napari_ipnet._qt._objects_panel import new_name
from napari_ipnet._qt._scribble_panel import SCRIBBLE_KINDS, negative_texts
from napari_ipnet._qt._sequence_panel import ROLE_KEY, SOURCE_KEY
from napari_ipnet._qt._shortcuts import (
    SHORTCUTS,
    bind_keys,
    shortcut_help,
    shortcut_keys,
    widget_action,
)
from napari_ipnet._qt._viewer_link import ViewerLink, make_cleanup
from napari_ipnet.annotation.strokes import NEGATIVE_LABEL


# ---------------------------------------------------------------------- shortcuts
class FakeWidget:
    """Records the actions the shortcuts run."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.controller = SimpleNamespace(negative=False)

    def select_object(self, k):
        self.calls.append(("select", k))

    def set_negative(self, negative):
        self.calls.append(("negative", negative))

    def propagate(self):
        self.calls.append(("propagate",))


def test_shortcut_keys_and_help():
    keys = shortcut_keys()
    assert keys["propagate"] == "Shift+Enter" and keys["select_9"] == "Alt+9"
    assert len(keys) == len(SHORTCUTS)
    text = shortcut_help()
    assert "Shift+Enter: propagate" in text and "Alt+1 ... Alt+9" in text and "Alt+5" not in text


def test_widget_action_dispatches_and_holds_the_widget_weakly():
    w = FakeWidget()
    widget_action(w, "select_3")()
    widget_action(w, "toggle_negative")()
    widget_action(w, "propagate")("ignored", "arguments")
    assert w.calls == [("select", 3), ("negative", True), ("propagate",)]
    run = widget_action(w, "propagate")
    del w
    gc.collect()
    run()  # the widget is gone: nothing happens


class FakeViewer:
    def __init__(self) -> None:
        self.keys: dict[str, object] = {"Alt-A": "napari's own"}

    def bind_key(self, key, func, overwrite=False):
        previous = self.keys.get(key)
        if func is None:
            self.keys.pop(key, None)
        else:
            self.keys[key] = func
        return previous


def test_bind_keys_then_cleanup_puts_the_previous_bindings_back():
    viewer, w = FakeViewer(), FakeWidget()
    bound = bind_keys(viewer, w)
    assert [k for k, _ in bound] == [k for k, *_ in SHORTCUTS]
    viewer.keys["Shift-Enter"](viewer)
    assert w.calls == [("propagate",)]
    flushed = []
    make_cleanup(lambda: viewer, [], bound, flush=lambda: flushed.append(1))()
    assert viewer.keys == {"Alt-A": "napari's own"} and bound == [] and flushed == [1]


def test_cleanup_survives_failures_and_a_dead_viewer():
    class Emitter:
        def __init__(self, fails):
            self.fails, self.disconnected = fails, []

        def disconnect(self, cb):
            if self.fails:
                raise RuntimeError("already gone")
            self.disconnected.append(cb)

    bad, good = Emitter(True), Emitter(False)
    connected = [(bad, "a"), (good, "b")]
    bound = [("Alt-A", None)]

    def flush():
        raise OSError("disk full")

    cleanup = make_cleanup(lambda: None, connected, bound, flush=flush)
    cleanup()
    cleanup()  # twice: nothing more
    assert good.disconnected == ["b"] and connected == [] and bound == []


# ---------------------------------------------------------------------- viewer link
class Recorder:
    """Stands in for the panels, scribble layers and controller: records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.linked: set[int] = set()
        self._output = None

    def _refresh_layers(self, *_args):
        self.calls.append(("refresh",))

    def _update_sequence_label(self, *_args):
        self.calls.append(("label",))

    def _on_axis_labels_changed(self, *_args):
        self.calls.append(("axis_labels",))

    def show_current(self, *_args):
        self.calls.append(("show_current",))

    def is_linked(self, layer):
        return id(layer) in self.linked

    def link(self, layer, image):
        self.linked.add(id(layer))
        self.calls.append(("link", layer.name, image.name))

    def forget(self, layer):
        self.calls.append(("forget", layer.name))

    def layer_removed(self, layer):
        self.calls.append(("layer_removed", layer.name))


def test_viewer_link_follows_layers_and_links_scribble_layers():
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((3, 8, 8)), name="movie")
    rec = Recorder()
    link = ViewerLink(viewer)
    link.watch(rec, rec, rec, rec)
    n_connected = len(link.connected)
    scribbles = Shapes(ndim=3, name="movie scribbles", metadata={ROLE_KEY: "scribbles", SOURCE_KEY: "movie"})
    viewer.add_layer(scribbles)
    assert ("link", "movie scribbles", "movie") in rec.calls
    assert len(link.connected) == n_connected + 1  # its name
    rec.calls.clear()
    scribbles.name = "renamed"
    assert rec.calls == [("refresh",)]

    out = viewer.add_labels(np.zeros((3, 8, 8), np.uint8), name="out")
    rec._output = out
    rec.calls.clear()
    viewer.layers.remove(out)
    assert rec.calls[:2] == [("forget", "out"), ("layer_removed", "out")] and rec._output is None
    assert not [e for e, _ in link.connected if getattr(e, "source", None) is out]

    link.bound_keys.append(("Alt-Q", None))
    link.cleanup()
    assert link.connected == [] and link.bound_keys == []
    rec.calls.clear()
    image.name = "other"
    viewer.add_image(np.zeros((8, 8)))
    assert rec.calls == []  # nothing connected any more


# ---------------------------------------------------------------------- object colours
def test_layer_object_color():
    np.testing.assert_allclose(layer_object_color(None, 3), object_color(3))
    out = Labels(np.zeros((4, 4), np.uint8), colormap=label_colormap())
    np.testing.assert_allclose(layer_object_color(out, 3), object_color(3), atol=1e-6)


def test_fit_object_colors_replaces_a_colour_that_does_not_show():
    """Object 1 sits on pixels of its own colour (hard to see), object 2 on black."""
    h, w = 8, 10
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, :5] = np.round(object_color(1)[:3] * 255).astype(np.uint8)
    image = Image(pixels[None], rgb=True)
    labels = np.zeros((h, w), np.uint8)
    labels[2:6, 1:4] = 1
    labels[2:6, 6:9] = 2
    out = Labels(labels[None].copy(), colormap=label_colormap())

    placed = fit_object_colors(out, image, labels, pixels, [1, 2, 3], objects=[1, 2, 3])
    assert placed is not None and set(placed) == {1, 2}  # object 3 has no mask yet
    assert set(out.metadata[COLORS_KEY]) == {1, 2}
    shown = pixels[2, 1, :3] / 255.0
    new1 = layer_object_color(out, 1)
    assert contrast(new1[:3], shown) >= LOW_CONTRAST  # the layer shows the new colour
    assert not np.allclose(new1, object_color(1))
    assert not any(np.allclose(new1, object_color(j)) for j in (2, 3))  # not another object's
    np.testing.assert_allclose(placed[2], object_color(2), atol=1e-6)  # object 2 shows on black: kept

    # once placed, a colour is not looked at again
    assert fit_object_colors(out, image, labels, pixels, [1, 2, 3], objects=[1, 2, 3]) is None
    np.testing.assert_allclose(layer_object_color(out, 1), new1)


def test_fit_object_colors_keeps_colours_that_show():
    pixels = np.zeros((6, 6), np.float32)  # a dark grey frame
    image = Image(pixels[None], contrast_limits=(0, 1))
    labels = np.zeros((6, 6), np.uint8)
    labels[1:4, 1:4] = 1
    out = Labels(labels[None].copy(), colormap=label_colormap())
    before = out.colormap
    assert fit_object_colors(out, image, labels, pixels, [1]) is None
    assert out.colormap is before and 1 in out.metadata[COLORS_KEY]


# ---------------------------------------------------------------------- panels, notifications, view
def test_new_name_of_an_edited_object_row():
    names = {1: "cell", 2: "nucleus"}
    assert new_name(names, 1, "  big cell ") == "big cell"
    assert new_name(names, 1, "cell") is None  # unchanged
    assert new_name(names, 2, "   ") is None and new_name(names, 2, "") is None  # emptied: kept
    assert new_name(names, 7, "late") == "late"  # the controller decides about unknown ids


def test_scribble_kinds_and_negative_texts():
    assert [kind for _text, kind, _tip in SCRIBBLE_KINDS] == ["shapes", "brush", "clicks"]
    assert [text for text, _kind, _tip in SCRIBBLE_KINDS] == ["Freehand", "Brush", "Clicks"]
    assert f"label {NEGATIVE_LABEL} is background" in SCRIBBLE_KINDS[1][2]
    text, tip = negative_texts(shortcut_keys())
    assert text.endswith("[Alt+N]") and tip.endswith("Toggle: Alt+N")


def test_show_message_picks_the_notification_of_the_level(monkeypatch):
    from napari_ipnet._qt import _workers

    shown = []
    for level in ("info", "warning", "error"):
        monkeypatch.setattr(_workers, f"show_{level}", lambda text, level=level: shown.append((level, text)))
    for level in ("info", "warning", "error", "unknown"):
        _workers.show_message(level, level + "!")
    assert shown == [("info", "info!"), ("warning", "warning!"), ("error", "error!"), ("error", "unknown!")]


def test_viewer_link_fit_view():
    viewer = ViewerModel()
    link = ViewerLink(viewer)
    link.fit_view()  # no layers: nothing to fit
    viewer.add_image(np.zeros((40, 60)))
    camera = viewer.scene.camera
    camera.zoom, camera.center = 0.01, (0, 500, 500)
    link.fit_view()
    assert camera.zoom > 0.01 and np.allclose(camera.center[-2:], (19.5, 29.5))

    class Closed:
        @property
        def layers(self):
            raise RuntimeError("wrapped C/C++ object has been deleted")

    ViewerLink(Closed()).fit_view()  # a closed viewer: nothing happens


def test_model_panel_sets_cpu_threads_for_a_cpu_model(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setenv(THREADS_ENV, "3")
    ModelPanel.model_set(SimpleNamespace(device=torch.device("cpu")))
    ModelPanel.model_set(SimpleNamespace(device=SimpleNamespace(type="cuda")))
    ModelPanel.model_set(object())  # no device: left alone
    assert calls == [3]
