"""Property-based checks of the Session's input checking (hypothesis): any input is
either taken, leaving a consistent state, or refused with a clear error that leaves
the session as it was."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from napari_ipnet.session import Session  # noqa: E402

H, W, T = 24, 32, 3

maps = st.one_of(
    st.none(),
    st.integers(0, 3).map(lambda v: np.full((H, W), v, np.uint8)),  # 0/1 fine, 2-3 refused
    st.sampled_from([0.0, 0.3, 1.0]).map(lambda v: np.full((H, W), v, np.float32)),  # 0.3 refused
    st.tuples(st.integers(0, H - 1), st.integers(0, W - 1)).map(
        lambda yx: np.pad(np.ones((1, 1), bool), ((yx[0], H - 1 - yx[0]), (yx[1], W - 1 - yx[1])))
    ),
    st.just(np.ones((H + 1, W), bool)),  # wrong shape
)
object_ids = st.one_of(
    st.integers(-5, 70000), st.just(True), st.just(1.5), st.just("2"), st.sampled_from([np.int64(3), np.uint16(7)])
)
frames_idx = st.one_of(st.integers(-4, 5), st.just(1.0))


def _state(s: Session):
    return (s.object_ids, s.pending_frame, {k: sorted(s._objects[k].masks) for k in s.object_ids})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(frames_idx, maps, maps, object_ids), min_size=1, max_size=5))
def test_interact_takes_or_refuses_cleanly(stub_model, calls):
    model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos,
                       propagation=lambda rgb, prev, nb: 0.05 + 0.9 * nb)
    s = Session(np.random.default_rng(0).integers(0, 255, (T, H, W), dtype=np.uint8), model)
    for frame, pos, neg, k in calls:
        before = _state(s)
        try:
            p = s.interact(frame, pos, neg, object_id=k)
        except (ValueError, IndexError, TypeError) as err:
            assert str(err)  # a message, not a bare exception
            assert _state(s) == before  # nothing half-done
            continue
        assert p.shape == (H, W) and p.dtype == np.float32 and 0.0 <= p.min() and p.max() <= 1.0
        assert 1 <= int(k) <= Session.MAX_OBJECT_ID and int(k) in s.object_ids
        assert s.pending_frame == int(frame) % T or s.pending_frame == int(frame)
    if s.pending_frame is not None:
        list(s.propagate())
    labels = s.labels
    assert labels.shape == (T, H, W)
    assert set(np.unique(labels)) <= {0, *s.object_ids}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    strokes=st.lists(
        st.fixed_dictionaries({
            "path": st.lists(st.tuples(st.one_of(st.floats(-0.5, 1.5), st.just(float("nan"))), st.floats(-0.5, 1.5)),
                             min_size=0, max_size=4).map(lambda p: [list(q) for q in p]),
            "object_id": st.one_of(st.integers(-2, 70000), st.just("x")),
        }),
        min_size=0, max_size=4,
    ),
    frame=st.integers(0, T - 1),
)
def test_interact_davis_takes_or_refuses_cleanly(stub_model, strokes, frame):
    model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos)
    s = Session(np.zeros((T, H, W, 3), np.uint8), model)
    scribbles = {"scribbles": [strokes if t == frame else [] for t in range(T)]}
    try:
        got = s.interact_davis(scribbles)
    except (ValueError, IndexError, TypeError) as err:
        assert str(err)
        assert s.object_ids == [] and s.pending_frame is None
        return
    assert got == frame and s.pending_frame == frame
    assert s.object_ids and all(1 <= k <= Session.MAX_OBJECT_ID for k in s.object_ids)
