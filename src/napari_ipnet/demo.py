"""``napari-ipnet demo``: napari with a sample sequence, the IPNet widget and a first scribble.

GUI mode (default) opens napari, loads a sample, docks the widget, loads the weights
(the bundled default; if this installation has none, random weights, clearly
labelled, so that the plumbing can still be tried), draws a first positive stroke on
the first object of frame 0 and runs the interaction network on it. Press
Shift+Enter (or "Propagate") to carry it through the sequence.

``--headless OUTDIR`` runs without a window (implemented in ``demo_headless``, which
also holds the Qt-free parts both modes share: the samples and the weights). The
import goes one way only: this module imports ``demo_headless``, never the reverse.

This module imports neither napari nor torch at import time (the CLI imports it to
build its options).
"""

from __future__ import annotations

import argparse

from .demo_headless import SAMPLES, load_weights, sample_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sample", choices=SAMPLES, default="colour-sequence", help="sample sequence to open")
    parser.add_argument("--weights", default="default",
                        help="'default', 'ipnet-paper' or a checkpoint path (default: %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"),
                        help="where the networks run: auto picks CUDA, then Apple MPS, then the CPU "
                             "(default: %(default)s)")
    parser.add_argument("--propagate", action="store_true", help="also propagate the first scribble")
    parser.add_argument("--headless", metavar="OUTDIR", default=None,
                        help="run without a window and write the results to OUTDIR")


def first_stroke(labels_frame, object_id: int = 1):
    """A short horizontal stroke (N, 2) of (y, x) points inside object ``object_id``."""
    import numpy as np
    from scipy import ndimage

    mask = labels_frame == object_id
    if not mask.any():
        raise ValueError(f"object {object_id} is not on this frame")
    inner = ndimage.binary_erosion(mask, iterations=2)
    if inner.any():
        mask = inner
    ys, xs = np.nonzero(mask)
    cy = int(np.median(ys))
    row = np.flatnonzero(mask[cy])
    x0, x1 = int(row.min()), int(row.max())
    xs = np.linspace(x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0), 8)
    return np.stack([np.full_like(xs, cy), xs], axis=1)


def first_frame(labels) -> int:
    """Frame of the demo's first stroke: 0, or where object 1 is largest if absent there."""
    import numpy as np

    if (labels[0] == 1).any():
        return 0
    return int(np.argmax((labels == 1).reshape(len(labels), -1).sum(1)))


def open_viewer(sample: str = "colour-sequence", weights: str = "default", device: str = "auto",
                propagate: bool = False, show: bool = True, viewer=None, warn: bool = True):
    """Viewer with the sample, the docked widget, a first stroke; returns (viewer, widget, label).

    The first stroke runs the interaction network in a worker thread; the result
    appears when it finishes (``widget.interaction_done``).
    """
    import napari
    import numpy as np

    from ._qt.widget import IPNetWidget

    frames, labels, meta = sample_data(sample)
    if viewer is None:
        viewer = napari.Viewer(show=show, title="napari-ipnet demo")
    image = viewer.add_image(frames, **meta)
    widget = IPNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="IPNet", area="right")
    model, label = load_weights(weights, device)
    widget.set_model(model, label)
    if "RANDOM" in label and warn:
        from napari.utils.notifications import show_warning

        show_warning(f"napari-ipnet demo: no trained weights, using {label}. Masks are meaningless.")
    widget.set_image_layer(image)
    widget.set_axis(0)
    shapes = widget.scribble_layer(image)
    frame = first_frame(labels)
    stroke = first_stroke(labels[frame], 1)
    path = np.concatenate([np.full((len(stroke), 1), frame), stroke], axis=1)
    viewer.dims.set_current_step(0, frame)
    shapes.add_paths([path])
    viewer.layers.selection.active = shapes
    shapes.mode = "add_path"
    if propagate:
        widget.propagate()
    return viewer, widget, label


def run(args: argparse.Namespace) -> int:
    if getattr(args, "headless", None):
        from .demo_headless import run_headless  # no window, no napari

        return int(run_headless(args) or 0)
    import napari

    open_viewer(args.sample, args.weights, args.device, propagate=args.propagate)
    napari.run()
    return 0
