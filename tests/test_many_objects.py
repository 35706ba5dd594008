"""Many small objects in one session, with the bundled weights: each object is
segmented as well together as alone, and objects keep their identity.

Accuracy tests: random weights fail them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_ipnet import Session, load_model
from napari_ipnet.evaluation.metrics import jaccard


@pytest.fixture(scope="module")
def model():
    return load_model("default", device="cpu")


def blob_field(n_frames: int = 3, size: int = 1024, n_cells: int = 12, seed: int = 0):
    """A uint16 fluorescence-like field: ``n_cells`` small drifting nuclei far apart."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    grid = int(np.ceil(np.sqrt(n_cells)))
    step = size // grid
    centres = [(step // 2 + step * (i // grid), step // 2 + step * (i % grid)) for i in range(n_cells)]
    radii = rng.uniform(9, 15, (n_cells, 2))
    drift = rng.uniform(-3, 3, (n_cells, 2))
    frames, labels = [], []
    for t in range(n_frames):
        img = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 2) * 30 + 300
        lab = np.zeros((size, size), np.uint8)
        for k, ((cy, cx), (ry, rx), (dy, dx)) in enumerate(zip(centres, radii, drift), start=1):
            m = ((yy - cy - dy * t) / ry) ** 2 + ((xx - cx - dx * t) / rx) ** 2 <= 1
            lab[m] = k
            img[m] += 1500 + 200 * np.sin(k)
        frames.append(img.clip(0, 65535).astype(np.uint16))
        labels.append(lab)
    return np.stack(frames), np.stack(labels)


def _dot_scribbles(gt_frame: np.ndarray, frame: int, n_frames: int) -> dict:
    """A short stroke through the centre of every object (what a user clicks)."""
    h, w = gt_frame.shape
    strokes = []
    for k in (int(v) for v in np.unique(gt_frame) if v):
        cy, cx = ndimage.center_of_mass(gt_frame == k)
        strokes.append({"path": [[(cx - 2) / w, cy / h], [(cx + 2) / w, cy / h]], "object_id": k})
    scribbles = [[] for _ in range(n_frames)]
    scribbles[frame] = strokes
    return {"scribbles": scribbles}


def test_many_small_objects_together_match_each_alone(model):
    frames, gt = blob_field()
    ids = [int(k) for k in np.unique(gt) if k]
    scribble = _dot_scribbles(gt[1], 1, len(frames))
    together = Session(frames, model)
    together.interact_davis(scribble)
    list(together.propagate())
    labels = together.labels
    for k in ids:
        alone = Session(frames, model)
        one = {"scribbles": [[s for s in f if s["object_id"] == k] for f in scribble["scribbles"]]}
        alone.interact_davis(one)
        list(alone.propagate())
        j_alone = float(np.mean(jaccard(gt == k, alone.labels == k)))
        j_together = float(np.mean(jaccard(gt == k, labels == k)))
        assert j_alone > 0.6, f"object {k} alone: J {j_alone:.3f}"
        assert j_together >= j_alone - 0.02, f"object {k}: J {j_together:.3f} together, {j_alone:.3f} alone"


def test_colour_sample_objects_keep_their_identity_through_the_crossing(model):
    """The bundled colour sample, two rounds of the protocol's robot (as the headless
    demo runs them): on every frame, before, during and after the ball crosses the
    horse, each object's mask lies mostly on its own object and far less on the other
    (a swap, or the horse's mask taking the ball, fails)."""
    from napari_ipnet.demo_headless import sample_data
    from napari_ipnet.evaluation.protocol import EvalSequence, evaluate_sequence

    frames, gt, _ = sample_data("colour-sequence")
    sessions = []

    def new_session(source):
        sessions.append(Session(source, model))
        return sessions[-1]

    evaluate_sequence(EvalSequence("colour", frames, gt), new_session, rounds=2, progress=False)
    pred = np.asarray(sessions[-1].labels)
    for t in range(len(gt)):
        for k, other in ((1, 2), (2, 1)):
            mask = pred[t] == k
            on_own = int((mask & (gt[t] == k)).sum())
            on_other = int((mask & (gt[t] == other)).sum())
            assert on_own > 0.5 * (gt[t] == k).sum(), f"frame {t}: object {k} covers {on_own} px of itself"
            assert on_other < 0.3 * on_own, f"frame {t}: object {k} covers {on_other} px of object {other}"
