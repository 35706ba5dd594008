"""Scribbles as constraints: the random-walker refinement of the network's answer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ipnet.refine import RefineSettings, refine_probability, stroke_core


def _two_regions(h=60, w=80):
    img = np.full((h, w), 0.2, np.float32)
    img[:, w // 2 :] = 0.8
    img += np.random.default_rng(0).normal(0, 0.02, img.shape).astype(np.float32)
    return img


def test_strokes_are_hard_constraints():
    img = _two_regions()
    prior = np.full(img.shape, 0.05, np.float32)  # the network says background everywhere
    pos = np.zeros(img.shape, bool)
    pos[30, 50:60] = True
    neg = np.zeros(img.shape, bool)
    neg[10, 5:15] = True
    prior[10, 5:15] = 0.99  # ... and foreground under the negative stroke
    out = refine_probability(img, prior, pos, neg)
    assert out.shape == img.shape and out.dtype == np.float32
    assert (out[pos] == 1.0).all() and (out[neg] == 0.0).all()


def test_a_stroke_spreads_over_its_region_and_stops_at_the_edge():
    img = _two_regions()
    prior = np.full(img.shape, 0.5, np.float32)  # no opinion
    pos = np.zeros(img.shape, bool)
    pos[25:35, 60] = True  # in the bright right half
    neg = np.zeros(img.shape, bool)
    neg[25:35, 20] = True  # in the dark left half
    out = refine_probability(img, prior, pos, neg)
    assert (out[:, 42:] > 0.5).mean() > 0.95
    assert (out[:, :38] < 0.5).mean() > 0.95


def test_far_from_strokes_the_network_holds():
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    disk = (yy - 45) ** 2 + (xx - 60) ** 2 <= 25**2
    img = np.where(disk, 0.7, 0.3).astype(np.float32)
    prior = np.where(disk, 0.9, 0.1).astype(np.float32)
    out = refine_probability(img, prior) > 0.5
    iou = (out & disk).sum() / (out | disk).sum()
    assert iou > 0.95


def test_large_regions_are_solved_on_a_coarser_grid():
    img = np.random.default_rng(1).random((400, 300, 3)).astype(np.float32)
    prior = np.zeros((400, 300), np.float32)
    prior[100:300, 50:250] = 0.95
    out = refine_probability(img, prior, settings=RefineSettings(max_side=64))
    assert out.shape == (400, 300)
    assert out[150:250, 100:200].mean() > 0.8 and out[:50].mean() < 0.2


def test_session_refines_the_interaction_with_the_strokes(stub_model):
    from napari_ipnet.session import Session

    model = stub_model(interaction=0.05, propagation=0.05)  # the network misses the object
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    frames[:, 10:30, 20:44] = 200
    pos = np.zeros((48, 64), bool)
    pos[18:22, 28:36] = True
    plain = Session(frames, model, refine=False).interact(0, pos)
    assert (plain < 0.5).all()
    refined = Session(frames, model, refine=True).interact(0, pos)
    assert (refined[pos] == 1.0).all()  # the stroke is the object, whatever the network says
    # around the stroke, inside its bright block, the object grows; beyond the block's
    # edge the confident network holds
    ring = np.zeros_like(pos)
    ring[16:24, 26:38] = True
    ring &= ~pos
    assert refined[ring].mean() > 0.5 > plain[ring].mean()
    assert (refined[35:, :] < 0.5).all() and (refined[:, :16] < 0.5).all()
    with pytest.raises(TypeError, match="refine must be"):
        Session(frames, model, refine="yes")


def test_stroke_core_drops_the_rim_and_keeps_the_centre_line():
    m = np.zeros((40, 40), bool)
    m[9:12, 5:30] = True  # a 3-px wide stroke (a path drawn with radius 1)
    core = stroke_core(m)
    assert core[10, 6:29].all() and core[9].sum() + core[11].sum() <= 4  # the skeleton's end spurs at most
    thin = np.zeros((40, 40), bool)
    thin[20, 5:30] = True  # one pixel wide: all of it is its core
    assert (stroke_core(thin) == thin).all()
    blob = np.zeros((40, 40), bool)
    blob[5:35, 5:35] = True  # a painted area keeps all but its outer ring
    assert stroke_core(blob).sum() >= 28 * 28 and not stroke_core(blob)[5, 5]
    assert stroke_core(None) is None


def test_a_negative_stroke_whose_rim_lies_on_a_thin_part_does_not_cut_it():
    """A background stroke drawn along a thin part of the object (a leg) covers its
    edge with the stroke's rim: the part survives; with every stroke pixel a hard
    constraint (the behaviour before ``negative_core``), it was cut."""
    h, w = 60, 60
    img = np.full((h, w), 0.2, np.float32)
    img[10:50, 28:31] = 0.8  # a 3-px wide bright leg
    img += np.random.default_rng(0).normal(0, 0.02, img.shape).astype(np.float32)
    prior = np.full((h, w), 0.05, np.float32)
    prior[10:50, 27:31] = 0.9  # the network's mask, one column too wide on the left
    neg = np.zeros((h, w), bool)
    neg[15:45, 26:29] = True  # centre line on the false column 27, rim on columns 26 and 28
    pos = np.zeros((h, w), bool)
    pos[12:48, 30] = True
    core = refine_probability(img, prior, pos, neg)
    every_pixel = refine_probability(img, prior, pos, neg, RefineSettings(negative_core=False))
    leg = np.zeros((h, w), bool)
    leg[15:45, 28] = True
    assert (core[leg] > 0.5).mean() > 0.9
    assert (every_pixel[leg] > 0.5).mean() < 0.1
    assert (core[15:45, 27] < 0.5).mean() > 0.9  # the false column is still removed


def test_a_positive_stroke_along_the_edge_does_not_grow_the_object_past_it():
    """A stroke that corrects a thin rim the mask missed runs along the mask's edge, and
    its own rim lies on the background: the object grows to its edge and stops there;
    with every stroke pixel a hard constraint (the behaviour before ``positive_core``),
    the object took the stroke's outer rim too (small cells grew 2-4 px past their edge)."""
    h, w = 60, 60
    img = np.full((h, w), 0.2, np.float32)
    img[:, :30] = 0.8  # the object: columns 0-29
    img += np.random.default_rng(0).normal(0, 0.02, img.shape).astype(np.float32)
    prior = np.full((h, w), 0.1, np.float32)
    prior[:, :28] = 0.9  # the mask (and the network) stop two columns short
    pos = np.zeros((h, w), bool)
    pos[10:50, 28:31] = True  # centre line on column 29 (the object's last), rim on 28 and 30
    core = refine_probability(img, prior, pos, None, previous=prior)
    every_pixel = refine_probability(img, prior, pos, None, RefineSettings(positive_core=False), previous=prior)
    assert (core[10:50, 28:30] > 0.5).all()  # the missed columns are filled
    assert (core[10:50, 30] > 0.5).mean() < 0.1  # ... and the background beyond stays
    assert (every_pixel[10:50, 30] > 0.5).all()
    assert (core[:, 31:] > 0.5).mean() < (every_pixel[:, 31:] > 0.5).mean()


def test_only_strokes_along_the_masks_edge_lose_their_rim():
    """A stroke along the edge of the mask before the interaction is reduced to its
    core; a stroke away from it (a missed part, perhaps thin) and any stroke where
    there was no mask (a first stroke) keep every pixel."""
    from napari_ipnet.refine import edge_stroke_core

    previous = np.zeros((60, 60), np.float32)
    previous[10:40, 10:40] = 0.9
    pos = np.zeros((60, 60), bool)
    pos[40:43, 12:38] = True  # along the mask's lower edge
    pos[50:53, 5:50] = True  # away from it
    out = edge_stroke_core(pos, previous)
    assert (out[40:43, 12:38] == stroke_core(pos)[40:43, 12:38]).all() and out[41, 13:37].all()
    assert not out[40, 14:36].any() and not out[42, 14:36].any()
    assert (out[50:53, 5:50] == pos[50:53, 5:50]).all()
    assert (edge_stroke_core(pos, np.zeros_like(previous)) == pos).all()
    assert (edge_stroke_core(pos, None) == pos).all() and edge_stroke_core(None, previous) is None


def test_the_walker_system_is_solved_as_a_sparse_lu_would():
    """Conjugate gradients give the sparse LU's answer (to 1e-5) on a walker system; a
    matrix with a zero on its diagonal (no Jacobi preconditioner) goes to the LU."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    from napari_ipnet.refine import _edge_weights, _laplacian, _solve

    rng = np.random.default_rng(0)
    img = _two_regions(50, 70)[..., None]
    L = _laplacian(*_edge_weights(img, 8.0), 50, 70)
    A = (L + sparse.diags(rng.uniform(0.001, 0.1, 50 * 70))).tocsr()
    b = rng.uniform(0, 0.1, 50 * 70)
    np.testing.assert_allclose(_solve(A, b), spsolve(A.tocsc(), b), atol=1e-5)
    B = sparse.csr_matrix(np.array([[0.0, 1.0], [1.0, 2.0]]))
    np.testing.assert_allclose(_solve(B, np.array([1.0, 3.0])), [1.0, 1.0])
    assert _solve(A[:0, :0], np.zeros(0)).size == 0


def _two_blobs(h: int = 80, w: int = 120):
    yy, xx = np.mgrid[:h, :w]
    a = (yy - 40) ** 2 + (xx - 30) ** 2 < 15**2
    b = (yy - 40) ** 2 + (xx - 90) ** 2 < 15**2
    img = np.where(a | b, 0.8, 0.2).astype(np.float32)
    img += np.random.default_rng(1).normal(0, 0.02, img.shape).astype(np.float32)
    return img, a, b


def test_a_negative_stroke_through_a_piece_without_positive_strokes_removes_it():
    """The object sits on two blobs; a background stroke across the middle of one
    removes all of that blob (not only a groove along the stroke); the other blob,
    which holds the object's positive stroke, stays. With ``drop_crossed`` off the
    crossed blob survives beside the stroke."""
    img, a, b = _two_blobs()
    prior = np.where(a | b, 0.95, 0.02).astype(np.float32)
    pos = np.zeros(a.shape, bool)
    pos[40, 25:36] = True
    neg = np.zeros(a.shape, bool)
    neg[38:41, 82:99] = True  # through the middle of blob b
    out = refine_probability(img, prior, pos, neg, previous=prior)
    assert (out[b] < 0.5).all()
    assert (out[a] > 0.5).mean() > 0.95
    kept = refine_probability(img, prior, pos, neg, RefineSettings(drop_crossed=False), previous=prior)
    assert (kept[b] > 0.5).mean() > 0.5


def test_a_negative_stroke_at_a_pieces_edge_or_in_a_piece_with_a_positive_stroke_only_cuts():
    """A stroke along the edge of a piece trims it; a stroke through the middle of the
    piece that holds the object's positive stroke, or a short one through its middle
    (shorter than the piece's half-width), does not remove the object."""
    img, a, b = _two_blobs()
    prior = np.where(a, 0.95, 0.02).astype(np.float32)
    edge = np.zeros(a.shape, bool)
    edge[26:29, 24:37] = True  # the blob's top rim
    out = refine_probability(img, prior, None, edge, previous=prior)
    assert (out[a] > 0.5).mean() > 0.8
    pos = np.zeros(a.shape, bool)
    pos[46, 25:36] = True
    middle = np.zeros(a.shape, bool)
    middle[38:41, 20:40] = True
    out = refine_probability(img, prior, pos, middle, previous=prior)
    assert (out[a] > 0.5).mean() > 0.6
    short = np.zeros(a.shape, bool)
    short[39:42, 27:33] = True  # through the middle, but short: a gap in a large piece
    out = refine_probability(img, prior, None, short, previous=prior)
    assert (out[a] > 0.5).mean() > 0.6


def test_drop_crossed_pieces_sees_a_piece_split_by_its_strokes_groove_as_one():
    """The walker cuts a groove along a negative stroke; the piece on both sides of it
    is still the piece the stroke crossed."""
    from napari_ipnet.refine import drop_crossed_pieces

    _, a, b = _two_blobs()
    prob = np.where(a | b, 1.0, 0.0).astype(np.float32)
    neg = np.zeros(a.shape, bool)
    neg[39:42, 70:110] = True
    prob[36:45, 70:110] = 0.0  # the groove, wider than the stroke
    out = drop_crossed_pieces(prob, neg)
    assert (out[b] == 0).all() and (out[a] == 1).all()
    assert drop_crossed_pieces(prob, np.zeros_like(neg)) is prob


@pytest.mark.parametrize("scale", [1, 5])
def test_a_stroke_across_one_of_two_touching_cells_removes_that_cell_only(scale):
    """The object leaked onto a touching cell: one piece over both. A background stroke
    across the second cell removes it and leaves the first (the piece is split at its
    neck), on small regions and on large ones (judged on a coarser grid)."""
    from napari_ipnet.refine import drop_crossed_pieces

    yy, xx = np.mgrid[: 80 * scale, : 120 * scale] / scale
    a = (yy - 40) ** 2 + (xx - 45) ** 2 < 16**2
    b = (yy - 40) ** 2 + (xx - 75) ** 2 < 16**2
    assert (a & b).any()  # they touch
    prob = np.where(a | b, 1.0, 0.0).astype(np.float32)
    neg = np.zeros(a.shape, bool)
    neg[39 * scale : 39 * scale + 3, 64 * scale : 87 * scale] = True
    out = drop_crossed_pieces(prob, neg)
    assert (out[a & ~b] > 0.5).all()
    assert (out[b & ~a] > 0.5).mean() < 0.01
    # nothing of the second cell stays away from the neck, not even a fringe of specks
    # where the coarse grid's cells straddle its edge (94 pixels at scale 5 before)
    from scipy import ndimage

    assert not (out[b & ~ndimage.binary_dilation(a, iterations=2 * scale)] > 0.5).any()
