"""Screenshot of napari with the IPNet widget at work -> docs/images/widget.png.

Opens napari (under Xvfb when there is no display: the script re-runs itself with
``xvfb-run``), loads the colour sample, docks the widget, loads the weights that
``load_model("default")`` gives (random weights, labelled as such on the canvas,
when this installation has no trained ones), draws a first scribble, propagates,
then corrects the worst frame of the first object as a user would (the scribble
robot's strokes on that frame's errors, drawn in the widget's scribble layer) and
propagates again, and saves a screenshot of the whole window at the corrected frame.
Prints the timings and J of that frame and of the sequence before and after.

    python scripts/screenshot.py [--out docs/images/widget.png] [--sample colour-sequence]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _wait(widget, timeout: float = 600.0) -> None:
    from qtpy.QtWidgets import QApplication

    t0 = time.perf_counter()
    while not widget.is_idle():
        QApplication.processEvents()
        time.sleep(0.01)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the IPNet widget did not finish in time")
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.01)


def correction_round(viewer, widget, sample: str) -> tuple[int, tuple, tuple]:
    """Correct object 1's worst frame with the robot's strokes, through the widget.

    Returns the frame, and (J on that frame, mean J over the frames) before and after.
    """
    import numpy as np

    from napari_ipnet.demo import sample_data
    from napari_ipnet.evaluation.metrics import jaccard
    from napari_ipnet.evaluation.robot import ScribbleRobot

    _, gt, _ = sample_data(sample)
    gt1 = gt == 1

    def scores():
        pred = np.asarray(widget.output_layer.data) == 1
        j = jaccard(gt1, pred)
        return j, float(j.mean())

    j, mean_before = scores()
    annotated = set(widget.session.annotated_frames(1))
    frame = int(min((t for t in range(len(gt)) if t not in annotated), key=lambda t: j[t]))
    pred = np.asarray(widget.output_layer.data[frame])
    paths = ScribbleRobot().scribble_paths((gt[frame] == 1).astype(np.uint8), (pred == 1).astype(np.uint8), [0, 1])
    viewer.dims.set_current_step(0, frame)
    shapes = widget.scribble_layer()
    widget.select_object(1)
    for label, negative in ((1, False), (0, True)):
        widget.set_negative(negative)
        for path in paths.get(label, []):
            shapes.add_paths([np.concatenate([np.full((len(path), 1), frame), path], axis=1)])
            _wait(widget)
    widget.set_negative(False)
    after_interaction = float(jaccard(gt1[frame], np.asarray(widget.output_layer.data[frame]) == 1)[0])
    widget.propagate()
    _wait(widget)
    j2, mean_after = scores()
    print(f"  (frame {frame} right after the interaction: J {after_interaction:.3f}; "
          f"strokes: {sum(len(v) for v in paths.values())})")
    return frame, (float(j[frame]), mean_before), (float(j2[frame]), mean_after)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "widget.png"))
    parser.add_argument("--sample", default="colour-sequence", choices=("colour-sequence", "cell-timelapse"))
    parser.add_argument("--frame", type=int, default=None, help="frame shown in the screenshot")
    parser.add_argument("--size", default="1500x900", help="window size WxH")
    args = parser.parse_args(argv)

    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux") and not os.environ.get("_IPNET_XVFB"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            print("no display and no xvfb-run: install Xvfb (apt install xvfb)", file=sys.stderr)
            return 2
        env = dict(os.environ, _IPNET_XVFB="1")
        cmd = [xvfb, "-a", "-s", "-screen 0 1920x1200x24", sys.executable, __file__, *(argv or sys.argv[1:])]
        return subprocess.call(cmd, env=env)

    import napari
    import numpy as np

    from napari_ipnet import demo

    w, h = (int(v) for v in args.size.split("x"))
    viewer = napari.Viewer(show=True, title="napari-ipnet")
    viewer.window._qt_window.resize(w, h)
    t0 = time.perf_counter()
    viewer, widget, label = demo.open_viewer(args.sample, viewer=viewer, warn=False)
    _wait(widget)
    t_interact = time.perf_counter() - t0
    print(f"weights: {label}")
    print(f"sample: {args.sample}, frames {widget.session.frames.shape}, device {widget.model.device}")
    print(f"start -> first result shown: {t_interact:.2f} s (napari, sample, model, first scribble)")
    print(f"widget status: {widget.status_label.text()}")
    import torch

    print(f"torch CPU threads: {torch.get_num_threads()}")
    random = "RANDOM" in label
    if random:
        viewer.text_overlay.visible = True
        viewer.text_overlay.text = "RANDOM weights (untrained): masks are meaningless"
        viewer.text_overlay.color = "yellow"
        viewer.text_overlay.font_size = 11
        viewer.text_overlay.position = "top_left"
    scribbled = widget.session.pending_frame

    n = len(widget.session.propagation_plan())
    widget.propagate()
    _wait(widget)
    print(f"propagate -> last frame shown: {widget.last_propagation_seconds:.2f} s for {n} frames "
          f"({widget.last_propagation_seconds / max(1, n):.3f} s per frame)")

    frame = args.frame
    if not random:  # a correction round on the worst frame of object 1
        corrected, before, after = correction_round(viewer, widget, args.sample)
        print(f"correction on frame {corrected}: J of object 1 on that frame {before[0]:.3f} -> {after[0]:.3f}, "
              f"over the sequence {before[1]:.3f} -> {after[1]:.3f}")
        frame = corrected if frame is None else frame
    # untrained: show the scribbled frame (propagated frames are empty)
    frame = frame if frame is not None else (scribbled if random else widget.session.n_frames // 2)
    viewer.dims.set_current_step(0, frame)
    viewer.layers.selection.active = widget.scribble_layer()
    viewer.reset_view()
    _wait(widget)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = viewer.screenshot(path=str(out), canvas_only=False, flash=False)
    print(f"screenshot {img.shape[1]}x{img.shape[0]} -> {out}")
    labels_frame = np.asarray(widget.output_layer.data[frame])
    print(f"frame {frame}: {int((labels_frame > 0).sum())} labelled pixels")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
