"""What the axes of a stack are (napari_ipnet.axes), the TIFF reader's axis names, and the
one "objects may end" rule used by the evaluation CLI and the headless demo."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from napari_ipnet import axes
from napari_ipnet.axes import axis_entry, axis_kind, guess_axis_kinds, objects_may_end_default


@pytest.mark.parametrize("name", ["z", "Z", "depth", "Depth", "plane", "planes", "slice", "z-slice", "Slices",
                                  "focal plane", "focal_depth", "focus", "section", "zplane"])
def test_objects_may_end_along_z_like_axes(name):
    assert objects_may_end_default(name) is True and axis_kind(name) == "z"


@pytest.mark.parametrize("name", ["t", "T", "time", "Time", "frame", "frames", "timepoint", "time (s)"])
def test_objects_do_not_end_along_time(name):
    assert objects_may_end_default(name) is False and axis_kind(name) == "t"


@pytest.mark.parametrize("name", [None, "", "-3", "0", "axis 1", "c", "channel", "q", "position", "zebra"])
def test_unknown_axes_are_off(name):
    assert objects_may_end_default(name) is False and axis_kind(name) is None


def test_guess_on_unnamed_axes():
    # (T, Z, Y, X) without names: the short axis next to Y, X is z, the other one time
    assert guess_axis_kinds((20, 5), (None, None)) == ["t", "z"]
    assert guess_axis_kinds((20, 5), ("-4", "-3")) == ["t", "z"]
    # named axes are not guessed; the unnamed one is guessed from what is left
    assert guess_axis_kinds((20, 5), ("time", None)) == [None, "z"]
    assert guess_axis_kinds((20, 5), (None, "z")) == ["t", None]
    # too many planes for a z-stack next to Y, X: the shorter axis before it is z
    assert guess_axis_kinds((30, 500), (None, None)) == ["z", "t"]
    # nothing that looks like z: no guess; a single axis: no guess
    assert guess_axis_kinds((300, 500), (None, None)) == [None, None]
    assert guess_axis_kinds((20,), (None,)) == [None]
    # (T, C, Z, Y, X)-like: z next to Y, X, time the longest of the others
    assert guess_axis_kinds((40, 2, 7), (None, None, None)) == ["t", None, "z"]


def test_axis_entries_say_what_is_known_and_what_is_guessed():
    assert axis_entry(0, "t", 20) == "t (20 frames)"
    assert axis_entry(1, "z", 5) == "z (5 planes)"
    assert axis_entry(1, "depth", 1) == "depth (1 plane)"
    assert axis_entry(1, None, 5, "z") == "axis 1 (5 planes; guessed z)"
    assert axis_entry(0, "-4", 20, "t") == "axis 0 (20 frames; guessed t)"
    assert axis_entry(0, None, 7) == "axis 0 (7 frames)"


# ------------------------------------------------------------------ TIFF axes in the reader
def test_imagej_tzyx_tiff_reads_with_axis_labels(tmp_path):
    import tifffile

    from napari_ipnet._reader import napari_get_reader

    stack = np.arange(4 * 3 * 8 * 9, dtype=np.uint16).reshape(4, 3, 8, 9)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TZYX"})
    assert axes.tiff_axes(path) == "TZYX"
    reader = napari_get_reader(str(path))
    assert reader is not None
    (data, meta, kind), = reader(str(path))
    assert kind == "image" and meta["axis_labels"] == ("t", "z", "y", "x") and not meta["rgb"]
    assert meta["name"] == "cells" and meta["metadata"]["tiff_axes"] == "TZYX"
    np.testing.assert_array_equal(np.asarray(data), stack)


def test_ome_tiff_channels_become_layers_with_axis_labels(tmp_path):
    import tifffile

    from napari_ipnet._reader import read_tiff

    stack = np.random.default_rng(0).integers(0, 999, (4, 2, 3, 8, 9), dtype=np.uint16)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "TCZYX"})
    layers = read_tiff(str(path))
    assert len(layers) == 2
    for c, (data, meta, kind) in enumerate(layers):
        assert kind == "image" and meta["axis_labels"] == ("t", "z", "y", "x") and meta["name"] == f"cells [c{c}]"
        np.testing.assert_array_equal(np.asarray(data), stack[:, c])


def test_tiff_without_axis_names_keeps_napari_defaults(tmp_path):
    import tifffile

    from napari_ipnet._reader import read_tiff

    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((5, 6, 8, 9), np.uint8), photometric="minisblack")
    (data, meta, _), = read_tiff(str(path))
    assert data.shape == (5, 6, 8, 9)
    assert all(not axes.is_named(lab) for lab in meta.get("axis_labels", ("-1",))[:2])
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((5, 8, 9, 3), np.uint8), photometric="rgb")
    (data, meta, _), = read_tiff(str(rgb))
    assert meta["rgb"] and data.shape == (5, 8, 9, 3) and meta["axis_labels"][-2:] == ("y", "x")


# ------------------------------------------------------------------ one rule, every caller
def test_evaluation_cli_auto_uses_the_axis_rule(tmp_path, monkeypatch):
    from napari_ipnet.evaluation import cli as eval_cli

    stack = tmp_path / "cells.tif"
    stack.write_bytes(b"")
    args = argparse.Namespace(objects_may_end="auto", axis="depth", source=str(stack))
    assert eval_cli.objects_may_end(args) is True
    args.axis = "frame"
    assert eval_cli.objects_may_end(args) is False
    seen = []
    monkeypatch.setattr(axes, "objects_may_end_default", lambda name: seen.append(name) or True)
    assert eval_cli.objects_may_end(argparse.Namespace(objects_may_end="auto", axis="t", source=str(stack)))
    assert eval_cli.objects_may_end(argparse.Namespace(objects_may_end="auto", axis="z", source=str(tmp_path)))
    assert seen == ["t", None]  # a DAVIS folder has no axis name


def test_headless_demo_uses_the_axis_rule(tmp_path, monkeypatch):
    from napari_ipnet import demo_headless, session

    frames = np.zeros((4, 16, 16), np.uint16)
    gt = np.zeros((4, 16, 16), np.uint8)
    gt[:, 4:9, 4:9] = 1
    monkeypatch.setattr(demo_headless, "sample_data", lambda key: (frames, gt, {"axis_labels": ("depth", "y", "x")}))
    monkeypatch.setattr(demo_headless, "load_weights", lambda *a: (argparse.Namespace(device="cpu"), "stub"))
    made = []

    class Stop(Exception):
        pass

    def fake_session(frames, model, objects_may_end=False, **kw):
        made.append(objects_may_end)
        raise Stop

    monkeypatch.setattr(session, "Session", fake_session)
    from napari_ipnet.demo_headless import run_headless

    args = argparse.Namespace(headless=str(tmp_path / "out"), sample="nuclei-zstack", weights="x", device="cpu")
    with pytest.raises(Stop):
        run_headless(args)
    assert made == [True]
    monkeypatch.setattr(demo_headless, "sample_data", lambda key: (frames, gt, {"axis_labels": ("time", "y", "x")}))
    with pytest.raises(Stop):
        run_headless(args)
    assert made == [True, False]
