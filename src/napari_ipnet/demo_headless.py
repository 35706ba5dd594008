"""``napari-ipnet demo --headless OUTDIR``: the whole loop without a window.

On the bundled colour sample: the scribble robot draws a first stroke on every object
of the frame where they are largest, the interaction network segments that frame,
the propagation network carries the masks through the sequence, then one correction
round on the worst frame. Writes ``labels.tif`` (T, H, W), DAVIS-style indexed PNGs,
``overlay.png`` (a strip of frames with the masks) and ``summary.json`` (J per round
against the sample's ground truth, timings).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


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


def run_headless(args) -> int:
    import imageio.v3 as iio

    from ._writer import write_labels_davis, write_labels_tiff
    from .axes import objects_may_end_default
    from .demo import load_weights, sample_data
    from .evaluation.metrics import jaccard
    from .evaluation.robot import ScribbleRobot
    from .session import Session

    out = Path(args.headless)
    out.mkdir(parents=True, exist_ok=True)
    frames, gt, meta = sample_data(args.sample)
    model, label = load_weights(args.weights, args.device)
    print(f"napari-ipnet demo (headless): {args.sample} {frames.shape}, {label}, device {model.device}")
    # a z-stack: its nuclei end between planes (the widget's rule, from the axis name)
    may_end = objects_may_end_default((meta.get("axis_labels") or (None,))[0])
    session = Session(frames, model, objects_may_end=may_end)
    robot = ScribbleRobot()
    ids = [int(k) for k in np.unique(gt) if k != 0]
    area = np.stack([(gt == k).reshape(len(gt), -1).sum(1) for k in ids]).min(0)
    frame = int(np.argmax(area))
    rounds = []
    pred = np.zeros_like(gt)
    annotated: list[int] = []
    for r in range(2):
        scribble = robot.interact(gt[frame], pred[frame], frame=frame, n_frames=len(frames), sequence=args.sample)
        t0 = time.perf_counter()
        session.interact_davis(scribble)
        for _ in session.propagate():
            pass
        elapsed = time.perf_counter() - t0
        pred = session.labels
        annotated.append(frame)
        j = {k: float(np.mean(jaccard(gt == k, pred == k))) for k in ids}
        rounds.append({"round": r + 1, "frame": frame, "seconds": round(elapsed, 3), "J": j})
        print(f"round {r + 1}: scribbles on frame {frame}, {elapsed:.2f} s, J per object {j}")
        per_frame = np.mean([jaccard(gt == k, pred == k) for k in ids], axis=0)
        order = [int(t) for t in np.argsort(per_frame) if int(t) not in annotated]
        if not order:
            break
        frame = order[0]
    write_labels_tiff(str(out / "labels.tif"), pred, {})
    write_labels_davis(str(out / "masks"), pred, {})
    iio.imwrite(out / "overlay.png", _overlay_strip(frames, pred))
    summary = {"sample": args.sample, "weights": label, "shape": list(frames.shape), "rounds": rounds}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'labels.tif'}, {out / 'masks'}/, {out / 'overlay.png'}, {out / 'summary.json'}")
    return 0
