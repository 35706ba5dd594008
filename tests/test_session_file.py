"""Session files: save, load by replay (bit-identical), mid-round, errors, autosave, CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from napari_ipnet import session_file as sf
from napari_ipnet.session import Session


@pytest.fixture(scope="module")
def real_model():
    import torch

    from napari_ipnet.weights import load_model

    torch.set_num_threads(1)
    return load_model("default", device="cpu")


@pytest.fixture(scope="module")
def cells():
    from napari_ipnet._sample_data import make_cell_timelapse

    frames, gt = make_cell_timelapse(n_frames=8, height=96, width=128, seed=1)
    ids = [int(k) for k in np.unique(gt[3]) if k]
    assert len(ids) >= 3
    return frames, gt, ids


def _stroke(mask: np.ndarray) -> np.ndarray:
    """A small stroke inside ``mask`` (a few pixels around its centre)."""
    out = np.zeros_like(mask, bool)
    ys, xs = np.nonzero(mask)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    out[cy - 1 : cy + 2, cx - 1 : cx + 2] = True
    return out & mask


def _work(session: Session, gt, ids) -> None:
    """Several rounds with every kind of call; leaves a round open on frame 5."""
    a, b, c = ids[:3]
    session.interact(3, _stroke(gt[3] == a), object_id=a)
    session.interact_many(3, {b: _stroke(gt[3] == b), c: _stroke(gt[3] == c)}, None)
    assert list(session.propagate()) == [4, 5, 6, 7, 2, 1, 0]
    session.interact(6, None, _stroke(gt[6] == 0), object_id=a)  # a negative correction
    gen = session.propagate()
    assert [next(gen), next(gen)] == [7, 5]
    gen.close()  # stopped by the user after two frames: the round is closed on them
    session.reset(c)
    session.interact(5, _stroke(gt[5] == b), object_id=b)  # mid-round: not propagated


def test_replay_is_bit_identical_and_mid_round_pending(tmp_path, real_model, cells):
    frames, gt, ids = cells
    s = Session(frames, real_model)
    _work(s, gt, ids)
    labels = s.labels
    assert s.pending_frame == 5 and set(np.unique(labels)) >= {0, ids[0], ids[1]}
    path = s.save(tmp_path / "job.ipnet", names={ids[0]: "mother"})
    assert [e["call"] for e in s._log] == [
        "interact", "interact_many", "propagate", "interact", "propagate", "reset", "interact"
    ]
    first = s._log[0]["positive"]  # kept as the crop of the stroke, not a full-frame map
    assert isinstance(first, sf.StrokeMap) and first.crop.size <= 9
    np.testing.assert_array_equal(np.asarray(first), _stroke(gt[3] == ids[0]))
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("session.json"))
    assert header["version"] == sf.FORMAT_VERSION and header["model"]["checksum"].startswith("sha256:")
    assert header["log"][4]["frames"] == [7, 5] and header["log"][4]["ended"] == "closed"

    loaded = Session.load(path, frames, real_model)
    rep = loaded.replay_report
    assert rep.labels_match and rep.same_model and rep.differing_pixels == 0
    np.testing.assert_array_equal(loaded.labels, labels)
    assert loaded.pending_frame == 5 and loaded.object_ids == s.object_ids
    assert rep.names == {ids[0]: "mother"}
    np.testing.assert_array_equal(loaded.probability(5, ids[1]), s.probability(5, ids[1]))
    # the engine state (references, open round) came back, not just the labels:
    # finishing the pending round gives the same result in both sessions
    def probs(session):
        return np.stack([session.probability(t, k) for k in session.object_ids for t in range(8)])

    before = probs(s)
    assert list(loaded.propagate()) == list(s.propagate())
    np.testing.assert_array_equal(probs(loaded), probs(s))
    np.testing.assert_array_equal(loaded.labels, s.labels)
    assert not np.array_equal(probs(s), before)  # the round did change something
    # re-saving a loaded session keeps its names and reloads again
    again = Session.load(loaded.save(tmp_path / "again.ipnet"), frames, real_model)
    assert again.replay_report.names == {ids[0]: "mother"} and again.replay_report.labels_match


def test_other_model_reruns_the_strokes(tmp_path, real_model, lite_model, cells):
    frames, gt, ids = cells
    s = Session(frames, real_model)
    s.interact(3, _stroke(gt[3] == ids[0]), object_id=ids[0])
    list(s.propagate())
    path = s.save(tmp_path / "job.ipnet")
    with pytest.warns(sf.SessionMismatchWarning, match="differ from the saved ones in [0-9]+ pixels"):
        other = Session.load(path, frames, lite_model)
    rep = other.replay_report
    assert not rep.same_model and not rep.labels_match and rep.differing_pixels > 0
    np.testing.assert_array_equal(rep.saved_labels, s.labels)
    assert other.annotated_frames() == [3]  # the user's strokes, re-run through the other model
    with pytest.raises(sf.SessionMismatchError, match="instead of the recorded default"):
        Session.load(path, frames, lite_model, on_mismatch="error")


def test_log_follows_restore_and_superseded_propagation(tmp_path, stub_model, small_frames):
    model = stub_model(interaction=0.9, propagation=0.8)
    s = Session(small_frames, model)
    pos = np.zeros(small_frames.shape[1:3], bool)
    pos[20, 15] = True
    s.interact(2, pos, object_id=1)
    list(s.propagate())
    before = s.snapshot()
    s.interact(5, pos, object_id=2)
    assert len(s._log) == 3
    s.restore(before)
    assert [e["call"] for e in s._log] == ["interact", "propagate"]
    # a propagation a reset takes over leaves its round open, in the replay too
    s.interact(4, pos, object_id=2)
    gen = s.propagate()
    next(gen)
    s.reset(1)
    gen.close()
    assert s._log[-2]["ended"] == "superseded" and s.pending_frame == 4
    loaded = Session.load(s.save(tmp_path / "s.ipnet"), small_frames, model)
    assert loaded.pending_frame == 4 and loaded.object_ids == [2]
    np.testing.assert_array_equal(loaded.labels, s.labels)


def test_reopens_the_recorded_image_lazily(tmp_path, stub_model, small_frames):
    import tifffile

    model = stub_model(interaction=0.9, propagation=0.8)
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, np.moveaxis(small_frames, 0, 1))  # (H, T, W, C): axis 1 is time
    s = Session(small_frames, model)
    pos = np.zeros(small_frames.shape[1:3], bool)
    pos[20, 15] = True
    s.interact(2, pos)
    list(s.propagate())
    path = s.save(tmp_path / "s.ipnet", source=sf.image_source(tif, axis=1))
    loaded = Session.load(path, None, model)
    assert isinstance(loaded.frames._frames, np.memmap) and loaded.frames.shape == small_frames.shape  # lazy
    np.testing.assert_array_equal(loaded.frames.raw(3), small_frames[3])
    np.testing.assert_array_equal(loaded.labels, s.labels)
    # in memory: the frames must be given; other frames: refused
    mem = s.save(tmp_path / "m.ipnet")
    with pytest.raises(sf.SessionFileError, match="pass the frames"):
        Session.load(mem, None, model)
    with pytest.raises(sf.SessionFileError, match="shaped"):
        Session.load(mem, small_frames[:5], model)


def _saved(tmp_path, stub_model, small_frames, name="s.ipnet"):
    model = stub_model(interaction=0.9, propagation=0.8)
    s = Session(small_frames, model)
    pos = np.zeros(small_frames.shape[1:3], bool)
    pos[20, 15] = True
    s.interact(2, pos)
    return s, model, s.save(tmp_path / name)


def _with_header(path, out, edit):
    """A copy of the session file ``path`` at ``out`` whose header went through ``edit``
    (a function that changes the decoded session.json in place)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "session.json":
                header = json.loads(data)
                edit(header)
                data = json.dumps(header).encode()
            dst.writestr(item, data)
    return out


def test_damaged_files_are_refused_clearly(tmp_path, stub_model, small_frames):
    _, model, path = _saved(tmp_path, stub_model, small_frames)
    data = path.read_bytes()
    half = tmp_path / "half.ipnet"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(sf.SessionFileError, match="damaged or was not completely written"):
        Session.load(half, small_frames, model)
    flipped = bytearray(data)
    flipped[60] ^= 0xFF  # inside the first member's compressed data
    bad = tmp_path / "bad.ipnet"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(sf.SessionFileError):
        sf.read_session(bad)
    other = tmp_path / "other.ipnet"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("x.txt", "hello")
    with pytest.raises(sf.SessionFileError, match="not a napari-ipnet session"):
        sf.read_session(other)
    with pytest.raises(FileNotFoundError):
        sf.read_session(tmp_path / "missing.ipnet")


def test_newer_version_is_refused(tmp_path, stub_model, small_frames):
    _, model, path = _saved(tmp_path, stub_model, small_frames)
    newer = _with_header(path, tmp_path / "newer.ipnet", lambda h: h.update(version=sf.FORMAT_VERSION + 1))
    with pytest.raises(sf.SessionVersionError, match=f"newer napari-ipnet.*version {sf.FORMAT_VERSION + 1}"):
        Session.load(newer, small_frames, model)
    assert sf.read_session(path).version == sf.FORMAT_VERSION  # the original reads


def test_interrupted_autosave_leaves_the_previous_one(tmp_path, stub_model, small_frames, monkeypatch):
    s, model, _ = _saved(tmp_path, stub_model, small_frames)
    now = [0.0]
    saver = sf.Autosaver(s, tmp_path / "auto.ipnet", min_interval=5.0, clock=lambda: now[0])
    assert saver.notify() and saver.saves == 1
    good = (tmp_path / "auto.ipnet").read_bytes()
    pos = np.zeros(small_frames.shape[1:3], bool)
    pos[30, 40] = True
    s.interact(2, pos, object_id=2)
    assert not saver.notify() and saver.dirty  # throttled
    now[0] = 6.0
    calls = []

    def failing(a):  # the disk fills up in the middle of the write
        calls.append(1)
        if len(calls) > 1:
            raise OSError("No space left on device")
        return real(a)

    real = sf._array_bytes
    monkeypatch.setattr(sf, "_array_bytes", failing)
    assert not saver.notify()
    assert isinstance(saver.last_error, OSError) and saver.dirty and len(calls) == 2
    assert (tmp_path / "auto.ipnet").read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    assert sf.read_session(tmp_path / "auto.ipnet").header["objects"].keys() == {"1"}
    monkeypatch.setattr(sf, "_array_bytes", real)
    assert saver.flush() and not saver.dirty and saver.saves == 2
    loaded = Session.load(tmp_path / "auto.ipnet", small_frames, model)
    assert loaded.object_ids == [1, 2] and loaded.pending_frame == 2


def test_cli_propagate_finishes_the_round(tmp_path, real_model, cells):
    import tifffile

    from napari_ipnet import cli
    from napari_ipnet.labels_zarr import read_labels_zarr

    frames, gt, ids = cells
    tif = tmp_path / "cells.tif"
    tifffile.imwrite(tif, frames)
    s = Session(frames, real_model)
    s.interact(3, _stroke(gt[3] == ids[0]), object_id=ids[0])  # saved before propagating
    path = s.save(tmp_path / "job.ipnet", source=sf.image_source(tif))
    list(s.propagate())
    expected = s.labels
    assert (expected[0] == ids[0]).any() and (expected[7] == ids[0]).any()
    out = tmp_path / "out.tif"
    assert cli.main(["propagate", str(path), "--out", str(out), "--device", "cpu", "--save",
                     str(tmp_path / "done.ipnet")]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    assert cli.main(["propagate", str(path), "--out", str(tmp_path / "out.zarr"), "--device", "cpu",
                     "--no-finish"]) == 0
    only = read_labels_zarr(tmp_path / "out.zarr")
    assert (only[3] == ids[0]).any() and not only[[0, 1, 2, 4, 5, 6, 7]].any()
    done = Session.load(tmp_path / "done.ipnet", None, real_model)
    assert done.pending_frame is None and done.replay_report.labels_match
    np.testing.assert_array_equal(done.labels, expected)
    assert cli.main(["propagate", str(tmp_path / "missing.ipnet")]) == 1


def test_saved_while_propagating_reopens_with_the_round_open(tmp_path, stub_model, small_frames):
    model = stub_model(interaction=0.9, propagation=0.7)
    s = Session(small_frames, model)
    pos = np.zeros(small_frames.shape[1:3], bool)
    pos[20, 15] = True
    s.interact(3, pos)
    gen = s.propagate()
    assert [next(gen), next(gen)] == [4, 5]
    path = s.save(tmp_path / "s.ipnet")  # an autosave while the propagation runs
    header = sf.read_session(path).header
    assert header["log"][-1]["ended"] == "running" and header["log"][-1]["frames"] == [4, 5]
    loaded = Session.load(path, small_frames, model)
    assert loaded.pending_frame == 3 and loaded.replay_report.labels_match
    assert [t for t in range(8) if loaded.labels[t].any()] == [3, 4, 5]
    list(gen)  # the original goes on; the reloaded one propagates its open round again
    assert list(loaded.propagate()) == [4, 5, 6, 7, 2, 1, 0]
    np.testing.assert_array_equal(loaded.labels, s.labels)


def test_logged_strokes_are_those_still_standing(tmp_path, stub_model, small_frames):
    model = stub_model(interaction=0.9, propagation=0.8)
    s = Session(small_frames, model)
    h, w = small_frames.shape[1:3]

    def dot(y, x):
        m = np.zeros((h, w), bool)
        m[y, x : x + 3] = True
        return m

    s.interact(2, dot(20, 15), object_id=1)
    s.interact(2, None, dot(40, 50), object_id=1)  # a negative correction of object 1
    list(s.propagate())
    s.interact_many(5, {2: dot(10, 10), 3: dot(30, 30)}, dot(45, 5))
    s.reset(3)
    before = s.snapshot()
    s.interact(6, dot(25, 25), object_id=2)
    s.restore(before)  # undone: not in the log, not a stroke
    got = [(st.frame, st.object_id, st.positive, st.round) for st in sf.logged_strokes(s)]
    assert got == [(2, 1, True, 0), (2, 1, False, 0), (5, 2, True, 1), (5, None, False, 1)]
    strokes = sf.logged_strokes(s)
    np.testing.assert_array_equal(np.asarray(strokes[0].stroke_map), dot(20, 15))
    np.testing.assert_array_equal(np.asarray(strokes[3].stroke_map), dot(45, 5))
    # the same from the file (stroke maps read back as arrays)
    from_file = sf.logged_strokes(sf.read_session(s.save(tmp_path / "s.ipnet")))
    assert [(st.frame, st.object_id, st.positive, st.round) for st in from_file] == got
    for a, b in zip(from_file, strokes):
        np.testing.assert_array_equal(np.asarray(a.stroke_map), np.asarray(b.stroke_map))
    s.reset()
    assert sf.logged_strokes(s) == []


def test_refine_settings_of_older_files_replay_as_recorded():
    """A file written before RefineSettings.negative_core existed replays with every
    stroke pixel a hard constraint, one written before drop_crossed without removing
    crossed pieces, one written before positive_core with every positive stroke pixel
    a hard constraint (as they were made); newer files keep what they say."""
    from dataclasses import asdict

    from napari_ipnet.refine import RefineSettings

    old = {"beta": 8.0, "prior_weight": 0.1, "stroke_radius": 0.08, "max_side": 160}
    assert sf.recorded_refine(old) == RefineSettings(negative_core=False, positive_core=False,
                                                     drop_crossed=False)
    session10 = {**old, "negative_core": True}  # written before drop_crossed existed
    assert sf.recorded_refine(session10) == RefineSettings(positive_core=False, drop_crossed=False)
    session11 = {**session10, "drop_crossed": True, "drop_depth": 0.75}
    assert sf.recorded_refine(session11) == RefineSettings(positive_core=False)
    assert sf.recorded_refine(asdict(RefineSettings())) == RefineSettings()
    assert RefineSettings().negative_core and RefineSettings().drop_crossed and RefineSettings().positive_core
    assert sf.recorded_refine(None) is None


def test_files_from_before_calibrated_corrections_replay_without_them(tmp_path, stub_model, small_frames):
    """A file whose header and propagations lack ``calibrate_corrections`` (written
    before correction rounds were calibrated) replays and continues without it; a new
    file keeps what it recorded."""
    s, model, _ = _saved(tmp_path, stub_model, small_frames)
    list(s.propagate())
    path = s.save(tmp_path / "propagated.ipnet")
    header = json.loads(zipfile.ZipFile(path).read("session.json"))
    assert header["settings"]["calibrate_corrections"] is True
    propagations = [e for e in header["log"] if e["call"] == "propagate"]
    assert propagations and all(e["calibrate_corrections"] is True for e in propagations)
    assert Session.load(path, small_frames, model).calibrate_correction_rounds is True

    def before_the_field(h):
        h["settings"].pop("calibrate_corrections")
        for e in h["log"]:
            e.pop("calibrate_corrections", None)

    old = _with_header(path, tmp_path / "old.ipnet", before_the_field)
    loaded = Session.load(old, small_frames, model)
    assert loaded.calibrate_correction_rounds is False and loaded.replay_report.labels_match
