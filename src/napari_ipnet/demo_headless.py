"""``napari-ipnet demo --headless OUTDIR``: the whole loop without a window.

On a bundled sample, two rounds of the DAVIS interactive protocol
(:func:`napari_ipnet.evaluation.protocol.evaluate_sequence`, the code ``napari-ipnet
evaluate`` runs): the scribble robot draws a first stroke on every object of the frame
with the largest total foreground, the interaction network segments that frame, the
propagation network carries the masks through the sequence, then one correction round
on the worst frame. Writes ``labels.tif`` (T, H, W), DAVIS-style indexed PNGs,
``overlay.png`` (a strip of frames with the masks) and ``summary.json`` (J and F per
round against the sample's ground truth, timings).

This module also holds what the windowed demo (:mod:`napari_ipnet.demo`) shares with
it: the samples (:func:`sample_data`) and the weights (:func:`load_weights`). It never
imports :mod:`napari_ipnet.demo`, nor napari, nor (at import time) torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: the samples the demo can open (``--sample``)
SAMPLES = ("colour-sequence", "cell-timelapse", "nuclei-zstack")

#: protocol rounds of the headless demo: the first scribble, one correction
ROUNDS = 2


def sample_data(key: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """A bundled sample: its frames, ground-truth labels and the image layer's metadata.

    Parameters
    ----------
    key:
        One of :data:`SAMPLES`; anything else gives the colour sequence.

    Returns
    -------
    tuple
        ``(frames, labels, meta)``: frames (T, H, W) or (T, H, W, 3), labels (T, H, W)
        integers, and the keyword arguments napari's ``add_image`` takes for it
        (``axis_labels`` among them).
    """
    from . import _sample_data as sd

    if key == "cell-timelapse":
        frames, labels = sd.make_cell_timelapse()
        return frames, labels, sd.cell_timelapse()[0][1]
    if key == "nuclei-zstack":
        frames, labels = sd.make_nuclei_zstack()
        return frames, labels, sd.nuclei_zstack()[0][1]
    frames, labels = sd.make_colour_sequence()
    return frames, labels, sd.colour_sequence()[0][1]


def load_weights(name: str = "default", device: str = "auto"):
    """The requested weights, or random weights with a warning label.

    Parameters
    ----------
    name:
        ``"default"``, ``"ipnet-paper"`` or a checkpoint path (see :func:`napari_ipnet.load_model`).
    device:
        ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"``.

    Returns
    -------
    tuple
        ``(model, label)``; where the weights cannot be loaded, a model with seeded
        random weights and a label that starts with "RANDOM weights".
    """
    from .weights import WeightsError, load_model

    try:
        model = load_model(name, device=device)
        return model, f"{name} weights"
    except WeightsError as err:
        import torch

        from .model.networks import build_model
        from .weights import resolve_device

        torch.manual_seed(0)  # the same random weights on every run
        model = build_model(name="random").to(resolve_device(device))
        return model, f"RANDOM weights (untrained: {str(err).split(';')[0][:80]}...)"


def _overlay_strip(frames: np.ndarray, labels: np.ndarray, n: int = 5) -> np.ndarray:
    from ._writer import davis_palette

    palette = davis_palette()[:, :3].astype(np.float32)
    idx = np.linspace(0, len(frames) - 1, min(n, len(frames))).astype(int)
    tiles = []
    for t in idx:
        img = frames[t].astype(np.float32)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        img = 255 * (img - img.min()) / max(float(np.ptp(img)), 1e-6)
        lab = labels[t]
        colour = palette[lab.astype(np.int64) % len(palette)]
        a = (lab > 0)[..., None] * 0.5
        out = img * (1 - a) + colour * a
        edge = lab != np.roll(lab, 1, 0)
        edge |= lab != np.roll(lab, 1, 1)
        out[edge] = 255
        tiles.append(out.astype(np.uint8))
        tiles.append(np.full((img.shape[0], 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def _round_summary(record: dict) -> dict:
    """One protocol round record, as the demo's summary gives it."""
    return {
        "round": record["round"],
        "frame": record["frame"],
        "source": record["source"],
        "strokes": record["strokes"],
        "seconds": round(record["time_s"], 3),
        "J": {int(k): v for k, v in record["J_objects"].items()},
        "F": {int(k): v for k, v in record["F_objects"].items()},
        "J_mean": record["J"],
        "frame_J_before": record["frame_J_before"],
        "frame_J_after": record["frame_J_after"],
    }


def run_headless(args: argparse.Namespace) -> int:
    """Run the protocol's rounds on ``args.sample`` and write the results to ``args.headless``.

    Parameters
    ----------
    args:
        ``headless`` (the output folder), ``sample``, ``weights`` and ``device``, as the
        ``demo`` sub-command parses them.

    Returns
    -------
    int
        0 (the exit status).
    """
    import imageio.v3 as iio

    from ._writer import write_labels_davis, write_labels_tiff
    from .axes import objects_may_end_default
    from .evaluation.protocol import EvalSequence, evaluate_sequence
    from .session import Session

    out = Path(args.headless)
    out.mkdir(parents=True, exist_ok=True)
    frames, gt, meta = sample_data(args.sample)
    model, label = load_weights(args.weights, args.device)
    print(f"napari-ipnet demo (headless): {args.sample} {frames.shape}, {label}, device {model.device}")
    # a z-stack: its nuclei end between planes (the widget's rule, from the axis name)
    may_end = objects_may_end_default((meta.get("axis_labels") or (None,))[0])
    sessions: list[Session] = []

    def new_session(source) -> Session:
        sessions.append(Session(source, model, objects_may_end=may_end))
        return sessions[-1]

    result = evaluate_sequence(EvalSequence(args.sample, frames, gt), new_session, rounds=ROUNDS, progress=False)
    rounds = [_round_summary(r) for r in result["rounds"]]
    for r in rounds:
        j = " ".join(f"{k}: {v:.3f}" for k, v in r["J"].items())
        print(f"round {r['round']}: {r['source']} scribbles on frame {r['frame']}, {r['seconds']:.2f} s, "
              f"J per object {{{j}}}, mean {r['J_mean']:.3f}")
    pred = np.asarray(sessions[-1].labels)
    write_labels_tiff(str(out / "labels.tif"), pred, {})
    write_labels_davis(str(out / "masks"), pred, {})
    iio.imwrite(out / "overlay.png", _overlay_strip(frames, pred))
    summary = {
        "sample": args.sample,
        "weights": label,
        "shape": list(frames.shape),
        "objects_may_end": may_end,
        "protocol": "napari_ipnet.evaluation.protocol.evaluate_sequence (DAVIS interactive, robot user)",
        "rounds": rounds,
        "J": result["J"],
        "F": result["F"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'labels.tif'}, {out / 'masks'}/, {out / 'overlay.png'}, {out / 'summary.json'}")
    return 0
