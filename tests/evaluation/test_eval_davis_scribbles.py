"""Real human scribbles of the DAVIS interactive benchmark (../shared, skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import ShiftStub

from napari_ipnet.evaluation.datasets import load_davis_sequence
from napari_ipnet.evaluation.protocol import evaluate_sequence
from napari_ipnet.scribbles import davis_to_maps

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
ROOT = SHARED / "data" / "davis-scribbles"

pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="../shared/data/davis-scribbles is not available")


@pytest.mark.parametrize(
    "name, index, objects, frame",
    [("bear", 1, [1], 0), ("bear", 2, [1], None), ("tennis", 1, [1, 2], 1)],
)
def test_human_scribbles_land_on_their_labels(name, index, objects, frame):
    seq = load_davis_sequence(ROOT, name, scribble_index=index)
    assert seq.objects == objects  # 255 (void) in tennis is not an object
    assert seq.scribble is not None and seq.gt.shape == seq.frames.shape[:3] == (2, 480, 854)
    f, maps = davis_to_maps(seq.scribble, 480, 854)
    if frame is not None:
        assert f == frame
    gt = seq.gt[f]
    assert set(maps) >= set(objects)
    for k, m in maps.items():
        assert m.sum() > 50
        # people scribble over the edges (bear 001: 88% of the brushed pixels on the
        # bear), yet most of each label's strokes lie on that label
        assert (m & (gt == k)).sum() / m.sum() > 0.8, f"strokes of {k} are not on label {k}"


def test_protocol_round_one_uses_the_human_scribble():
    seq = load_davis_sequence(ROOT, "tennis")
    stub = ShiftStub(seq.gt, [6, 6])
    res = evaluate_sequence(seq, lambda frames: stub, rounds=2, progress=False)
    assert [r["source"] for r in res["rounds"]] == ["human", "robot"]
    assert [r["frame"] for r in res["rounds"]] == [1, 0]
    assert res["J"][1] == 1.0  # both frames exact after the second round
    f, maps = stub.calls[0]
    assert f == 1 and sorted(maps) == [1, 2]  # this file has no background stroke


def test_real_session_takes_the_human_scribble(lite_model):
    from napari_ipnet.session import Session

    seq = load_davis_sequence(ROOT, "tennis")
    session = Session(seq.frames, lite_model)
    assert session.interact_davis(seq.scribble) == 1
    assert session.object_ids == [1, 2]
    assert list(session.propagate()) == [0]
    assert session.labels.shape == (2, 480, 854)
