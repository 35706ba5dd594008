"""J and F on hand-made cases with known answers, and F against an independent
reference (DAVIS-style disk dilation) on random shapes."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import rect, ref_f, ref_j, shift_right
from scipy import ndimage

from napari_ipnet.evaluation.metrics import (
    boundary_map,
    boundary_tolerance,
    evaluate_labels,
    f_measure,
    jaccard,
    object_ids,
)

H, W = 120, 160  # diagonal 200 px -> tolerance ceil(1.6) = 2 px


def test_tolerance_rule():
    assert boundary_tolerance(H, W) == 2
    assert boundary_tolerance(480, 854) == 8  # ceil(0.008 * 979.6) = ceil(7.84)
    assert boundary_tolerance(1024, 1024) == 12  # ceil(11.59)


def test_empty_and_identical():
    empty = np.zeros((H, W), np.uint8)
    obj = rect((H, W), 30, 70, 40, 100)
    assert jaccard(empty, empty)[0] == 1.0
    assert f_measure(empty, empty)[0] == 1.0
    assert jaccard(obj, obj)[0] == 1.0
    assert f_measure(obj, obj)[0] == 1.0
    # one side empty: J 0, F 0 (precision or recall is 0)
    assert jaccard(obj, empty)[0] == 0.0 and jaccard(empty, obj)[0] == 0.0
    assert f_measure(obj, empty)[0] == 0.0 and f_measure(empty, obj)[0] == 0.0


def test_disjoint_far_apart():
    a = rect((H, W), 10, 30, 10, 40)
    b = rect((H, W), 70, 100, 100, 150)
    assert jaccard(a, b)[0] == 0.0
    assert f_measure(a, b)[0] == 0.0


@pytest.mark.parametrize("k", [0, 1, 2, 3, 7, 20])
def test_shift_jaccard_closed_form(k):
    w, h = 60, 40
    gt = rect((H, W), 30, 30 + h, 40, 40 + w)
    pred = shift_right(gt, k)
    expected = (w - k) * h / ((w + k) * h)
    assert jaccard(gt, pred)[0] == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 2])
def test_shift_within_tolerance_gives_perfect_f(k):
    gt = rect((H, W), 30, 70, 40, 100)
    assert f_measure(gt, shift_right(gt, k))[0] == 1.0


def test_shift_just_above_tolerance_is_imperfect():
    gt = rect((H, W), 30, 70, 40, 100)
    f3 = f_measure(gt, shift_right(gt, 3))[0]
    assert f3 < 1.0
    assert f3 == pytest.approx(ref_f(gt, shift_right(gt, 3)))


def _band(y0, h):
    """Full-width band: its boundary is two whole rows (y0 - 1 and y0 + h - 1)."""
    return rect((H, W), y0, y0 + h, 0, W)


def test_adjacent_bands_known_f():
    # band shifted down by its own height h > tolerance: the predicted top boundary row
    # coincides with the ground truth's bottom row, the other row is h px away.
    # precision = recall = 1/2 -> F = 0.5, and J = 0 (no overlap)
    h = 6
    gt, pred = _band(40, h), _band(40 + h, h)
    assert jaccard(gt, pred)[0] == 0.0
    assert f_measure(gt, pred)[0] == pytest.approx(0.5)
    # the same with h within the tolerance: every boundary pixel matches
    gt, pred = _band(40, 2), _band(42, 2)
    assert f_measure(gt, pred)[0] == 1.0


@pytest.mark.parametrize("k", [3, 4, 5])
def test_band_shift_between_one_and_two_tolerances(k):
    # band of height 6 (3 x tolerance) shifted by r < k < 2r... and up to 2r + 1:
    # predicted rows are k px from their counterparts and 6 - k from the other row
    h, r = 6, 2
    gt, pred = _band(40, h), _band(40 + k, h)
    top_hits = int(h - k <= r)  # predicted top row vs ground-truth bottom row
    expected_p = top_hits / 2
    expected_f = 0.0 if expected_p == 0 else expected_p  # precision == recall by symmetry
    assert f_measure(gt, pred)[0] == pytest.approx(expected_f)
    assert jaccard(gt, pred)[0] == pytest.approx((h - k) / (h + k))


def test_boundary_map_matches_reference_rule():
    rng = np.random.default_rng(3)
    m = ndimage.binary_dilation(rng.random((20, 30)) > 0.9, iterations=2)
    m[:, -1] |= m[:, -2]  # touch the right and bottom borders too
    m[-1] |= m[-2]
    from eval_helpers import ref_bmap, ref_bmap_pad

    assert np.array_equal(boundary_map(m)[0], ref_bmap(m))
    assert np.array_equal(ref_bmap_pad(m), ref_bmap(m))  # the reference used by ref_f


def test_f_matches_reference_on_random_shapes():
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for _ in range(6):
        g = ndimage.binary_dilation(rng.random((H, W)) > 0.995, iterations=int(rng.integers(3, 9)))
        p = ndimage.binary_dilation(g, iterations=int(rng.integers(0, 4))) if rng.random() > 0.3 else g
        p = np.roll(p, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
        gts.append(g)
        preds.append(p)
    gts, preds = np.stack(gts), np.stack(preds)
    f = f_measure(gts, preds)
    j = jaccard(gts, preds)
    for t in range(len(gts)):
        assert f[t] == pytest.approx(ref_f(gts[t], preds[t]), abs=1e-12)
        assert j[t] == pytest.approx(ref_j(gts[t], preds[t]), abs=1e-12)
    assert 0 < f.min() < 1  # the cases are not all trivial


def test_frames_are_independent():
    # a boundary on one frame must never match a boundary on another frame
    gt = np.zeros((2, H, W), np.uint8)
    pred = np.zeros((2, H, W), np.uint8)
    gt[0, 30:60, 30:60] = 1
    pred[1, 30:60, 30:60] = 1
    assert np.array_equal(f_measure(gt, pred), [0.0, 0.0])
    assert np.array_equal(jaccard(gt, pred), [0.0, 0.0])


def test_evaluate_labels_multi_object_and_void():
    gt = np.zeros((3, H, W), np.uint8)
    gt[:, 10:40, 10:50] = 1
    gt[:, 60:100, 80:140] = 2
    gt[:, 0:5, 0:5] = 255  # void: not an object
    pred = gt.copy()
    pred[pred == 255] = 0
    pred[1] = shift_right(pred[1], 10)
    pred[2][pred[2] == 2] = 0  # object 2 missed on frame 2
    res = evaluate_labels(gt, pred)
    assert res["objects"] == [1, 2]
    assert res["J"].shape == res["F"].shape == (3, 2)
    assert res["J"][0].tolist() == [1.0, 1.0]
    assert res["J"][1, 0] == pytest.approx(30 / 50)
    assert res["J"][1, 1] == pytest.approx(50 / 70)
    assert res["J"][2].tolist() == [1.0, 0.0]
    assert res["F"][2, 1] == 0.0
    assert object_ids(gt) == [1, 2]
    assert object_ids(gt.astype(np.uint16)) == [1, 2]
    assert object_ids(gt.astype(np.int32)) == [1, 2]
    # an object absent from both: J = F = 1
    res3 = evaluate_labels(gt, pred, objects=[3])
    assert np.all(res3["J"] == 1.0) and np.all(res3["F"] == 1.0)
    # J only
    assert evaluate_labels(gt, pred, boundary=False)["F"] is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        jaccard(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
