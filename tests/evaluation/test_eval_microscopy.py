"""Evaluation on a TIFF image stack with a persistent-identity label stack, along t
and along z: all chosen objects in one session (the default), or one run per object."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from eval_helpers import ShiftStub

from napari_ipnet import cli
from napari_ipnet.evaluation import cli as eval_cli
from napari_ipnet.evaluation.datasets import choose_objects, load_tiff_units, slice_stack
from napari_ipnet.evaluation.protocol import run_protocol

T, Z, Y, X = 6, 3, 48, 64


def _stacks():
    """Object 5: a block drifting right, in every t and z. Object 9: present from t=2 on,
    in planes 1-2 only. Object 2: tiny, in one frame."""
    lab = np.zeros((T, Z, Y, X), np.uint16)
    for t in range(T):
        lab[t, :, 10:26, 8 + 3 * t : 24 + 3 * t] = 5
        if t >= 2:
            lab[t, 1:, 30:44, 40:56] = 9
    lab[4, 1, 2:5, 2:5] = 2
    rng = np.random.default_rng(0)
    img = rng.integers(0, 40, (T, Z, Y, X)).astype(np.uint8)
    img[lab > 0] = 200
    return img, lab


@pytest.fixture
def tiffs(tmp_path):
    img, lab = _stacks()
    tifffile.imwrite(tmp_path / "cells.tif", img)
    tifffile.imwrite(tmp_path / "cells_labels.tif", lab)
    return tmp_path / "cells.tif", tmp_path / "cells_labels.tif"


def test_objects_together_by_default(tiffs):
    img, lab = _stacks()
    units = load_tiff_units(*tiffs, axis="t", z=1)
    assert len(units) == 1
    u = units[0]
    # object 2 is a fragment in one of six slices: not one of the field's cells
    assert u.meta["objects"] == [5, 9] and u.objects == [1, 2] and u.meta["together"]
    assert np.array_equal(u.frames, img[:, 1])
    expected = np.zeros(lab[:, 1].shape, np.uint16)
    expected[lab[:, 1] == 5], expected[lab[:, 1] == 9] = 1, 2
    assert np.array_equal(u.gt, expected)
    assert u.name == "cells:t-axis:z=1:2-objects"


def test_units_along_t(tiffs):
    img, lab = _stacks()
    units = load_tiff_units(*tiffs, axis="t", z=1, max_objects=2, together=False)
    assert [u.meta["object"] for u in units] == [5, 9]  # most slices first
    for u in units:
        k = u.meta["object"]
        assert u.frames.shape == (T, Y, X)
        assert np.array_equal(u.frames, img[:, 1])
        assert np.array_equal(u.gt, (lab[:, 1] == k).astype(np.uint8))
        assert u.objects == [1]
        assert u.meta["axis"] == "t" and u.meta["plane"] == "z=1"
    assert units[0].name == "cells:t-axis:z=1:obj5"


def test_units_along_z(tiffs):
    img, lab = _stacks()
    units = load_tiff_units(*tiffs, axis="z", t=3, objects=[9], together=False)
    assert len(units) == 1
    u = units[0]
    assert u.frames.shape == (Z, Y, X)
    assert np.array_equal(u.frames, img[3])
    assert np.array_equal(u.gt, (lab[3] == 9).astype(np.uint8))
    assert u.meta["plane"] == "t=3"


def test_choices_and_errors(tiffs):
    _, lab = _stacks()
    assert choose_objects(lab[:, 1], max_objects=5) == [5, 9, 2]
    assert choose_objects(lab[:, 1]) == [5, 9]  # present in at least half of the slices
    with pytest.raises(ValueError, match="not in the label stack"):
        load_tiff_units(*tiffs, axis="t", z=1, objects=[7])
    with pytest.raises(ValueError, match="out of range"):
        load_tiff_units(*tiffs, axis="t", z=3)
    with pytest.raises(ValueError, match="out of range"):
        load_tiff_units(*tiffs, axis="z", t=6)
    three_d, where = slice_stack(lab[:, 0], "t")
    assert three_d.shape == (T, Y, X) and where == "3d"
    with pytest.raises(ValueError, match="no second axis"):
        slice_stack(lab[:, 0], "t", z=2)


def test_per_object_runs_and_mean(tiffs):
    units = load_tiff_units(*tiffs, axis="t", z=1, max_objects=2, together=False)
    shifts = {5: [1, 0, 2, 4, 0, 3], 9: [0, 0, 3, 1, 2, 0]}
    queue = [ShiftStub(u.gt, shifts[u.meta["object"]]) for u in units]
    summary = run_protocol(units, lambda frames: queue.pop(0), rounds=3, progress=False)
    res = summary["sequences"]
    assert list(res) == [u.name for u in units]
    # object 5: the block is largest... everywhere equally: first frame; then worst unannotated
    r5 = res[units[0].name]
    assert [r["frame"] for r in r5["rounds"]] == [0, 3, 5]
    w = 16
    expected_last = np.mean([1.0 if t in (0, 3, 5) else (w - s) / (w + s) for t, s in enumerate(shifts[5])])
    assert r5["J"][-1] == pytest.approx(expected_last)
    # object 9 is absent at t < 2: J = 1 there from the start (empty vs empty)
    r9 = res[units[1].name]
    assert r9["rounds"][0]["frame"] == 2
    assert summary["overall"]["J"] == pytest.approx(
        [(a + b) / 2 for a, b in zip(r5["J"], r9["J"])]
    )


def test_cli_tiff(tiffs, tmp_path, monkeypatch):
    def hook(args):
        units = load_tiff_units(args.source, args.labels, args.axis, args.z, args.t, args.objects,
                                args.max_objects, together=not args.one_at_a_time)
        queue = [ShiftStub(u.gt, [2] * len(u.gt)) for u in units]
        return lambda frames: queue.pop(0)

    monkeypatch.setattr(eval_cli, "_session_factory_override", hook)
    base = ["evaluate", str(tiffs[0]), "--labels", str(tiffs[1]), "--axis", "z", "--t", "4",
            "--objects", "5,9", "--rounds", "2", "--quiet"]
    out = tmp_path / "micro.json"
    assert cli.main(base + ["--out", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["protocol"]["format"] == "tiff" and s["protocol"]["axis"] == "z"
    assert s["protocol"]["objects_in_one_session"] is True
    assert list(s["sequences"]) == ["cells:z-axis:t=4:2-objects"]
    unit = s["sequences"]["cells:z-axis:t=4:2-objects"]
    assert unit["objects"] == [1, 2] and set(unit["rounds"][-1]["J_objects"]) == {"1", "2"}
    assert s["overall"]["n_objects"] == 2

    out = tmp_path / "apart.json"
    assert cli.main(base + ["--one-at-a-time", "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    names = list(s["sequences"])
    assert names == ["cells:z-axis:t=4:obj5", "cells:z-axis:t=4:obj9"]
    assert s["overall"]["n_objects"] == 2 and s["protocol"]["objects_in_one_session"] is False
    for name in names:
        assert len(s["sequences"][name]["rounds"]) == 2


def test_link_by_overlap_repairs_ids_that_jump_between_cells():
    from napari_ipnet.evaluation.datasets import link_by_overlap

    lab = np.zeros((4, 40, 60), np.uint16)
    for t in range(4):
        lab[t, 5:15, 5 + 2 * t : 15 + 2 * t] = 3  # cell A drifts right
        lab[t, 25:35, 35:45] = 5  # cell B stays
    two = lab[2].copy()
    lab[2][two == 3], lab[2][two == 5] = 5, 3  # ids swapped in slice 2
    lab[3, 25:35, 35:45] = 8  # and B renamed in slice 3
    linked = link_by_overlap(lab)
    a = linked[:, 10, 12]
    b = linked[:, 30, 40]
    assert (a == a[0]).all() and (b == b[0]).all(), (a, b)
    assert a[0] == 3 and b[0] == 5  # tracks keep the ids of their first slice
    assert ((linked > 0) == (lab > 0)).all()
    # consistent ids come back unchanged
    _, good = _stacks()
    assert np.array_equal(link_by_overlap(good[:, 1]), good[:, 1])
    # a new cell whose value is taken by an existing track gets a fresh id
    new = lab.copy()
    new[3, 0:4, 50:58] = 5  # value 5 is free in slice 3 but names track B
    out = link_by_overlap(new)
    assert out[3, 2, 54] not in (0, 3, 5) and out[3, 10, 12] == 3 and out[3, 30, 40] == 5


def test_tiff_units_follow_linked_tracks(tmp_path):
    img, lab = _stacks()
    swapped = lab.copy()
    swapped[3][lab[3] == 5] = 9
    swapped[3][lab[3] == 9] = 5
    tifffile.imwrite(tmp_path / "i.tif", img)
    tifffile.imwrite(tmp_path / "l.tif", swapped)
    unit = load_tiff_units(tmp_path / "i.tif", tmp_path / "l.tif", axis="t", z=1, objects=[5])[0]
    assert np.array_equal(unit.gt, (lab[:, 1] == 5).astype(np.uint8))
    assert unit.meta["linked_by_overlap"]
    raw = load_tiff_units(tmp_path / "i.tif", tmp_path / "l.tif", axis="t", z=1, objects=[5], link=False)[0]
    assert not np.array_equal(raw.gt, unit.gt)


def test_a_damaged_tiff_is_named(tmp_path, capsys):
    bad = tmp_path / "damaged.tif"
    bad.write_bytes(b"II*\x00" + b"garbage" * 20)
    with pytest.raises(ValueError, match="damaged.tif"):
        load_tiff_units(bad, bad)
    assert cli.main(["evaluate", str(bad), "--labels", str(bad), "--quiet"]) == 2
    assert "damaged.tif" in capsys.readouterr().err
