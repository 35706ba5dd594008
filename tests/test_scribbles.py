"""DAVIS scribble JSON <-> maps, and interaction from DAVIS scribbles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_ipnet.scribbles import (
    annotated_frames,
    check_path,
    davis_to_maps,
    maps_to_davis,
    rasterize_path,
    scribble_map,
)
from napari_ipnet.session import Session


def test_rasterize_coordinates_and_width():
    line = rasterize_path([[0.0, 0.5], [1.0, 0.5]], 11, 21, radius=0)
    expected = np.zeros((11, 21), bool)
    expected[5] = True
    np.testing.assert_array_equal(line, expected)
    thick = rasterize_path([[0.0, 0.5], [1.0, 0.5]], 11, 21)
    assert thick[4:7].all() and not thick[:4].any() and not thick[7:].any()
    # normalised by (W - 1, H - 1): (1, 1) is the last pixel, (0.5, 0.5) the centre
    corner = rasterize_path([[1.0, 1.0]], 11, 21, radius=0)
    assert corner[10, 20] and corner.sum() == 1
    centre = rasterize_path([[0.5, 0.5]], 11, 21, radius=0)
    assert centre[5, 10] and centre.sum() == 1
    # out-of-range points are clipped, an empty path is empty
    assert rasterize_path([[1.5, -0.2]], 11, 21, radius=0)[0, 20]
    assert not rasterize_path([], 11, 21).any()
    # a diagonal polyline is connected
    diag = rasterize_path([[0, 0], [0.5, 1.0], [1.0, 0.0]], 11, 21, radius=0)
    assert diag[0, 0] and diag[10, 10] and diag[0, 20] and diag.sum() == 21


def test_round_trip_through_davis_json():
    paths = {1: [[[0.1, 0.2], [0.4, 0.2]]], 2: [[[0.6, 0.6], [0.9, 0.8]], [[0.5, 0.1]]], 0: [[[0.0, 0.9], [1.0, 0.9]]]}
    d = maps_to_davis(paths, n_frames=5, frame=3, sequence="seq")
    d = json.loads(json.dumps(d))  # plain JSON
    assert d["sequence"] == "seq" and len(d["scribbles"]) == 5
    assert annotated_frames(d) == [3]
    frame, maps = davis_to_maps(d, 30, 40)
    assert frame == 3 and sorted(maps) == [0, 1, 2]
    for k, ps in paths.items():
        expected = np.zeros((30, 40), bool)
        for p in ps:
            expected |= rasterize_path(p, 30, 40)
        np.testing.assert_array_equal(maps[k], expected)
    for stroke in d["scribbles"][3]:
        assert set(stroke) == {"path", "object_id", "start_time", "end_time"}


def test_davis_errors():
    with pytest.raises(ValueError, match="'scribbles' list"):
        davis_to_maps({"frames": []}, 10, 10)
    with pytest.raises(ValueError, match="no strokes"):
        davis_to_maps({"scribbles": [[], []]}, 10, 10)
    two = {"scribbles": [[{"path": [[0, 0]], "object_id": 1}], [{"path": [[1, 1]], "object_id": 1}]]}
    with pytest.raises(ValueError, match="several frames"):
        davis_to_maps(two, 10, 10)
    assert davis_to_maps(two, 10, 10, frame=1)[1][1][9, 9]
    with pytest.raises(IndexError, match="out of range"):
        davis_to_maps(two, 10, 10, frame=2)


@pytest.mark.parametrize(
    "stroke, message",
    [
        ({"object_id": 1}, "no 'path'"),
        ({"path": [[0.1, 0.1]]}, "no 'object_id'"),
        ({}, "no 'path' and no 'object_id'"),
        ("M 0 0 L 1 1", "is a str"),
        ([[0.1, 0.2]], "is a list"),
        ({"path": [0.1, 0.2, 0.3], "object_id": 1}, "odd number of coordinates"),
        ({"path": [[0.1, 0.2, 0.3]], "object_id": 1}, "shape \\(1, 3\\)"),
        ({"path": [[0.1, 0.2], [0.3]], "object_id": 1}, "number pairs"),
        ({"path": [["a", "b"]], "object_id": 1}, "number pairs"),
        ({"path": "0.1,0.2", "object_id": 1}, "got a str"),
        ({"path": [[0.1, 0.2], [float("nan"), 0.5]], "object_id": 1}, "point 1 of the path is not finite"),
        ({"path": [[0.1, float("inf")]], "object_id": 1}, "point 0 of the path is not finite"),
        ({"path": [[0.1, 0.2]], "object_id": -1}, "object_id must be an integer >= 0"),
        ({"path": [[0.1, 0.2]], "object_id": "1"}, "object_id must be an integer >= 0"),
        ({"path": [[0.1, 0.2]], "object_id": True}, "object_id must be an integer >= 0"),
    ],
)
def test_malformed_strokes_name_the_frame_and_stroke(stroke, message):
    good = {"path": [[0.5, 0.5]], "object_id": 1}
    d = {"scribbles": [[], [], [good, stroke]]}
    with pytest.raises(ValueError, match=f"frame 2, stroke 1.*{message}"):
        davis_to_maps(d, 10, 12)


def test_stroke_formats_that_are_accepted():
    flat = {"scribbles": [[{"path": [0.0, 0.5, 1.0, 0.5], "object_id": 2.0}]]}
    frame, maps = davis_to_maps(flat, 11, 21)
    np.testing.assert_array_equal(maps[2], rasterize_path([[0.0, 0.5], [1.0, 0.5]], 11, 21))
    assert davis_to_maps({"scribbles": [[{"path": [], "object_id": 1}, {"path": [[0, 0]], "object_id": 1}]]},
                         4, 4)[1][1][0, 0]
    assert check_path(np.array([[0.1, 0.2]])).shape == (1, 2)
    with pytest.raises(ValueError, match="not finite"):
        rasterize_path([[np.nan, 0.5]], 10, 10)  # was an IndexError
    with pytest.raises(ValueError, match="frame 1 of 'scribbles' is a str"):
        annotated_frames({"scribbles": [[], "strokes"]})


def test_scribble_maps_must_be_masks():
    shape = (4, 5)
    for ok in (np.eye(4, 5, dtype=bool), np.eye(4, 5, dtype=np.uint8), np.eye(4, 5), np.eye(4, 5, dtype=np.float32)):
        out = scribble_map(ok, shape)
        assert out.dtype == bool
        np.testing.assert_array_equal(out, np.eye(4, 5, dtype=bool))
    assert not scribble_map(None, shape).any() and scribble_map(None, shape).shape == shape
    with pytest.raises(ValueError, match="positive scribble map must hold only 0 and 1.*0.3"):
        scribble_map(np.full(shape, 0.3), shape, "positive")  # was: all positive
    with pytest.raises(ValueError, match="only 0 and 1"):
        scribble_map(np.full(shape, np.nan), shape)
    with pytest.raises(ValueError, match="only 0 and 1.*2"):
        scribble_map(np.eye(4, 5, dtype=np.int64) * 2, shape)
    with pytest.raises(ValueError, match="only 0 and 1"):
        scribble_map(-np.eye(4, 5), shape)
    with pytest.raises(ValueError, match="shape \\(5, 4\\)"):
        scribble_map(np.zeros((5, 4), bool), shape)
    with pytest.raises(ValueError, match="dtype"):
        scribble_map(np.zeros(shape, complex), shape)


def test_interact_davis_multi_object(stub_model):
    model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos)
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    s = Session(frames, model)
    d = maps_to_davis(
        {1: [[[0.1, 0.2], [0.3, 0.2]]], 2: [[[0.7, 0.7], [0.9, 0.7]]], 0: [[[0.1, 0.9], [0.9, 0.9]]]},
        n_frames=4, frame=2,
    )
    assert s.interact_davis(d) == 2
    assert s.object_ids == [1, 2] and s.pending_frame == 2
    # each object: its own positives; negatives = background + the other object's strokes
    (call,) = model.interaction.calls  # both objects in one batched call
    assert call["rgb"].shape[0] == 2
    pos1, neg1 = call["maps"][1][0], call["maps"][2][0]
    assert pos1.sum() > 0 and neg1.sum() > pos1.sum()
    lab = s.label_frame(2)
    assert lab[int(0.2 * 47), int(0.2 * 63)] == 1 and lab[int(0.7 * 47), int(0.8 * 63)] == 2
    assert lab[int(0.9 * 47), int(0.5 * 63)] == 0
    assert list(s.propagate()) == [3, 1, 0]
    with pytest.raises(ValueError, match="no strokes"):
        s.interact_davis({"scribbles": [[], [], [], []]})
