"""Cost of many objects in one Session: ms per frame against the number of objects.

Small objects (nuclei of about 25 px) spread over a large frame (1024x1024 by
default), all in one session: one interaction on frame 0 for every object at once
(``Session.interact_many``), then propagation through the other frames. Each
configuration runs with the objects of a frame as one batched network call
(``Session.batch_size``, the default) and one object per call (``batch_size = 1``),
interleaved repeat by repeat; medians over repeats after one warm-up. The bundled
model's architecture is used (the cost does not depend on the weights' values).

    python benchmarks/many_objects.py [--threads 2] [--objects 1,5,20,50] [--size 1024]
                                      [--frames 3] [--repeats 3] [--device cpu|cuda] [--unfused] [--lu]
                                      [--affine-grid]

``--unfused`` adds a configuration: batched, with the model as it ran before the
inference layout (contiguous tensors, BatchNorm not folded into the convolutions).
``--lu`` adds one with the scribble refinement's system solved by a sparse LU (as
before the conjugate gradients), to measure what that saves in the interaction.
``--affine-grid`` adds one with the crops' sampling grid made by ``F.affine_grid`` (as
before session 11) instead of two ramps.

Prints a table and the ratios to one object; this is a script, not a test.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np


def blob_field(n_objects: int, size: int, n_frames: int, seed: int = 0):
    """uint16 frames (T, size, size) and the positive dots of ``n_objects`` nuclei."""
    rng = np.random.default_rng(seed)
    grid = int(np.ceil(np.sqrt(max(n_objects, 1))))
    step = size // grid
    yy, xx = np.mgrid[0:size, 0:size]
    centres = [(step // 2 + step * (i // grid), step // 2 + step * (i % grid)) for i in range(n_objects)]
    frames = np.empty((n_frames, size, size), np.uint16)
    for t in range(n_frames):
        img = rng.normal(300, 20, (size, size))
        for cy, cx in centres:
            img[(yy - cy - t) ** 2 + (xx - cx - t) ** 2 <= 12**2] += 1500
        frames[t] = img.clip(0, 65535)
    dots = {}
    for k, (cy, cx) in enumerate(centres, start=1):
        m = np.zeros((size, size), bool)
        m[cy - 1 : cy + 2, cx - 3 : cx + 4] = True
        dots[k] = m
    return frames, dots


def affine_roi_grid(box, height: int, width: int, size: int, device, dtype):
    """The crops' sampling grid as ``F.affine_grid`` makes it (the way before session 11)."""
    import torch
    import torch.nn.functional as F

    sx = (box.x1 - box.x0) / max(width - 1, 1)
    tx = (box.x0 + box.x1) / max(width - 1, 1) - 1.0
    sy = (box.y1 - box.y0) / max(height - 1, 1)
    ty = (box.y0 + box.y1) / max(height - 1, 1) - 1.0
    theta = torch.tensor([[[sx, 0.0, tx], [0.0, sy, ty]]], device=device, dtype=dtype)
    return F.affine_grid(theta, [1, 1, size, size], align_corners=True)


def run_once(model, frames, dots, batch_size: int, fold_batchnorm: bool = True, lu: bool = False,
             affine_grid: bool = False) -> tuple[float, float]:
    """Seconds of the interaction (all objects) and median seconds per propagated frame."""
    from scipy.sparse.linalg import spsolve

    from napari_ipnet import refine
    from napari_ipnet.model import roi
    from speed import batchnorm_folding  # benchmarks/speed.py, beside this script

    solve, grid = refine._solve, roi._roi_grid
    if lu:
        refine._solve = lambda A, b: spsolve(A.tocsc(), b) if b.size else b
    if affine_grid:
        roi._roi_grid = affine_roi_grid
    try:
        with batchnorm_folding(fold_batchnorm):
            return _run_once(model, frames, dots, batch_size)
    finally:
        refine._solve, roi._roi_grid = solve, grid


def _run_once(model, frames, dots, batch_size: int) -> tuple[float, float]:
    from napari_ipnet import Session

    session = Session(frames, model)
    session.batch_size = batch_size
    t0 = time.perf_counter()
    session.interact_many(0, dots)
    t_interact = time.perf_counter() - t0
    per_frame = []
    t_prev = time.perf_counter()
    for _ in session.propagate():
        now = time.perf_counter()
        per_frame.append(now - t_prev)
        t_prev = now
    return t_interact, statistics.median(per_frame)


def against(med: dict, counts: list[int], variant: str, which: int):
    """One line per object count: the batched default against ``variant`` in the same
    run, on the interaction (``which`` 0) or the propagation per frame (1)."""
    for n in counts:
        new, old = med[(n, "batched")][which], med[(n, variant)][which]
        yield f"  {n:>3} objects: x{new / old:.2f} ({1000 * new:.0f} against {1000 * old:.0f} ms)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--objects", default="1,5,20,50", help="comma-separated object counts")
    parser.add_argument("--size", type=int, default=1024, help="frame side in pixels (default 1024)")
    parser.add_argument("--frames", type=int, default=3, help="frames: 1 interacted + N-1 propagated")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | mps (default cpu)")
    parser.add_argument("--unfused", action="store_true",
                        help="also run batched with contiguous tensors and BatchNorm unfolded (the layout before)")
    parser.add_argument("--lu", action="store_true",
                        help="also run batched with the refinement solved by a sparse LU (the solver before)")
    parser.add_argument("--affine-grid", action="store_true",
                        help="also run batched with the crops' grid made by F.affine_grid (the way before)")
    args = parser.parse_args(argv)

    import torch

    from napari_ipnet import load_model
    from napari_ipnet.model.networks import build_model

    torch.set_num_threads(args.threads)
    try:
        model = load_model("default", device=args.device)
    except Exception as err:  # no bundled file: the same architecture, random weights
        print(f"(bundled weights unavailable: {err}; random weights of the default architecture)")
        model = build_model().to(args.device)
    counts = [int(v) for v in args.objects.split(",") if v.strip()]
    data = {n: blob_field(n, args.size, args.frames) for n in counts}
    modes = {"batched": 8, "one by one": 1}
    models = {"batched": model, "one by one": model}
    if args.unfused:
        modes["unfused"] = 8
        models["unfused"] = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    if args.lu:
        modes["LU solve"] = 8
        models["LU solve"] = model
    if args.affine_grid:
        modes["affine grid"] = 8
        models["affine grid"] = model
    times: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for rep in range(args.repeats + 1):
        for n in counts:
            for mode, bs in modes.items():
                result = run_once(models[mode], *data[n], bs, fold_batchnorm=mode != "unfused", lu=mode == "LU solve",
                                  affine_grid=mode == "affine grid")
                if rep > 0:  # the first repeat warms up
                    times.setdefault((n, mode), []).append(result)
    print(f"napari-ipnet many objects: {args.size}x{args.size} frames, device {args.device}, "
          f"{args.threads} torch threads, medians of {args.repeats} repeats")
    head = f"{'objects':>8} {'mode':>11} {'interaction ms':>15} {'propagation ms/frame':>21} {'per object':>11}"
    print(head)
    print("-" * len(head))
    med = {}
    for n in counts:
        for mode in modes:
            ti = statistics.median(t for t, _ in times[(n, mode)])
            tp = statistics.median(p for _, p in times[(n, mode)])
            med[(n, mode)] = (ti, tp)
            print(f"{n:>8} {mode:>11} {1000 * ti:>15.0f} {1000 * tp:>21.0f} {1000 * tp / n:>11.0f}")
    if counts and counts[0] == 1:
        print("ratios to one object (same run), propagation per frame:")
        for n in counts[1:]:
            b = med[(n, "batched")][1] / med[(1, "batched")][1]
            o = med[(n, "one by one")][1] / med[(1, "one by one")][1]
            print(f"  {n:>3} objects: batched {b:.1f}x, one by one {o:.1f}x "
                  f"(batched / one by one at {n}: {med[(n, 'batched')][1] / med[(n, 'one by one')][1]:.2f})")
    if args.lu:
        print("refinement solved by conjugate gradients / by a sparse LU, same run, interaction (all objects):")
        print("\n".join(against(med, counts, "LU solve", 0)))
    if args.affine_grid:
        print("crops' grid from two ramps / from F.affine_grid, same run, propagation per frame:")
        print("\n".join(against(med, counts, "affine grid", 1)))
    if args.unfused:
        print("inference layout (channels-last, BatchNorm folded) / before, same run, propagation per frame:")
        for n in counts:
            print(f"  {n:>3} objects: x{med[(n, 'batched')][1] / med[(n, 'unfused')][1]:.2f} "
                  f"(interaction x{med[(n, 'batched')][0] / med[(n, 'unfused')][0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
