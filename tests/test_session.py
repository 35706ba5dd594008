"""The session engine: blend rule, references, several objects, cancel, errors.

Most tests use stub networks with known outputs (see conftest.StubModel); 48x64 frames
are smaller than the 128 px minimum ROI side, so the ROI covers the whole frame and a
constant network output becomes a constant probability over the frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ipnet.session import Session, SoftMask, blend_weight, soft_aggregate

H, W = 48, 64
TOL = 1 / 255 + 1e-6  # stored masks are uint8


def q(x):
    """What the session stores: the probability quantised to 1/255."""
    return np.rint(np.clip(x, 0, 1) * 255) / 255


def frames_of(t=10, h=H, w=W):
    return np.random.default_rng(0).integers(0, 255, (t, h, w, 3), dtype=np.uint8)


def scribble(y0=20, y1=26, x0=30, x1=36, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def probs(session, k=1):
    return np.stack([session.probability(t, k) for t in range(session.n_frames)])


def assert_constant(p, value, tol=TOL):
    assert np.abs(p - value).max() <= tol, (p.min(), p.max(), value)


def run_round(session, model, frame, interaction, propagation, feature, object_id=1):
    model.interaction.value = interaction
    model.interaction.feature_value = feature
    model.propagation.value = propagation
    session.interact(frame, scribble(), object_id=object_id)
    plan = session.propagation_plan()
    done = list(session.propagate())
    assert done == plan
    return done


# ------------------------------------------------------------------ blending rounds
def test_blend_weight_rule():
    assert blend_weight(7, 5, None) == 1.0
    assert blend_weight(6, 5, 8) == pytest.approx(2 / 3)
    assert blend_weight(8, 5, 8) == 0.0
    assert blend_weight(3, 5, 2) == pytest.approx(1 / 3)
    assert blend_weight(1, 5, 2) == 0.0  # past the annotated frame: never negative


def test_blend_rule_over_four_rounds(stub_model):
    model = stub_model()
    s = Session(frames_of(10), model)
    expected = np.zeros(10)

    # round 1 on frame 5, no earlier annotation: w = 1 on both sides
    done = run_round(s, model, 5, 0.9, 0.2, feature=1.0)
    assert done == [6, 7, 8, 9, 4, 3, 2, 1, 0]
    expected[:] = q(0.2)
    expected[5] = q(0.9)
    P = probs(s)
    for t in range(10):
        assert_constant(P[t], expected[t])
    assert s.annotated_frames() == [5] and s.pending_frame is None

    # round 2 on frame 2: forward towards the annotated frame 5 (w = 2/3, 1/3, 0),
    # backward to the sequence start (w = 1)
    done = run_round(s, model, 2, 1.0, 0.8, feature=3.0)
    assert done == [3, 4, 1, 0]
    expected[2] = q(1.0)
    expected[3] = q(2 / 3 * 0.8 + 1 / 3 * expected[3])
    expected[4] = q(1 / 3 * 0.8 + 2 / 3 * expected[4])
    expected[[0, 1]] = q(0.8)
    P = probs(s)
    for t in range(10):  # 5..9 untouched
        assert_constant(P[t], expected[t])
    assert s.annotated_frames() == [2, 5]

    # round 3 on frame 8: backward towards 5, forward to the end
    done = run_round(s, model, 8, 0.7, 0.4, feature=5.0)
    assert done == [9, 7, 6]
    expected[8] = q(0.7)
    expected[9] = q(0.4)
    expected[7] = q(2 / 3 * 0.4 + 1 / 3 * expected[7])
    expected[6] = q(1 / 3 * 0.4 + 2 / 3 * expected[6])
    P = probs(s)
    for t in range(10):
        assert_constant(P[t], expected[t])

    # round 4: frame 5 annotated again, between the annotated frames 2 and 8
    done = run_round(s, model, 5, 0.3, 0.6, feature=7.0)
    assert done == [6, 7, 4, 3]
    expected[5] = q(0.3)  # the interaction replaces the frame's mask
    for f in (6, 4):
        expected[f] = q(2 / 3 * 0.6 + 1 / 3 * expected[f])
    for f in (7, 3):
        expected[f] = q(1 / 3 * 0.6 + 2 / 3 * expected[f])
    P = probs(s)
    for t in range(10):  # 0, 1, 2, 8, 9 untouched
        assert_constant(P[t], expected[t])
    assert s.annotated_frames() == [2, 5, 8]
    assert s.annotated_frames(1) == [2, 5, 8]

    # the references: this round's interaction feature fused with the previous fused one
    refs = [float(c["reference"][0].mean()) for c in model.propagation.calls]
    assert refs == [1.0] * 9 + [2.0] * 4 + [3.5] * 3 + [5.25] * 4


def test_first_round_reference_when_fusion_is_off(stub_model):
    from napari_ipnet.model.networks import ModelConfig

    model = stub_model()
    model.config = ModelConfig(fuse_references=False)
    s = Session(frames_of(10), model)
    run_round(s, model, 5, 0.9, 0.2, feature=1.0)
    run_round(s, model, 2, 1.0, 0.8, feature=3.0)
    s.interact(8, scribble())  # a round closed without propagating keeps it too
    run_round(s, model, 7, 0.7, 0.4, feature=5.0)
    refs = {float(c["reference"][0].mean()) for c in model.propagation.calls}
    assert refs == {1.0}  # every round propagates from round 1's reference
    assert len(model.propagation.SEFA.calls) == 1  # fused once: round 1 (with nothing)
    # an object whose first round comes later gets its own first reference
    model.propagation.calls.clear()
    run_round(s, model, 4, 0.9, 0.3, feature=9.0, object_id=2)
    assert {float(c["reference"][0].mean()) for c in model.propagation.calls} == {9.0}


def test_propagation_inputs(stub_model):
    model = stub_model()
    s = Session(frames_of(10), model)
    run_round(s, model, 5, 0.9, 0.2, feature=1.0)
    calls = model.propagation.calls
    c = 128  # the ROI centre: well inside the frame
    # frame 6: neighbour 5 (p = 0.9 -> label 1), its own previous mask: none
    assert calls[0]["maps"][0][0, 0, c, c] == 0.0 and calls[0]["maps"][1][0, 0, c, c] == 1.0
    # frame 7: neighbour 6 (p = 0.2 -> background): the neighbour mask is rounded to 0
    assert calls[1]["maps"][1][0, 0, c, c] == 0.0
    # the RGB is in [0, 1]
    rgb = calls[0]["rgb"]
    assert rgb.shape == (1, 3, 256, 256) and 0 <= rgb.min() and rgb.max() <= 1
    model.propagation.calls.clear()
    run_round(s, model, 2, 1.0, 0.8, feature=3.0)
    # frame 3 in round 2: previous-round mask 0.2, neighbour frame 2 (p = 1) -> 1
    first = model.propagation.calls[0]
    assert abs(float(first["maps"][0][0, 0, c, c]) - 0.2) <= TOL
    assert first["maps"][1][0, 0, c, c] == 1.0
    # the interaction saw its previous mask of frame 2 (0.2) and the scribbles
    inter = model.interaction.calls[-1]
    assert abs(float(inter["maps"][0][0, 0, c, c]) - 0.2) <= TOL
    assert inter["maps"][1].max() == 1.0 and inter["maps"][2].max() == 0.0


def test_probability_is_zero_outside_the_roi(stub_model):
    model = stub_model(interaction=1.0, propagation=0.6)
    frames = frames_of(3, 48, 400)
    s = Session(frames, model)
    s.interact(0, scribble(20, 26, 18, 23, 48, 400))
    p0 = s.probability(0, 1)
    # box: cols 18..22 grown to 128, x1.5 -> 192 wide about x = 20: [-5, 116]
    assert p0[:, :116].min() == 1.0
    assert p0[:, 118:].max() == 0.0
    assert s.memory_bytes() <= 48 * 118  # only the crop is stored
    list(s.propagate())
    p1 = s.probability(1, 1)
    # box of frame 1: neighbour mask (cols 0..116) -> 128 -> 192 wide about 58: [-5, 154]
    assert_constant(p1[:, :154], 0.6)
    assert p1[:, 156:].max() == 0.0


# ------------------------------------------------------------------ several objects
def test_soft_aggregate_two_and_three_objects():
    p = np.array([[[0.9]], [[0.2]]], np.float32)  # (K=2, 1, 1)
    out = soft_aggregate(p)
    bg = 0.1 * 0.8
    odds = np.array([bg / (1 - bg), 9.0, 0.25])
    np.testing.assert_allclose(out[:, 0, 0], odds / odds.sum(), rtol=1e-4)
    p3 = np.random.default_rng(0).random((3, 5, 6)).astype(np.float32)
    out3 = soft_aggregate(p3)
    assert out3.shape == (4, 5, 6)
    np.testing.assert_allclose(out3.sum(axis=0), 1.0, rtol=1e-5)
    bg3 = np.prod(1 - p3, axis=0)
    full = np.concatenate([bg3[None], p3])
    np.testing.assert_array_equal(out3.argmax(axis=0), full.argmax(axis=0))
    # saturated probabilities stay finite
    sat = soft_aggregate(np.array([[[1.0, 0.0]], [[1.0, 0.0]]]))
    assert np.isfinite(sat).all()


def _block_stub(rgb, prev, pos, neg):
    return 0.05 + 0.9 * pos  # the positive scribbles, softly


def _copy_neighbour(rgb, prev, neighbour):
    return 0.05 + 0.9 * neighbour


def test_three_objects_labels_and_negatives(stub_model):
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    s = Session(frames_of(4), model)
    blocks = {1: (4, 16, 4, 20), 2: (24, 40, 30, 44), 3: (24, 44, 50, 62)}
    for k, b in blocks.items():
        s.interact(1, scribble(*b), object_id=k)
    # other objects' positives are negatives: object 3 saw objects 1 and 2 as negative
    neg3 = model.interaction.calls[-1]["maps"][2]
    assert neg3.sum() > 0
    lab = s.label_frame(1)
    assert lab.dtype == np.uint8 and lab.shape == (H, W)
    expected = np.zeros((H, W), np.uint8)
    for k, (y0, y1, x0, x1) in blocks.items():
        expected[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = k
        assert np.all(lab[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] == k)
    far = np.ones((H, W), bool)
    for y0, y1, x0, x1 in blocks.values():
        far[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = False
    assert np.all(lab[far] == 0)
    # label_frame is the argmax of the soft aggregation
    stack = np.stack([s.probability(1, k) for k in s.object_ids])
    agg = soft_aggregate(stack)
    np.testing.assert_array_equal(np.asarray([0, 1, 2, 3])[agg.argmax(axis=0)], lab)
    # propagation copies the (binary) neighbour label of each object
    assert list(s.propagate()) == [2, 3, 0]
    labels = s.labels
    assert labels.shape == (4, H, W)
    for t in range(4):
        for k, (y0, y1, x0, x1) in blocks.items():
            assert np.all(labels[t, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] == k), (t, k)
        assert np.all(labels[t][far] == 0)


def test_object_ids_above_255_use_uint16(stub_model):
    model = stub_model(interaction=0.9)
    s = Session(frames_of(2), model)
    s.interact(0, scribble(), object_id=300)
    assert s.label_frame(0).dtype == np.uint16 and s.labels.max() == 300


def test_cancel_mid_propagation_leaves_a_consistent_state(stub_model):
    model = stub_model()
    s = Session(frames_of(8), model)
    for k in (1, 2):
        model.interaction.value = 0.9
        s.interact(3, scribble(), object_id=k)
    model.propagation.value = 0.2
    list(s.propagate())
    before = {k: probs(s, k) for k in (1, 2)}

    model.interaction.value = 0.95
    for k in (1, 2):
        s.interact(6, scribble(), object_id=k)
    model.propagation.value = 0.7
    gen = s.propagate()
    got = [next(gen), next(gen)]
    gen.close()
    assert got == [7, 5]
    assert s.pending_frame is None and s.annotated_frames() == [3, 6]
    for k in (1, 2):
        p = probs(s, k)
        assert_constant(p[7], q(0.7))  # updated, both objects
        assert_constant(p[5], q(2 / 3 * 0.7 + 1 / 3 * before[k][5, 0, 0]))
        assert_constant(p[6], q(0.95))
        for t in (0, 1, 2, 3, 4):  # untouched
            np.testing.assert_array_equal(p[t], before[k][t])
    # a new round works and respects the annotations of the cancelled round
    model.propagation.value = 0.5
    s.interact(0, scribble(), object_id=1)
    assert s.propagation_plan() == [1, 2]
    assert list(s.propagate()) == [1, 2]
    assert s.annotated_frames(1) == [0, 3, 6] and s.annotated_frames(2) == [3, 6]


def test_closing_before_the_first_frame_changes_nothing(stub_model):
    model = stub_model()
    s = Session(frames_of(4), model)
    s.interact(1, scribble())
    gen = s.propagate()
    gen.close()
    assert [t for t in range(4) if s.probability(t, 1).any()] == [1]
    assert list(s.propagate()) == [2, 3, 0]


def test_strokes_accumulate_within_a_round(stub_model):
    model = stub_model()
    s = Session(frames_of(4), model)
    s.interact(1, scribble(0, 4, 0, 4))
    s.interact(1, None, scribble(40, 44, 60, 64))
    first, last = model.interaction.calls[0]["maps"], model.interaction.calls[-1]["maps"]
    # the second call only drew a negative stroke: the first positive stroke is still there
    assert first[2].sum() == 0 and last[2].sum() > 0
    torch.testing.assert_close(last[1], first[1])
    assert s.pending_frame == 1
    list(s.propagate())
    # after the round the strokes are forgotten: a new round starts from scratch
    s.interact(1, None, scribble(40, 44, 60, 64))
    assert model.interaction.calls[-1]["maps"][1].sum() == 0


def test_reset(stub_model):
    model = stub_model()
    s = Session(frames_of(4), model)
    s.interact(1, scribble(), object_id=1)
    s.interact(1, scribble(), object_id=2)
    s.reset(2)
    assert s.object_ids == [1]
    with pytest.raises(KeyError, match="unknown object 2"):
        s.probability(1, 2)
    s.reset()
    assert s.object_ids == [] and s.pending_frame is None and s.labels.max() == 0


def test_interacting_on_another_frame_closes_the_open_round(stub_model):
    model = stub_model()
    s = Session(frames_of(6), model)
    s.interact(1, scribble())
    s.interact(4, scribble())  # round on frame 1 closed without propagation
    assert s.annotated_frames() == [1] and s.pending_frame == 4
    assert list(s.propagate()) == [5, 3, 2]


# ------------------------------------------------------------------ errors
def test_bad_inputs_are_clear_errors(stub_model):
    model = stub_model()
    with pytest.raises(ValueError, match="single 2D image"):
        Session(np.zeros((H, W)), model)
    s = Session(frames_of(3), model)
    with pytest.raises(RuntimeError, match="nothing to propagate"):
        s.propagate()
    with pytest.raises(ValueError, match=r"shape \(10, 10\), expected \(H, W\) = \(48, 64\)"):
        s.interact(0, np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="empty scribbles"):
        s.interact(0, np.zeros((H, W), bool), np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="empty scribbles"):
        s.interact(0, None)
    with pytest.raises(IndexError, match="frame 3 is out of range"):
        s.interact(3, scribble())
    with pytest.raises(ValueError, match="object_id must be an integer from 1 to 65535"):
        s.interact(0, scribble(), object_id=0)
    with pytest.raises(ValueError, match="object_id"):
        s.interact(0, scribble(), object_id=1.5)
    # an id the label array cannot hold is refused at the door, not when labels are read
    with pytest.raises(ValueError, match="from 1 to 65535"):
        s.interact(0, scribble(), object_id=65536)
    with pytest.raises(ValueError, match="from 1 to 65535"):
        s.interact_davis({"scribbles": [[{"path": [[0.5, 0.5], [0.6, 0.5]], "object_id": 70000}], [], []]})
    with pytest.raises(ValueError, match="from 1 to 65535"):
        s.interact_many(0, {-3: scribble()})
    assert s.object_ids == [] and s.pending_frame is None  # nothing half-done
    s.interact(0, scribble())
    with pytest.raises(ValueError, match="annotated on frame 0, not 2"):
        s.propagate(2)
    nan = np.random.default_rng(0).random((3, H, W)).astype(np.float32)
    nan[1, 5, 5] = np.nan
    s2 = Session(nan, model)
    with pytest.raises(ValueError, match="frame 1 contains NaN"):
        s2.interact(1, scribble())


def test_non_finite_network_output_is_an_error(stub_model):
    model = stub_model(interaction=lambda rgb, *m: torch.full((1, 1, 256, 256), float("nan")))
    s = Session(frames_of(2), model)
    with pytest.raises(FloatingPointError, match="interaction network produced NaN"):
        s.interact(0, scribble())


def test_soft_mask_storage():
    p = np.zeros((20, 30), np.float32)
    p[5:8, 10:14] = 0.5
    m = SoftMask.from_crop(2, 3, p)
    assert (m.y0, m.x0, m.data.shape, m.data.dtype) == (7, 13, (3, 4), np.uint8)
    full = m.paste(40, 50)
    assert full[7:10, 13:17].min() == pytest.approx(128 / 255) and full.sum() == pytest.approx(12 * 128 / 255)
    assert SoftMask.from_crop(0, 0, np.zeros((4, 4))) is None


# ------------------------------------------------------------------ laziness, real networks
def test_session_reads_frames_lazily(stub_model, counting_frames):
    data = np.random.default_rng(0).integers(0, 4000, (30, H, W)).astype(np.uint16)
    frames = counting_frames(data)
    s = Session(frames, stub_model())
    assert frames.keys == []
    s.interact(15, scribble())
    assert len(frames.keys) <= 13  # intensity sample + the frame
    list(s.propagate())  # one frame at a time, integer keys only (else AssertionError)
    assert s.labels.shape == (30, H, W)


def test_real_network_session_smoke(lite_model, small_frames):
    s = Session(small_frames[:4], lite_model)
    p = s.interact(1, scribble(16, 28, 14, 24), scribble(0, 4, 0, 64), object_id=1)
    assert p.shape == (H, W) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1 and p.max() > 0
    assert list(s.propagate()) == [2, 3, 0]
    labels = s.labels
    assert labels.shape == (4, H, W) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}
    s.interact(3, scribble(16, 28, 20, 30), object_id=1)
    assert s.propagation_plan() == [2]
    assert list(s.propagate()) == [2]
    assert s.annotated_frames(1) == [1, 3]
    assert 0 < s.memory_bytes() <= 4 * H * W


# ------------------------------------------------------------------ snapshot / restore
def engine_state(s):
    """Everything observable about a session, for equality checks."""
    return {
        "labels": s.labels,
        "probs": {k: probs(s, k) for k in s.object_ids},
        "annotated": {k: s.annotated_frames(k) for k in s.object_ids},
        "pending": s.pending_frame,
        "plan": s.propagation_plan(),
        "fused": {k: s._objects[k].fused_reference for k in s.object_ids},
    }


def assert_same_state(a, b):
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert a["probs"].keys() == b["probs"].keys()
    for k in a["probs"]:
        np.testing.assert_array_equal(a["probs"][k], b["probs"][k])
    assert a["annotated"] == b["annotated"]
    assert a["pending"] == b["pending"] and a["plan"] == b["plan"]
    for k in a["fused"]:
        fa, fb = a["fused"][k], b["fused"][k]
        assert (fa is None) == (fb is None)
        if fa is not None:
            torch.testing.assert_close(fa, fb)


def test_restore_undoes_an_interaction_and_its_round(stub_model):
    model = stub_model()
    s = Session(frames_of(10), model)
    run_round(s, model, 5, 0.9, 0.2, feature=1.0)
    snap = s.snapshot()
    assert snap.pending_frame is None and snap.object_ids == [1]
    before = engine_state(s)

    run_round(s, model, 2, 1.0, 0.8, feature=3.0)  # the round to undo
    assert s.annotated_frames() == [2, 5]
    s.restore(snap)
    assert_same_state(engine_state(s), before)

    # the next round gives what it gives without the undone round
    ref_model = stub_model()
    ref = Session(frames_of(10), ref_model)
    run_round(ref, ref_model, 5, 0.9, 0.2, feature=1.0)
    run_round(s, model, 7, 0.6, 0.4, feature=5.0)
    run_round(ref, ref_model, 7, 0.6, 0.4, feature=5.0)
    assert_same_state(engine_state(s), engine_state(ref))
    # the fused reference passed to the propagation network is the same too
    torch.testing.assert_close(model.propagation.calls[-1]["reference"][0], ref_model.propagation.calls[-1]["reference"][0])


def test_restore_an_open_round_with_several_objects(stub_model):
    model = stub_model()
    s = Session(frames_of(8), model)
    model.interaction.value = 0.9
    s.interact(3, scribble(), object_id=1)
    s.interact(3, scribble(30, 36, 5, 12), object_id=2)
    snap = s.snapshot()
    assert snap.pending_frame == 3
    before = engine_state(s)
    strokes = {k: (dict(s._objects[k].positive), dict(s._objects[k].negative)) for k in (1, 2)}

    # more strokes in the same round, a new object, a round on another frame, propagation
    s.interact(3, None, scribble(0, 4, 0, 4), object_id=1)
    s.interact(3, scribble(40, 44, 40, 44), object_id=3)
    s.interact(6, scribble(), object_id=2)
    list(s.propagate())
    s.reset(1)

    s.restore(snap)
    assert_same_state(engine_state(s), before)
    assert s.object_ids == [1, 2]
    for k in (1, 2):  # the open round's strokes are back
        pos, neg = strokes[k]
        assert s._objects[k].positive.keys() == pos.keys() == {3}
        np.testing.assert_array_equal(s._objects[k].positive[3], pos[3])
        np.testing.assert_array_equal(s._objects[k].negative[3], neg[3])
    # the next stroke on frame 3 accumulates on the restored strokes only
    s.interact(3, None, scribble(10, 12, 50, 60), object_id=1)
    maps = model.interaction.calls[-1]["maps"]
    assert maps[1].sum() > 0  # positive of the restored round
    assert list(s.propagate()) == [4, 5, 6, 7, 2, 1, 0]
    assert s.annotated_frames() == [3]


def test_snapshot_is_immutable_and_cheap(stub_model):
    model = stub_model()
    s = Session(frames_of(6), model)
    run_round(s, model, 2, 0.9, 0.3, feature=1.0)
    snap = s.snapshot()
    labels = s.labels
    # shares the soft masks: no copy of any pixel data
    for t, m in s._objects[1].masks.items():
        assert snap._objects[1].masks[t] is m
    run_round(s, model, 4, 0.5, 0.7, feature=2.0)
    s.reset()
    # restoring twice, or after newer restores, always gives the snapshot's state
    s.restore(snap)
    run_round(s, model, 0, 0.2, 0.6, feature=4.0)
    s.restore(snap)
    np.testing.assert_array_equal(s.labels, labels)
    assert s.annotated_frames() == [2] and s.pending_frame is None
    later = s.snapshot()
    s.restore(snap)
    s.restore(later)
    np.testing.assert_array_equal(s.labels, labels)


def test_restore_rejects_foreign_snapshots(stub_model):
    a = Session(frames_of(4), stub_model())
    b = Session(frames_of(4), stub_model())
    with pytest.raises(ValueError, match="another session"):
        b.restore(a.snapshot())
    with pytest.raises(TypeError, match="SessionSnapshot"):
        b.restore({"labels": None})


def test_a_propagation_started_before_restore_leaves_it_alone(stub_model):
    model = stub_model()
    s = Session(frames_of(6), model)
    s.interact(2, scribble())
    snap = s.snapshot()
    gen = s.propagate()
    assert next(gen) == 3
    s.restore(snap)
    assert list(gen) == []  # stops at once
    assert s.pending_frame == 2 and s.annotated_frames() == []
    assert [t for t in range(6) if s.probability(t, 1).any()] == [2]
    assert list(s.propagate()) == [3, 4, 5, 1, 0]


def test_restore_with_the_real_network_reproduces_the_round(lite_model, small_frames):
    frames = small_frames[:5]
    ref = Session(frames, lite_model)
    ref.interact(1, scribble(16, 28, 14, 24), object_id=1)
    list(ref.propagate())

    s = Session(frames, lite_model)
    s.interact(1, scribble(16, 28, 14, 24), object_id=1)
    snap = s.snapshot()
    s.interact(1, None, scribble(0, 6, 0, 64), object_id=1)  # undone below
    list(s.propagate())
    s.restore(snap)
    assert s.pending_frame == 1 and s.annotated_frames() == []
    list(s.propagate())
    np.testing.assert_array_equal(s.labels, ref.labels)
    for t in range(5):
        np.testing.assert_array_equal(s.probability(t, 1), ref.probability(t, 1))


def _one_round(frames, model, may_end):
    """A session on ``frames`` after one scribble on frame 0 and its propagation."""
    s = Session(frames, model, objects_may_end=may_end)
    s.interact(0, scribble(16, 28, 12, 24))
    list(s.propagate())
    return s, probs(s)


def test_objects_may_end_picks_the_second_propagation_network(lite_model, small_frames):
    import copy
    import dataclasses

    from napari_ipnet.model.networks import build_model

    both = build_model(dataclasses.replace(lite_model.config, ending_network=True))
    both.interaction.load_state_dict(lite_model.interaction.state_dict())
    both.propagation.load_state_dict(lite_model.propagation.state_dict())
    both.propagation_ending = copy.deepcopy(lite_model.propagation)
    with torch.no_grad():
        both.propagation_ending.Decoder.pred2.bias.copy_(torch.tensor([2.0, -2.0]))  # says "background"

    frames = small_frames[:4]
    s_on, on = _one_round(frames, both, True)
    _, off = _one_round(frames, both, False)
    assert s_on.uses_objects_may_end
    np.testing.assert_array_equal(off, _one_round(frames, lite_model, False)[1])  # persisting objects: the first network
    # a model with one propagation network ignores the setting
    s_plain, plain = _one_round(frames, lite_model, True)
    assert not s_plain.uses_objects_may_end
    np.testing.assert_array_equal(plain, off)
    np.testing.assert_array_equal(on[0], off[0])
    assert on[1:].mean() < off[1:].mean() - 0.05, "the ending network ran on the propagated frames"


def test_each_object_has_its_own_roi_and_one_batched_call(stub_model):
    """Many small objects far apart: each crop is sized to its own object, not to the
    spread of every stroke, and the objects of a frame go through one network call."""
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    h, w = 600, 800
    s = Session(frames_of(3, h, w), model)
    centres = [(60 + 120 * (i // 5), 80 + 150 * (i % 5)) for i in range(10)]
    scribbles = {"scribbles": [[], [
        {"path": [[x / w, y / h], [(x + 4) / w, (y + 2) / h]], "object_id": k + 1}
        for k, (y, x) in enumerate(centres)
    ], []]}
    s.batch_size = 4
    s.interact_davis(scribbles)
    assert [c["rgb"].shape[0] for c in model.interaction.calls] == [4, 4, 2]  # 10 objects, 3 calls
    for k, (y, x) in enumerate(centres, start=1):
        p = s.probability(1, k)
        ys, xs = np.nonzero(p)
        # the crop is the 192 px minimum box about the stroke (128 px grown 1.5x), clipped
        assert ys.max() - ys.min() <= 193 and xs.max() - xs.min() <= 193
        assert ys.min() <= y <= ys.max() and xs.min() <= x <= xs.max()
        assert s.label_frame(1)[y, x] == k
    list(s.propagate())
    assert [c["rgb"].shape[0] for c in model.propagation.calls] == [4, 4, 2, 4, 4, 2]
    for k, (y, x) in enumerate(centres, start=1):
        for t in (0, 2):
            ys, xs = np.nonzero(s.probability(t, k))
            assert ys.max() - ys.min() <= 193 and xs.max() - xs.min() <= 193
            assert s.label_frame(t)[y, x] == k  # every object carried, none swallowed


def test_reset_during_propagation_stops_it_cleanly(stub_model):
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    s = Session(frames_of(8), model)
    s.interact_many(3, {1: scribble(), 2: scribble(30, 36, 40, 46)})
    gen = s.propagate()
    assert next(gen) == 4
    s.reset(2)
    assert list(gen) == []  # stops at its next frame, no KeyError
    assert s.object_ids == [1]
    assert 4 in s._objects[1].masks and 5 not in s._objects[1].masks  # finished frames stay
    assert s.pending_frame == 3  # object 1's round is still open: propagate it again
    assert list(s.propagate())[:2] == [4, 5]
    s.interact(0, scribble())
    gen = s.propagate()
    next(gen)
    s.reset()
    assert list(gen) == [] and s.object_ids == [] and s.pending_frame is None


def test_a_round_keeps_its_propagation_network(stub_model):
    """Toggling objects_may_end mid-propagation does not switch networks mid-round."""
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    ending = type(model.propagation)(_copy_neighbour)
    ending.SEFA = model.propagation.SEFA
    model.propagation_for = lambda may_end: ending if may_end else model.propagation
    s = Session(frames_of(6), model)
    s.interact(2, scribble())
    gen = s.propagate()
    next(gen)
    s.objects_may_end = True
    list(gen)
    assert len(model.propagation.calls) == 5 and ending.calls == []
    s.interact(0, scribble())
    list(s.propagate())  # the next round takes the new setting
    assert len(ending.calls) == 1


def test_scribble_maps_must_be_masks_and_new_objects_start_positive(stub_model):
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    s = Session(frames_of(3), model)
    with pytest.raises(ValueError, match="only 0 and 1"):
        s.interact(0, np.full((H, W), 0.3))
    with pytest.raises(ValueError, match="object 2 is new: start it with a positive stroke"):
        s.interact(0, None, scribble(), object_id=2)
    assert s.object_ids == [] and s.pending_frame is None
    with pytest.raises(ValueError, match="background strokes alone, and no object yet"):
        s.interact_many(0, {}, scribble())
    assert s.pending_frame is None
    s.interact(0, scribble().astype(np.float32))  # a float 0/1 mask is fine
    s.interact(0, None, scribble(30, 34, 40, 44), object_id=1)  # negatives correct an existing object
    assert s.object_ids == [1]


def test_to_device_moves_the_references(stub_model):
    model = stub_model(interaction=_block_stub, propagation=_copy_neighbour)
    s = Session(frames_of(4), model)
    s.interact(1, scribble())
    list(s.propagate())
    s.interact(2, scribble())
    s.to_device("meta")  # a device every torch build has; the stored tensors follow
    st = s._objects[1]
    assert st.reference.device.type == "meta" and st.fused_reference.device.type == "meta"
