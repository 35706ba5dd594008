"""The scribble robot: where its strokes go, when it stays silent, and that its output
round-trips through the project's rasterisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import rect
from scipy import ndimage

from napari_ipnet.evaluation.robot import ScribbleRobot, disk_opening, longest_path
from napari_ipnet.scribbles import annotated_frames, davis_to_maps, rasterize_path

H, W = 96, 128


def _half_missed():
    """Object rows 20-70, cols 20-100; prediction covers its left half plus a false
    positive blob 4+ px below the object."""
    gt = rect((H, W), 20, 70, 20, 100)
    pred = rect((H, W), 20, 70, 20, 60)
    pred[76:92, 30:90] = 1
    return gt, pred


def test_half_missed_object():
    gt, pred = _half_missed()
    robot = ScribbleRobot()
    s = robot.interact(gt, pred, frame=3, n_frames=6, sequence="x")
    assert s["sequence"] == "x" and len(s["scribbles"]) == 6
    assert annotated_frames(s) == [3]
    strokes = s["scribbles"][3]
    ids = sorted({st["object_id"] for st in strokes})
    assert ids == [0, 1]
    missed = (gt == 1) & (pred != 1)
    false_pos = (gt == 0) & (pred == 1)
    for st in strokes:
        centre = rasterize_path(st["path"], H, W, radius=0)
        assert centre.sum() >= 4
        if st["object_id"] == 1:
            assert not (centre & ~missed).any(), "positive scribble outside the missed part"
        else:
            assert not (centre & ~false_pos).any(), "background scribble outside the false positive"
    # the strokes as the session sees them (3x3 brush): positives on the object,
    # background strokes off it
    frame, maps = davis_to_maps(s, H, W)
    assert frame == 3
    assert maps[1].sum() > 20 and maps[0].sum() > 20
    assert not (maps[0] & (gt == 1)).any()
    assert (maps[1] & (gt == 1)).sum() / maps[1].sum() > 0.97
    # the positive scribble runs along the missed part (its skeleton spans most of it)
    cols = np.flatnonzero(maps[1].any(axis=0))
    assert cols.min() >= 59 and cols.max() - cols.min() > 20


def test_exact_prediction_gives_no_scribble():
    gt = rect((H, W), 20, 70, 20, 100)
    gt[75:90, 100:120] = 2
    s = ScribbleRobot().interact(gt, gt.copy(), frame=0, n_frames=2)
    assert s["scribbles"] == [[], []]


def test_void_label_is_not_scribbled():
    gt = rect((H, W), 20, 70, 20, 100)
    gt[0:30, 0:30] = 255
    pred = np.where(gt == 255, 0, gt)
    s = ScribbleRobot().interact(gt, pred)
    assert s["scribbles"] == [[]]


def test_round_trip_through_rasterisation():
    gt, pred = _half_missed()
    robot = ScribbleRobot()
    paths = robot.scribble_paths(gt, pred)
    s = robot.interact(gt, pred)
    strokes = s["scribbles"][0]
    assert len(strokes) == sum(len(v) for v in paths.values())
    flat = [(k, p) for k in sorted(paths) for p in paths[k]]
    for (k, path), st in zip(flat, strokes):
        assert st["object_id"] == k
        expected = np.zeros((H, W), bool)
        expected[path[:, 0], path[:, 1]] = True
        assert np.array_equal(rasterize_path(st["path"], H, W, radius=0), expected)
        # consecutive path pixels are 8-neighbours: the path is one connected line
        assert np.abs(np.diff(path, axis=0)).max() == 1
    # and through JSON text
    again = json.loads(json.dumps(s))
    assert again == s


def test_deterministic():
    rng = np.random.default_rng(5)
    gt = ndimage.binary_dilation(rng.random((H, W)) > 0.99, iterations=5).astype(np.uint8)
    gt[gt == 1] = 1
    pred = np.roll(gt, 6, axis=1)
    a = ScribbleRobot().interact(gt, pred)
    b = ScribbleRobot().interact(gt.copy(), pred.copy())
    assert a == b
    assert a["scribbles"][0]


def test_multi_object_labels():
    gt = rect((H, W), 10, 40, 10, 50)
    gt[50:90, 60:120] = 2
    pred = np.zeros_like(gt)
    s = ScribbleRobot().interact(gt, pred)
    frame, maps = davis_to_maps(s, H, W)
    assert sorted(maps) == [1, 2]  # nothing predicted: no background error
    assert (maps[1] & (gt == 1)).sum() / maps[1].sum() > 0.97
    assert (maps[2] & (gt == 2)).sum() / maps[2].sum() > 0.97
    # one object only when asked
    s1 = ScribbleRobot().interact(gt, pred, labels=[0, 2])
    assert {st["object_id"] for st in s1["scribbles"][0]} == {2}


def test_thin_error_still_scribbled_tiny_error_not():
    gt = rect((H, W), 10, 80, 20, 60)
    pred = gt.copy()
    pred[10:80, 20:22] = 0  # a 2-px wide missed strip: the opening would erase it
    s = ScribbleRobot().interact(gt, pred)
    strokes = s["scribbles"][0]
    assert [st["object_id"] for st in strokes] == [1]
    centre = rasterize_path(strokes[0]["path"], H, W, radius=0)
    assert not (centre & ~((gt == 1) & (pred == 0))).any()
    assert centre.sum() > 50
    pred2 = gt.copy()
    pred2[30, 30:33] = 0  # 3 missed pixels: skeleton shorter than 4 nodes
    assert ScribbleRobot().interact(gt, pred2)["scribbles"] == [[]]


def test_opening_radius_rule():
    robot = ScribbleRobot()
    assert robot.opening_radius(400) == pytest.approx(0.2 * 20 / 2)
    assert robot.opening_radius(10**6) == 16.0
    # a 5-px wide strip: initial radius ~3.2 empties it, shrinking by 0.9 finds one that keeps it
    strip = rect((H, W), 0, 5, 0, 128).astype(bool) | rect((H, W), 40, 45, 0, 128).astype(bool)
    opened = robot.open_region(strip)
    assert opened.any() and not (opened & ~strip).any()


@pytest.mark.parametrize("radius", [1.5, 2.0, 3.3, 6.0])
def test_disk_opening_matches_reference(radius):
    rng = np.random.default_rng(int(radius * 10))
    m = ndimage.binary_dilation(rng.random((60, 80)) > 0.97, iterations=4)
    m[:, :3] = True  # touches the border
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    fp = yy**2 + xx**2 <= radius**2
    pad = r + 1
    er = ndimage.binary_erosion(np.pad(m, pad, constant_values=True), fp)[pad:-pad, pad:-pad]
    ref = ndimage.binary_dilation(er, fp)
    assert np.array_equal(disk_opening(m, radius), ref)


def test_longest_path_shapes():
    # an L: the whole L, end to end
    L = [(r, 5) for r in range(0, 10)] + [(9, c) for c in range(6, 15)]
    p = longest_path(np.array(L))
    assert len(p) == len(L)
    assert {tuple(p[0]), tuple(p[-1])} == {(0, 5), (9, 14)}
    # a T: the two longest arms
    T_ = [(0, c) for c in range(0, 21)] + [(r, 10) for r in range(1, 6)]
    p = longest_path(np.array(T_))
    assert {tuple(p[0]), tuple(p[-1])} == {(0, 0), (0, 20)}
    assert len(p) == 21


def test_round_blob_gets_a_stroke_through_its_middle():
    # the medial axis of a disk is a single point, which min_nodes drops: the robot
    # falls back to a straight stroke along the principal axis, inside the disk
    yy, xx = np.mgrid[:60, :80]
    disk = ((yy - 30) ** 2 + (xx - 40) ** 2 <= 14**2).astype(np.uint8)
    robot = ScribbleRobot()
    paths = robot.scribble_paths(disk, np.zeros_like(disk))
    assert list(paths) == [1] and len(paths[1]) == 1
    path = paths[1][0]
    assert len(path) >= 12
    assert disk[path[:, 0], path[:, 1]].all()
    assert np.abs(np.diff(path, axis=0)).max() == 1, "8-connected pixels"
    centre = np.array([30, 40])
    assert np.min(np.abs(path - centre).sum(axis=1)) <= 1, "passes through the centre"
    # an elongated object keeps its medial-axis stroke (no fallback)
    bar = np.zeros((60, 80), np.uint8)
    bar[25:35, 10:70] = 1
    assert len(robot.scribble_paths(bar, np.zeros_like(bar))[1][0]) > 40
    # deterministic
    again = robot.scribble_paths(disk, np.zeros_like(disk))
    assert np.array_equal(again[1][0], path)
