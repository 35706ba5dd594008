"""The propagation's online calibration: the offset fit, and its use by the session."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ipnet.calibration import BIAS_GRID, apply_logit_bias, fit_logit_bias, logits


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("true_bias", [-0.75, 0.0, 0.75, 1.5])
def test_fit_finds_the_offset_that_explains_an_under_confident_map(true_bias):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (64, 64)).astype(np.float32)  # the "true" logits: target is z > 0
    prob = _sigmoid(z - true_bias).astype(np.float32)  # a network off by true_bias
    b = fit_logit_bias(prob, z > 0)
    assert b == pytest.approx(true_bias, abs=0.25)
    fixed = apply_logit_bias(prob, b) > 0.5
    assert np.mean(fixed == (z > 0)) > 0.99


def test_fit_prefers_no_change_and_handles_empty_targets():
    prob = np.where(np.arange(100) < 50, 0.99, 0.01).astype(np.float32)
    target = np.arange(100) < 50
    # every offset in (-4.6, 4.6) separates perfectly: the tie goes to 0
    assert fit_logit_bias(prob, target) == 0.0
    assert fit_logit_bias(prob, np.zeros(100, bool)) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        fit_logit_bias(prob, target[:10])


def test_fit_stays_on_its_grid_and_changes_nothing_it_cannot_help():
    target = np.zeros((10, 10), bool)
    target[:5] = True
    prob = np.where(target, 0.2, 1e-5).astype(np.float32)  # logit -1.39: needs at least 1.39
    assert fit_logit_bias(prob, target) == 1.5
    far = np.where(target, 0.01, 1e-5).astype(np.float32)  # needs 4.6, beyond the grid's 2
    assert fit_logit_bias(far, target) == 0.0  # no offset on the grid helps: none is applied
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (64, 64))
    assert fit_logit_bias(_sigmoid(z - 3.0), z > 0) == BIAS_GRID.max()  # the best the grid has


def test_apply_offset_is_a_shift_of_the_logits():
    prob = np.linspace(0.01, 0.99, 50, dtype=np.float32)
    assert apply_logit_bias(prob, 0.0) is prob
    out = apply_logit_bias(prob, 1.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(logits(out), logits(prob) + 1.5, atol=1e-3)


def _square(n=6, size=48):
    frames = np.zeros((n, size, size), np.uint8)
    frames[:, 16:32, 16:32] = 200
    pos = np.zeros((size, size), bool)
    pos[22:26, 22:26] = True
    return frames, pos


def _under_confident(rgb, prev, neighbour):
    """A propagation stub that is sure of nothing: p = 0.3 on the neighbour's mask."""
    import torch

    return torch.where(neighbour > 0.5, torch.tensor(0.3), torch.tensor(0.01))


@pytest.mark.parametrize("calibrate", [False, True])
def test_session_calibrates_an_object_on_its_first_annotated_frame(stub_model, calibrate):
    from napari_ipnet.session import Session

    frames, pos = _square()
    model = stub_model(interaction=lambda rgb, prev, p, n: (p > 0.5).float() * 0.98 + 0.01,
                       propagation=_under_confident)
    s = Session(frames, model, calibrate=calibrate, calibrate_corrections=False)
    assert s.calibrate_propagation is calibrate and not s.calibrate_correction_rounds
    s.interact(2, object_id=1, positive=pos)
    done = list(s.propagate())
    assert sorted(done) == [0, 1, 3, 4, 5]
    labels = np.asarray(s.labels)
    if calibrate:
        # one more call, on the annotated frame, from the object's own mask and no
        # previous-round mask; then every frame keeps the object
        first = model.propagation.calls[0]
        own = first["maps"][1][0, 0]
        assert float(first["maps"][0].abs().max()) == 0.0
        assert float(own.max()) == 1.0 and float(own.min()) == 0.0
        assert len(model.propagation.calls) == len(done) + 1
        assert all((labels[f] == 1).sum() == (labels[2] == 1).sum() for f in done)
        # without calibrate_corrections a correction round is not calibrated: no extra
        # call, and the network's under-confident answer is used as it is (the object
        # fades on frame 5, where the new round has the full weight)
        model.propagation.calls.clear()
        s.interact(4, object_id=1, positive=pos)
        done = list(s.propagate())
        assert done == [5, 3] and len(model.propagation.calls) == len(done)
        assert not (np.asarray(s.labels)[5] == 1).any()
    else:
        # uncalibrated, p = 0.3 everywhere: the object is lost on the first step
        assert len(model.propagation.calls) == len(done)
        assert all(not (labels[f] == 1).any() for f in done)


def test_a_correction_round_is_calibrated_on_its_corrected_frame(stub_model):
    """With ``calibrate_corrections`` (the default) a correction round gets its own
    offset: the network runs on the corrected frame with the object's new label as the
    neighbour's mask and, as the previous round's mask, the object's mask there before
    the correction (what it sees on the round's other frames); the under-confident
    network then keeps the object on the frames the correction reaches."""
    import torch

    from napari_ipnet.session import Session

    assert Session.calibrate_correction_rounds
    frames, pos = _square()
    model = stub_model(interaction=lambda rgb, prev, p, n: (p > 0.5).float() * 0.98 + 0.01,
                       propagation=_under_confident)
    s = Session(frames, model, calibrate=True)
    s.interact(2, object_id=1, positive=pos)
    list(s.propagate())
    before = s.probability(4, 1).copy()  # the first round's mask on frame 4
    assert (before > 0.5).any()
    model.propagation.calls.clear()
    moved = np.roll(pos, 3, axis=1)
    s.interact(4, object_id=1, positive=moved)
    done = list(s.propagate())
    assert done == [5, 3] and len(model.propagation.calls) == len(done) + 1
    first = model.propagation.calls[0]
    previous, own = first["maps"][0][0, 0], first["maps"][1][0, 0]
    assert float(previous.max()) > 0.5 and float(own.max()) == 1.0  # both masks given
    assert not torch.equal(previous > 0.5, own > 0.5)  # the mask before the correction, not after
    labels = np.asarray(s.labels)
    assert (labels[5] == 1).sum() == (labels[4] == 1).sum()
    # the mask before the correction is part of the undo state: after restoring a
    # snapshot taken after the interaction, the calibration gets it again
    s2 = Session(frames, model, calibrate=True)
    s2.interact(2, object_id=1, positive=pos)
    list(s2.propagate())
    s2.interact(4, object_id=1, positive=moved)
    snap = s2.snapshot()
    list(s2.propagate())
    s2.restore(snap)
    model.propagation.calls.clear()
    list(s2.propagate())
    assert torch.equal(model.propagation.calls[0]["maps"][0][0, 0], previous)
    assert np.array_equal(np.asarray(s2.labels), labels)
    # objects that may end (a z-stack): the correction round gets no offset, which,
    # fitted where the object is, would keep it past the plane where it ends
    s3 = Session(frames, model, calibrate=True, objects_may_end=True)
    s3.interact(2, object_id=1, positive=pos)
    list(s3.propagate())
    model.propagation.calls.clear()
    s3.interact(4, object_id=1, positive=moved)
    done = list(s3.propagate())
    assert len(model.propagation.calls) == len(done)
