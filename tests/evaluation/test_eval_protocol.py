"""The protocol end to end on synthetic DAVIS folders with a stub session of known
accuracy, checked against values computed independently here; and the time-curve
summaries on hand-made numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import ShiftStub, rect, ref_f, shift_right, write_davis

from napari_ipnet.evaluation.datasets import iter_davis, load_davis_sequence, read_annotation
from napari_ipnet.evaluation.protocol import (
    EvalSequence,
    area_over_rounds,
    evaluate_sequence,
    format_table,
    run_protocol,
    save_summary,
    time_curve,
)
from napari_ipnet.scribbles import davis_to_maps

H, W = 120, 200  # tolerance ceil(0.008 * 233.2) = 2 px


# ------------------------------------------------------------------ time curves
def test_time_curve_hand_values():
    c = time_curve([10, 10], [0.5, 0.7])
    assert c["curve"]["time"] == [0, 10, 20, 20]
    assert c["auc"] == pytest.approx((0.5 * 10 / 2 + 0.6 * 10) / 20)
    assert c["at_threshold"] == pytest.approx(0.7)  # held after the last round

    c = time_curve([20, 30, 40], [0.4, 0.6, 0.8])
    assert c["timeout"] == 120  # 3 rounds x the longest
    assert c["at_threshold"] == pytest.approx(0.6 + 0.2 * 10 / 40)
    assert c["auc"] == pytest.approx((4 + 15 + 28 + 24) / 120)

    c = time_curve([20, 30, 40], [0.4, 0.6, 0.8], timeout=70)  # cut at the time-out
    assert c["curve"]["time"] == [0, 20, 50, 70]
    assert c["curve"]["value"][-1] == pytest.approx(0.7)
    assert c["auc"] == pytest.approx((4 + 15 + 13) / 70)
    assert c["at_threshold"] == pytest.approx(0.65)

    c = time_curve([20, 30], [0.4, 0.6], timeout=200, threshold=10)
    assert c["at_threshold"] == pytest.approx(0.2)  # interpolated from (0, 0)


def test_area_over_rounds():
    assert area_over_rounds([0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert area_over_rounds([0.4, 0.8]) == pytest.approx(0.6)
    assert area_over_rounds([0.3]) == pytest.approx(0.3)


# ------------------------------------------------------------------ synthetic data
WIDTHS_A = [50, 50, 70, 50, 50]  # frame 2 holds the largest object
SHIFTS_A = [3, 6, 0, 4, 1]
SHIFTS_B = [5, 0, 3, 0]


def _seq_a():
    return np.stack([rect((H, W), 30, 80, 40, 40 + w) for w in WIDTHS_A])


def _seq_b():
    gt = np.zeros((4, H, W), np.uint8)
    gt[:, 20:60, 20:70] = 1
    gt[:, 70:110, 100:160] = 2
    gt[:, 0:10, 150:190] = 255  # void
    return gt


def _human_scribble_b():
    def norm(points):
        return [[x / (W - 1), y / (H - 1)] for x, y in points]

    strokes = [
        {"path": norm([(30, 40), (60, 40)]), "object_id": 1, "start_time": 1, "end_time": 2},
        {"path": norm([(110, 90), (150, 90)]), "object_id": 2, "start_time": 3, "end_time": 4},
        {"path": norm([(10, 100), (80, 100)]), "object_id": 0, "start_time": 5, "end_time": 6},
    ]
    return {"scribbles": [[], strokes, [], []], "sequence": "b"}


@pytest.fixture
def davis_root(tmp_path):
    write_davis(tmp_path, "a", _seq_a())
    write_davis(tmp_path, "b", _seq_b(), scribble=_human_scribble_b(), palette=True)
    return tmp_path


def _expected_rounds(gt, shifts, frames_chosen, objects):
    """J and F per round, computed independently (closed form J, reference F)."""
    T = len(gt)
    J_rounds, F_rounds = [], []
    for r in range(1, len(frames_chosen) + 1):
        annotated = set(frames_chosen[:r])
        Js, Fs = [], []
        for k in objects:
            jt, ft = [], []
            for t in range(T):
                g = gt[t] == k
                s = 0 if t in annotated else shifts[t]
                w = int(g.any(axis=0).sum())
                jt.append((w - s) / (w + s))
                ft.append(ref_f(g, shift_right(g, s)))
            Js.append(np.mean(jt))
            Fs.append(np.mean(ft))
        J_rounds.append(Js)
        F_rounds.append(Fs)
    return np.array(J_rounds), np.array(F_rounds)  # (R, K)


def _independent_time_summary(times, values, timeout):
    t = np.concatenate([[0.0], np.cumsum(times), [timeout]])
    v = np.concatenate([[0.0], values, [values[-1]]])
    auc = sum((t[i + 1] - t[i]) * (v[i + 1] + v[i]) / 2 for i in range(len(t) - 1)) / timeout
    # J@60 by hand: find the segment holding 60 s
    if 60 >= t[-1]:
        at = v[-1]
    else:
        i = int(np.searchsorted(t, 60, side="right")) - 1
        at = v[i] + (v[i + 1] - v[i]) * (60 - t[i]) / (t[i + 1] - t[i])
    return auc, at


def test_protocol_end_to_end_with_stub(davis_root):
    stubs = {}

    def factory(frames):
        name = "a" if frames.shape[0] == 5 else "b"
        gt = _seq_a() if name == "a" else _seq_b()
        stubs[name] = ShiftStub(gt, SHIFTS_A if name == "a" else SHIFTS_B, delay=0.002)
        return stubs[name]

    summary = run_protocol(iter_davis(davis_root), factory, rounds=4, progress=False)
    seqs = summary["sequences"]
    assert list(seqs) == ["a", "b"]

    # ---- sequence a: robot only
    a = seqs["a"]
    frames_a = [rec["frame"] for rec in a["rounds"]]
    assert frames_a == [2, 1, 3, 0]  # largest object first, then the worst unannotated frames
    assert [rec["source"] for rec in a["rounds"]] == ["robot"] * 4
    assert [f for f, _ in stubs["a"].calls] == frames_a
    eJ, eF = _expected_rounds(_seq_a(), SHIFTS_A, frames_a, [1])
    assert a["J"] == pytest.approx(eJ.mean(axis=1).tolist(), abs=1e-12)
    assert a["F"] == pytest.approx(eF.mean(axis=1).tolist(), abs=1e-12)
    assert a["JF"] == pytest.approx(((eJ + eF) / 2).mean(axis=1).tolist(), abs=1e-12)
    # what the robot drew: round 1 (empty prediction) only positives on the object;
    # round 2 on frame 1 (prediction moved right by 6): positives in the missed strip on
    # the left, background in the false-positive strip on the right
    gt_a = _seq_a()
    _, maps1 = stubs["a"].calls[0]
    assert sorted(maps1) == [1] and (maps1[1] & (gt_a[2] == 1)).sum() / maps1[1].sum() > 0.97
    _, maps2 = stubs["a"].calls[1]
    assert sorted(maps2) == [0, 1]
    assert np.flatnonzero(maps2[1].any(axis=0)).max() <= 40 + 6  # missed strip: cols 40..45
    assert np.flatnonzero(maps2[0].any(axis=0)).min() >= 90 - 1  # false positive: cols 90..95
    # timing: the stub sleeps at the interaction and at each of the 4 propagated frames
    assert all(t >= 5 * 0.002 for t in a["time_s"])
    auc, at60 = _independent_time_summary(a["time_s"], a["J"], 4 * max(a["time_s"]))
    assert a["auc_time_J"] == pytest.approx(auc)
    assert a["J@60"] == pytest.approx(at60)
    assert a["auc_rounds_J"] == pytest.approx(np.trapezoid(a["J"], dx=1) / 3)

    # ---- sequence b: human first scribble, two objects, void, an idle last round
    b = seqs["b"]
    assert b["objects"] == [1, 2]
    assert [rec["source"] for rec in b["rounds"]] == ["human", "robot", "robot", "none"]
    frames_b = [rec["frame"] for rec in b["rounds"]]
    assert frames_b[:3] == [1, 0, 2]
    assert len(stubs["b"].calls) == 3  # no interaction when there is nothing to correct
    human_frame, human_maps = davis_to_maps(_human_scribble_b(), H, W)
    got_frame, got_maps = stubs["b"].calls[0]
    assert got_frame == human_frame == 1
    assert sorted(got_maps) == [0, 1, 2]
    assert all(np.array_equal(got_maps[k], human_maps[k]) for k in human_maps)
    assert b["rounds"][3]["time_s"] == 0.0 and b["rounds"][3]["strokes"] == 0
    eJb, eFb = _expected_rounds(_seq_b(), SHIFTS_B, [1, 0, 2, 3], [1, 2])
    assert b["J"] == pytest.approx(eJb.mean(axis=1).tolist(), abs=1e-12)
    assert b["F"] == pytest.approx(eFb.mean(axis=1).tolist(), abs=1e-12)
    assert b["rounds"][1]["J_objects"]["2"] == pytest.approx(eJb[1, 1])
    assert b["J"][-1] == 1.0 and b["J"][-2] == 1.0

    # ---- overall: mean over the 3 objects, time = mean over the 2 sequences
    o = summary["overall"]
    all_J = np.concatenate([eJ, eJb], axis=1)  # (R, 3 objects)
    assert o["J"] == pytest.approx(all_J.mean(axis=1).tolist(), abs=1e-12)
    assert o["n_objects"] == 3 and o["n_units"] == 2
    mean_t = (np.array(a["time_s"]) + np.array(b["time_s"])) / 2
    assert o["time_s"] == pytest.approx(mean_t.tolist())
    auc, at60 = _independent_time_summary(mean_t, o["J"], 4 * max(a["time_s"] + b["time_s"]))
    assert o["auc_time_J"] == pytest.approx(auc)
    assert o["J@60"] == pytest.approx(at60)

    text = format_table(summary)
    assert "overall" in text and "a " in text
    out = save_summary(summary, davis_root / "out" / "summary.json")
    assert json.loads(out.read_text())["overall"]["J"] == pytest.approx(o["J"])


def test_max_time_sets_the_timeout(davis_root):
    seq = load_davis_sequence(davis_root, "a")
    res = evaluate_sequence(seq, lambda f: ShiftStub(_seq_a(), SHIFTS_A), rounds=2, max_time=30.0,
                            progress=False)
    assert res["timeout_s"] == 30.0  # 30 s per object x 1 object
    assert res["curve"]["time"][-1] == 30.0
    assert res["J@60"] == pytest.approx(res["J"][-1])


def test_robot_round_one_without_human_scribble(davis_root):
    seq = load_davis_sequence(davis_root, "b", scribble_index=None)
    assert seq.scribble is None
    stub = ShiftStub(_seq_b(), SHIFTS_B)
    res = evaluate_sequence(seq, lambda f: stub, rounds=1, progress=False)
    # both objects are equally large on every frame: the first frame wins the tie
    assert res["rounds"][0]["frame"] == 0 and res["rounds"][0]["source"] == "robot"
    _, maps = stub.calls[0]
    assert sorted(maps) == [1, 2]


def test_loading(davis_root):
    seq = load_davis_sequence(davis_root, "b")
    assert seq.frames.shape == (4, H, W, 3) and seq.frames.dtype == np.uint8
    assert seq.gt.shape == (4, H, W)
    assert seq.objects == [1, 2]
    assert np.array_equal(seq.gt, _seq_b())
    assert seq.scribble == _human_scribble_b()
    a = load_davis_sequence(davis_root, "a")
    assert a.objects == [1] and np.array_equal(a.gt, _seq_a())
    assert a.scribble is None
    with pytest.raises(FileNotFoundError, match="not found"):
        list(iter_davis(davis_root, ["zzz"]))


def test_annotation_formats(tmp_path):
    from PIL import Image

    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:8] = 255
    Image.fromarray(m).save(tmp_path / "l.png")  # 0/255 grey: one object
    assert np.array_equal(read_annotation(tmp_path / "l.png"), (m > 0).astype(np.uint8))
    m2 = m.copy()
    m2[6:9, 1:4] = 7
    Image.fromarray(m2).save(tmp_path / "ids.png")  # grey levels as ids
    assert sorted(np.unique(read_annotation(tmp_path / "ids.png")).tolist()) == [0, 7, 255]
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="colour"):
        read_annotation(tmp_path / "rgb.png")


def test_bad_inputs():
    gt = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="no object"):
        EvalSequence("x", np.zeros((3, 8, 8)), gt)
    gt[:, 2:4, 2:4] = 1
    with pytest.raises(ValueError, match="differ"):
        EvalSequence("x", np.zeros((2, 8, 8)), gt)
    with pytest.raises(ValueError, match="rounds"):
        evaluate_sequence(EvalSequence("x", np.zeros((3, 8, 8)), gt), lambda f: None, rounds=0)


# ------------------------------------------------------------------ corrections and oracle
def _two_blocks(n=6, h=60, w=80):
    gt = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        gt[t, 10:30, 8 + 2 * t : 28 + 2 * t] = 1
        gt[t, 35:55, 50:70] = 2
    frames = np.where(gt[..., None] > 0, 220, 30).astype(np.uint8).repeat(3, -1)
    return frames, gt


def _stub_factory(stub_model):
    """Sessions on stub networks (tests/conftest.py): the interaction returns the
    positive strokes themselves, the propagation copies the neighbour."""
    from napari_ipnet.session import Session

    def factory(frames):
        model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos,
                           propagation=lambda rgb, prev, nb: 0.05 + 0.9 * nb)
        return Session(frames, model, refine=False)  # the stubs' exact outputs

    return factory


def test_corrected_frame_before_and_after_the_interaction(stub_model):
    frames, gt = _two_blocks()
    seq = EvalSequence("blocks", frames, gt)
    res = evaluate_sequence(seq, _stub_factory(stub_model), rounds=3, progress=False, boundary=False)
    r1, r2 = res["rounds"][:2]
    assert r1["frame_J_before"] == 0.0  # nothing segmented before round 1
    # the stub's interaction returns the robot's positive strokes: thin skeleton lines
    assert 0.0 < r1["frame_J_after"] < 0.5
    # before round 2: the frame as round 1 left it (propagated strokes), as scored then
    assert r2["frame_J_before"] > 0.0
    assert r2["frame_J_after"] >= r2["frame_J_before"]  # strokes only add to the stroked objects
    assert res["frame_J_after"][0] == r1["frame_J_after"]
    later = [r["frame_J_after"] for r in res["rounds"][1:]]
    assert res["corrected_frame_J"] == pytest.approx(np.mean(later))
    assert "corrected frame J, before -> after" in format_table(
        {"sequences": {"blocks": res}, "overall": {**res, "n_objects": 2}}
    )


def _j(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_oracle_measures_the_interaction_and_propagation_ceilings(stub_model):
    from napari_ipnet.evaluation.protocol import evaluate_oracle, oracle_scribbles, run_oracle

    frames, gt = _two_blocks()
    pos, neg = oracle_scribbles(gt[2], [1, 2], margin=2)
    assert pos[1].sum() == 16 * 16 and pos[2].sum() == 16 * 16  # 20 px squares eroded by 2
    # object 2 spans rows 35..54, cols 50..69: negative from 3 px beyond it, not within 2 px
    assert not neg[gt[2] > 0].any()
    assert not neg[45, 70] and not neg[45, 71] and neg[45, 72]
    assert not neg[33, 60] and neg[32, 60]
    seq = EvalSequence("blocks", frames, gt)
    res = evaluate_oracle(seq, _stub_factory(stub_model), margin=0)
    # the largest total foreground is on every frame alike: the first frame
    assert res["frame"] == 0
    assert res["J_scribble"] == 1.0 and res["J_frame"] == pytest.approx(1.0)
    # the copying propagation carries frame 0 unchanged: object 1 drifts 2 px a frame
    expected_1 = np.mean([_j(gt[t] == 1, gt[0] == 1) for t in range(1, 6)])
    assert res["J_propagated_objects"]["1"] == pytest.approx(expected_1)
    assert res["J_propagated_objects"]["2"] == pytest.approx(1.0)
    assert res["J_propagated"] == pytest.approx((expected_1 + 1.0) / 2)
    summary = run_oracle([seq], _stub_factory(stub_model), margin=0, progress=False)
    assert summary["overall"]["J_propagated"] == pytest.approx(res["J_propagated"])
    assert summary["overall"]["scribble_beats_frame"] == []
