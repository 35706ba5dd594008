"""Plot a training log (``log.csv`` of ``napari-ipnet train``): loss and validation IoU.

Usage: python scripts/plot_training_log.py LOG.csv OUT.png [STEP[:LABEL] ...]

Each STEP draws a vertical line where the recipe changed (the run resumed with other data,
another validation set, or a fresh learning-rate schedule), labelled LABEL (default
"recipe changed"), since values on the two sides are not comparable.
"""

from __future__ import annotations

import csv
import sys

import numpy as np


def main(log_path: str, out_path: str, marks: list[tuple[int, str]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    step = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    window = 50
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    val = [(int(r["step"]), float(r["val_iou_round1"]), float(r["val_iou_last"])) for r in rows if r["val_iou_round1"]]

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(step, loss, color="0.8", lw=0.5, label="per step")
    a.plot(step[window - 1 :], smooth, color="C0", label=f"mean of {window} steps")
    a.set_xlabel("step (batch of 4 clips)")
    a.set_ylabel("training loss (all heads, all rounds)")
    a.set_ylim(0, np.percentile(loss, 99))
    a.legend()
    if val:
        v = np.array(val)
        b.plot(v[:, 0], v[:, 1], "o-", label="after round 1")
        b.plot(v[:, 0], v[:, 2], "s-", label="after round 3")
    b.set_xlabel("step")
    b.set_ylabel("validation IoU (simulated episodes)")
    b.legend(loc="upper left")
    b.grid(alpha=0.3)
    for i, (m, text) in enumerate(marks):
        for ax in (a, b):
            ax.axvline(m, color="k", ls=":", lw=1)
        lo, hi = b.get_ylim()
        b.annotate(f" {text}", (m, lo + 0.05 * i * (hi - lo)), va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    parsed = []
    for arg in sys.argv[3:]:
        step, _, text = arg.partition(":")
        parsed.append((int(step), text or "recipe changed"))
    main(sys.argv[1], sys.argv[2], parsed)
