"""Online calibration of the propagation network, per object and round.

On data unlike its training set (held-out videos, fluorescence microscopy) the
propagation network is under-confident: from a near-perfect mask on the neighbouring
frame it keeps the object's core with high precision and drops the rest (recall
0.2-0.7 on the held-out DAVIS sequences and on CHO nuclei). Its probabilities are
ranked well; their threshold is off.

The annotated frame says by how much. When an object's first round is propagated,
the session runs the propagation network on the annotated frame itself, from the mask
just made there (the user's strokes, refined), and finds the logit offset that makes
the network's answer agree best with that mask. The offset is added to the network's
logits on every frame that round reaches. A correction round (``Session``'s
``calibrate_correction_rounds``) is fitted on its corrected frame the same way, with
the object's mask there before the correction as the network's previous-round input,
as on the round's other frames: without it, one step from a frame the correction made
right lost 0.1-0.4 J on small cells. Nothing is learnt across sequences and nothing is
tuned to a dataset: a model that is calibrated on the data (its training sequences)
gets an offset near zero (measured: 0.05 on average over ten DAVIS training sequences).
"""

from __future__ import annotations

import numpy as np

#: logit offsets tried, in steps of 0.25 (2 turns p = 0.12 into 0.5)
BIAS_GRID = np.arange(-1.0, 2.0001, 0.25)
#: a tie-break towards no change: an offset must gain this much IoU per logit unit
BIAS_PENALTY = 1e-3
_EPS = 1e-6


def logits(prob: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))``, clipped away from 0 and 1."""
    p = np.clip(np.asarray(prob, np.float32), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


def fit_logit_bias(prob: np.ndarray, target: np.ndarray, grid: np.ndarray = BIAS_GRID) -> float:
    """The offset ``b`` on the grid that maximises IoU(``logit(prob) + b > 0``, ``target``).

    Parameters
    ----------
    prob:
        The network's foreground probability over a region (any shape).
    target:
        The mask it should give there (same shape, boolean).

    Returns
    -------
    float
        The offset; 0 when the target is empty (nothing to calibrate on).
    """
    target = np.asarray(target, bool)
    if prob.shape != target.shape:
        raise ValueError(f"probability {prob.shape} and target {target.shape} differ in shape")
    n_target = int(np.count_nonzero(target))
    if n_target == 0:
        return 0.0
    lg = logits(prob)
    # IoU for every offset from two sorted arrays: the offsets' thresholds are -b
    inside = np.sort(lg[target])
    outside = np.sort(lg[~target])
    thresholds = -np.asarray(grid, np.float64)
    tp = n_target - np.searchsorted(inside, thresholds, side="right")
    fp = outside.size - np.searchsorted(outside, thresholds, side="right")
    iou = tp / (n_target + fp)
    score = iou - BIAS_PENALTY * np.abs(grid)
    return float(grid[int(np.argmax(score))])


def apply_logit_bias(prob: np.ndarray, bias: float) -> np.ndarray:
    """``sigmoid(logit(prob) + bias)`` as float32 (``prob`` itself when ``bias`` is 0)."""
    if bias == 0.0:
        return prob
    return (1.0 / (1.0 + np.exp(-(logits(prob) + np.float32(bias))))).astype(np.float32)
