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
    # agreement with the previous round: half the mask moved
    moved = np.zeros((20, 20))
    moved[5:15, 10:20] = 1.0
    assert mask_confidence(_soft(crisp), _soft(moved)) == pytest.approx(0.5 + 0.5 * 50 / 150)
    # vanished from one frame to the next: 0, or 0.5 where objects may end
    assert mask_confidence(None, neighbour_area=80) == 0.0
    assert mask_confidence(None, neighbour_area=80, may_end=True) == 0.5
    assert mask_confidence(None, neighbour_area=0) == 1.0


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
