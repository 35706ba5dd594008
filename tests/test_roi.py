"""The region of interest: box rule, and the warp into the ROI and back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ipnet.model.roi import ROI_SIZE, Box, roi_box, warp_in, warp_out


def _box_tuple(b: Box):
    return (b.y0, b.x0, b.y1, b.x1)


# ------------------------------------------------------------------ the box rule
def test_empty_maps_give_the_whole_frame_enlarged_and_clamped():
    # 400 x 600: the frame box (0..399, 0..599) enlarged 1.5x, clamped to [-5, size + 5]
    assert _box_tuple(roi_box([np.zeros((400, 600))], 400, 600)) == (-5.0, -5.0, 405.0, 605.0)
    assert _box_tuple(roi_box([None, None], 400, 600)) == (-5.0, -5.0, 405.0, 605.0)
    # small frame: the 128 px minimum side already exceeds it
    assert _box_tuple(roi_box([], 48, 64)) == (-5.0, -5.0, 53.0, 69.0)


def test_single_pixel_grows_to_128_then_1_5x():
    m = np.zeros((400, 600))
    m[200, 300] = 1
    # side 128 * 1.5 = 192 about the pixel centre
    assert _box_tuple(roi_box([m], 400, 600)) == (104.0, 204.0, 296.0, 396.0)


def test_large_object_is_enlarged_1_5x_about_its_centre():
    m = np.zeros((400, 600))
    m[100:300, 250:350] = 1  # rows 100..299 (span 199), cols 250..349 (span 99 -> 128)
    b = roi_box([m], 400, 600)
    assert _box_tuple(b) == pytest.approx((50.25, 203.5, 348.75, 395.5))


def test_box_is_clamped_near_the_border():
    m = np.zeros((400, 600))
    m[0:3, 590:600] = 1
    b = roi_box([m], 400, 600)
    assert b.y0 == -5.0 and b.x1 == 605.0
    assert b.y1 == pytest.approx(1 + 96) and b.x0 == pytest.approx(594.5 - 96)


def test_threshold_and_union_of_maps():
    a = np.zeros((400, 600))
    b = np.zeros((400, 600))
    a[50, 60] = 0.48  # below 0.49: ignored
    assert _box_tuple(roi_box([a], 400, 600)) == (-5.0, -5.0, 405.0, 605.0)
    a[50, 60] = 0.49
    b[250, 400] = 1.0
    box = roi_box([a, None, b], 400, 600)
    # union spans rows 50..250 (200 px) and cols 60..400 (340 px); x0 = 230 - 255 clamps to -5
    assert _box_tuple(box) == pytest.approx((150 - 150, -5.0, 150 + 150, 230 + 255))


# ------------------------------------------------------------------ the warp
def test_warp_in_is_exact_for_a_unit_scale_box():
    # ROI pixel (i, j) <- frame pixel (20 + i, 30 + j): align_corners=True semantics
    frame = torch.rand(1, 2, 300, 320)
    box = Box(20.0, 30.0, 20.0 + ROI_SIZE - 1, 30.0 + ROI_SIZE - 1)
    roi = warp_in(frame, box)
    assert roi.shape == (1, 2, ROI_SIZE, ROI_SIZE)
    torch.testing.assert_close(roi, frame[:, :, 20 : 20 + ROI_SIZE, 30 : 30 + ROI_SIZE], atol=2e-4, rtol=0)  # float32 coordinate rounding; a half-pixel shift would be ~0.3
    (y0, x0, y1, x1), back = warp_out(roi, box, 300, 320)
    assert (y0, x0, y1, x1) == (20, 30, 20 + ROI_SIZE, 30 + ROI_SIZE)
    torch.testing.assert_close(back, frame[:, :, y0:y1, x0:x1], atol=2e-4, rtol=0)  # float32 coordinate rounding; a half-pixel shift would be ~0.3


def test_warp_in_zero_outside_the_frame():
    frame = torch.ones(1, 1, 100, 100)
    box = Box(-5.0, -5.0, 104.0, 104.0)
    roi = warp_in(frame, box, 110)  # one ROI pixel per frame pixel
    assert roi[0, 0, 5:105, 5:105].min() == 1.0
    assert roi[0, 0, :5].abs().max() < 1e-5 and roi[0, 0, :, 105:].abs().max() < 1e-5


def _disk(h, w, cy, cx, r):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + ((xx - cx) / 1.3) ** 2 <= r * r).astype(np.float32)


@pytest.mark.parametrize(
    "h, w, cy, cx, r",
    [
        (300, 400, 150, 200, 30),  # inside
        (300, 400, 150, 200, 150),  # box larger than the ROI (downsampled)
        (300, 400, 2, 200, 25),  # touching the top border
        (300, 400, 280, 390, 40),  # partly outside the frame (bottom-right corner)
        (48, 64, 24, 32, 10),  # frame smaller than the ROI (upsampled, box past the frame)
        (60, 500, 30, 10, 20),  # thin wide frame, object at the left end
    ],
)
def test_mask_round_trip_through_the_roi(h, w, cy, cx, r):
    mask = _disk(h, w, cy, cx, r)
    box = roi_box([mask], h, w)
    roi = warp_in(torch.from_numpy(mask)[None, None], box)
    (y0, x0, y1, x1), crop = warp_out(roi, box, h, w)
    assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
    full = np.zeros((h, w), np.float32)
    full[y0:y1, x0:x1] = crop[0, 0].numpy()
    a, b = full >= 0.5, mask >= 0.5
    iou = (a & b).sum() / (a | b).sum()
    assert iou > 0.95, iou
    # the mask lies inside the box (with margin), so nothing is lost outside the crop
    assert b[y0:y1, x0:x1].sum() == b.sum()


def test_warp_out_is_zero_outside_the_box():
    h, w = 100, 700
    mask = _disk(h, w, 50, 60, 10)
    box = roi_box([mask], h, w)
    (y0, x0, y1, x1), crop = warp_out(torch.ones(1, 1, ROI_SIZE, ROI_SIZE), box, h, w)
    assert x1 < w  # the box (192 px wide) does not reach the right side
    assert x1 - 1 <= box.x1 + 1 and x0 >= box.x0 - 1
    # inside the box the warped constant stays 1
    inner = crop[0, 0, :, int(np.ceil(box.x0)) - x0 : int(np.floor(box.x1)) - x0 + 1]
    assert inner.min() > 0.999


# ------------------------------------------------------------------ one object's box
def test_object_box_ignores_far_negatives():
    from napari_ipnet.model.roi import object_box

    own = np.zeros((1000, 1000))
    own[500, 500] = 1  # a small cell in the middle of a large frame
    negatives = np.zeros((1000, 1000))
    negatives[20, 20] = negatives[980, 970] = 1  # the other cells' strokes, far away
    alone = roi_box([own], 1000, 1000)
    assert _box_tuple(object_box([own], 1000, 1000, [negatives])) == _box_tuple(alone)
    # the old rule (every map) stretched the box across the frame
    assert roi_box([own, negatives], 1000, 1000).x1 - roi_box([own, negatives], 1000, 1000).x0 > 1000
    # without own evidence, the negatives (then the whole frame) give the box
    assert _box_tuple(object_box([np.zeros((1000, 1000)), None], 1000, 1000, [negatives])) == _box_tuple(
        roi_box([negatives], 1000, 1000)
    )
    assert _box_tuple(object_box([None], 1000, 1000)) == (-5.0, -5.0, 1005.0, 1005.0)


@pytest.mark.parametrize("box", [Box(-5.0, -5.0, 300.5, 200.0), Box(10.3, 40.7, 90.1, 133.9), Box(0.0, 0.0, 239.0, 319.0)])
def test_the_roi_grid_is_the_affine_grid_of_the_box(box):
    """warp_in's separable grid equals ``F.affine_grid`` of the box's affine map."""
    import torch.nn.functional as F

    from napari_ipnet.model.roi import _roi_grid

    h, w, size = 240, 320, 192
    sx, sy = (box.x1 - box.x0) / (w - 1), (box.y1 - box.y0) / (h - 1)
    tx, ty = (box.x0 + box.x1) / (w - 1) - 1.0, (box.y0 + box.y1) / (h - 1) - 1.0
    theta = torch.tensor([[[sx, 0.0, tx], [0.0, sy, ty]]])
    expected = F.affine_grid(theta, [1, 1, size, size], align_corners=True)
    torch.testing.assert_close(_roi_grid(box, h, w, size, "cpu", torch.float32), expected, rtol=0, atol=1e-6)
