"""Per-frame confidence: the signals (stubs) and a corrupted frame found (real weights)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ipnet.session import Session, SoftMask, mask_confidence


def _soft(p):
    return SoftMask.from_crop(0, 0, np.asarray(p, np.float32))


def test_mask_confidence_signals():
    crisp = np.zeros((20, 20))
    crisp[5:15, 5:15] = 1.0
    fuzzy = crisp * 0.6
    assert mask_confidence(_soft(crisp)) == pytest.approx(1.0)
    assert mask_confidence(_soft(fuzzy)) < 0.5
    # area change from the neighbouring frame: 100 px against 50
    assert mask_confidence(_soft(crisp), neighbour_area=50) == pytest.approx(0.5)
    # ... or counted from the neighbour's mask
    half = np.zeros((20, 20))
    half[5:10, 5:15] = 1.0
    assert mask_confidence(_soft(crisp), raw=crisp, neighbour=half) == pytest.approx(0.5)
    # vanished from one frame to the next: 0, or 0.5 where objects may end
    assert mask_confidence(None, neighbour_area=80) == 0.0
    assert mask_confidence(None, neighbour_area=80, may_end=True) == 0.5
    assert mask_confidence(None, neighbour=crisp) == 0.0
    assert mask_confidence(None, neighbour_area=0) == 1.0


def test_mask_confidence_reads_the_network_before_the_calibration():
    """The calibration's offset makes the mask crisp; the network's own answer says how
    sure it was."""
    mask = np.zeros((20, 20))
    mask[5:15, 5:15] = 1.0
    calibrated = _soft(mask)  # what the offset made of it
    unsure = 0.02 + 0.38 * mask  # the network: 0.4 on the object
    sure = 0.02 + 0.96 * mask
    assert mask_confidence(calibrated, raw=sure, neighbour=mask) > 0.9
    assert mask_confidence(calibrated, raw=unsure, neighbour=mask) < 0.3
    # pixels of the neighbour's mask the network drops with certainty are not in doubt
    dropped = np.zeros((20, 20))
    assert mask_confidence(_soft(mask), raw=0.02 + 0.96 * mask, neighbour=np.maximum(mask, dropped)) > 0.9
    # ... but half-dropped ones are
    doubt = mask.copy()
    doubt[0:5, 5:15] = 1.0  # the neighbour had these; the network says 0.3 there
    raw = 0.02 + 0.96 * mask
    raw[0:5, 5:15] = 0.3
    assert mask_confidence(_soft(mask), raw=raw, neighbour=doubt) < mask_confidence(_soft(mask), raw=raw, neighbour=mask)


def test_frame_confidence_with_stubs(stub_model):
    def blurry_on_frame_4(rgb, prev, nb):
        import torch

        p = 0.05 + 0.9 * nb
        if float(rgb.mean()) > 0.6:  # frame 4 is the bright one below: a doubtful answer
            p = torch.full_like(nb, 0.55)
        return p

    model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos, propagation=blurry_on_frame_4)
    frames = np.full((7, 48, 64), 40, np.uint8)
    frames[4] = 250
    s = Session(frames, model)
    pos = np.zeros((48, 64), bool)
    pos[20:28, 28:36] = True
    s.interact(1, pos)
    before = s.frame_confidence()
    assert before[1] > 0.5 and (np.delete(before, 1) == 0).all()  # only frame 1 is segmented yet
    list(s.propagate())
    conf = s.frame_confidence()
    assert conf.shape == (7,) and conf.dtype == np.float32
    assert conf[1] == 1.0  # annotated
    assert int(np.argmin(conf)) == 4 and conf[4] < 0.5
    np.testing.assert_array_equal(conf, s.frame_confidence(1))
    snap = s.snapshot()
    s.reset()
    s.restore(snap)
    np.testing.assert_array_equal(s.frame_confidence(), conf)  # undo keeps it


def test_a_corrupted_frame_is_the_least_confident(tmp_path):
    from test_default_model import easy_sequence

    from napari_ipnet import load_model

    frames, masks = easy_sequence(n_frames=8)
    frames = frames.copy()
    frames[5] = np.random.default_rng(0).integers(0, 255, frames[5].shape, dtype=np.uint8)  # noise
    s = Session(frames, load_model("default", device="cpu"))
    pos = np.zeros(masks[1].shape, bool)
    ys, xs = np.nonzero(masks[1])
    pos[int(np.median(ys)) - 1 : int(np.median(ys)) + 2, int(np.median(xs)) - 8 : int(np.median(xs)) + 8] = True
    s.interact(1, pos)
    list(s.propagate())
    conf = s.frame_confidence()
    assert int(np.argmin(conf)) == 5, conf
    assert conf[5] < np.median(conf)


def _segment(stub_model, propagation, frames, boxes):
    model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.02 + 0.96 * pos, propagation=propagation)
    s = Session(frames, model)
    for k, (y0, y1, x0, x1) in boxes.items():
        pos = np.zeros(frames.shape[1:3], bool)
        pos[y0:y1, x0:x1] = True
        s.interact(1, pos, object_id=k)
    list(s.propagate())
    return s


def test_an_abrupt_area_change_is_the_least_confident(stub_model):
    """A crisp mask is not a sure one when the object doubled from the neighbouring frame."""
    import torch

    def grows_on_frame_4(rgb, prev, nb):
        p = 0.02 + 0.96 * nb
        if float(rgb.mean()) > 0.6:  # frame 4: the object swells (dilated by a few ROI pixels)
            grown = torch.nn.functional.max_pool2d(nb, 9, stride=1, padding=4)
            p = 0.02 + 0.96 * grown
        return p

    frames = np.full((7, 48, 64), 40, np.uint8)
    frames[4] = 250
    s = _segment(stub_model, grows_on_frame_4, frames, {1: (20, 28, 28, 36)})
    conf = s.frame_confidence()
    assert int(np.argmin(conf)) == 4 and conf[4] < 0.7
    others = np.delete(conf, [1, 4, 5])  # 5: its neighbour (4) is the swollen one
    assert (others > 0.9).all(), conf


def test_frame_confidence_is_the_mean_over_objects(stub_model):
    """Several objects: each has its own score; the frame's is their mean, so a frame
    where both are unsure is less sure than one where one is (the minimum would tie)."""

    def unsure_where_bright(rgb, prev, nb):
        if float(rgb.mean()) > 0.6:  # the object's region of interest is bright: unsure
            return 0.02 + 0.5 * nb
        return 0.02 + 0.96 * nb

    frames = np.full((7, 48, 320), 40, np.uint8)
    frames[4] = 250  # both objects
    frames[2, :, 160:] = 250  # the object on the right only
    s = _segment(stub_model, unsure_where_bright, frames, {1: (20, 28, 12, 20), 2: (20, 28, 296, 304)})
    c1, c2, conf = s.frame_confidence(1), s.frame_confidence(2), s.frame_confidence()
    np.testing.assert_allclose(conf, (c1 + c2) / 2, rtol=1e-6)
    assert c1[2] > 0.8 and c2[2] < 0.5 and c1[4] < 0.5 and c2[4] < 0.5
    assert int(np.argmin(conf)) == 4 and conf[4] < conf[2] < conf[3]
    assert conf[1] == 1.0
    # the minimum, on request: the frame where some object is least sure
    low = s.frame_confidence(reduce="min")
    np.testing.assert_allclose(low, np.minimum(c1, c2), rtol=1e-6)
    assert low[2] < 0.5 and low[4] < 0.5
    with pytest.raises(ValueError, match="reduce"):
        s.frame_confidence(reduce="max")


def test_a_blended_round_blends_the_confidence(stub_model):
    """A later round's mask is blended with the previous round's by the round's weight,
    and so is its confidence: a doubtful frame the new round barely reaches stays
    doubtful in part."""
    unsure = {"on": True}

    def unsure_on_frame_4(rgb, prev, nb):
        if unsure["on"] and float(rgb.mean()) > 0.6:
            return 0.02 + 0.5 * nb
        return 0.02 + 0.96 * nb

    frames = np.full((8, 48, 64), 40, np.uint8)
    frames[4] = 250
    s = _segment(stub_model, unsure_on_frame_4, frames, {1: (20, 28, 28, 36)})
    old = s.frame_confidence()
    assert int(np.argmin(old)) == 4 and old[4] < 0.5
    unsure["on"] = False  # the next round is sure everywhere
    pos = np.zeros((48, 64), bool)
    pos[20:28, 28:36] = True
    s.interact(6, pos)
    list(s.propagate())
    new = s.frame_confidence()
    # frame 4 is 2 of the 5 frames from frame 6 towards frame 1: weight 0.6 for the new round
    assert new[3] > 0.9 and new[5] > 0.9
    assert 0.6 * 0.9 + 0.4 * old[4] < new[4] < 0.6 + 0.4 * old[4] + 1e-6


def test_the_protocol_correlates_over_the_frames_not_annotated():
    """The annotated frames (confidence 1 by definition) are left out of the figure;
    the figure over all frames is still there."""
    from napari_ipnet.evaluation.protocol import _confidence_spearman

    class Fake:
        def frame_confidence(self):
            return np.array([1.0, 0.9, 0.2, 0.5, 1.0, 0.7], np.float32)

        def annotated_frames(self):
            return [0, 4]

    J = np.array([0.3, 0.8, 0.1, 0.4, 0.2, 0.6])  # the annotated frames' J is out of line
    assert _confidence_spearman(Fake(), J) == pytest.approx(1.0)
    assert _confidence_spearman(Fake(), J, all_frames=True) < 0.5
    # fewer than 3 frames left: no figure
    J2 = np.array([0.3, 0.8, 0.1, 0.4, 0.2, 0.6])

    class Few(Fake):
        def annotated_frames(self):
            return [0, 1, 2, 4]

    assert _confidence_spearman(Few(), J2) is None
