"""Peak memory of a Session propagated over 500, 1000 and 2000 frames.

Frames come from a lazy array-like that draws each 512x512 RGB frame on request (a
disc drifting over noise), so the frames themselves take no memory. Each length runs
in a fresh subprocess, which reports: the bytes of the stored soft masks
(``session.memory_bytes()``), the process RSS before the session and after the
propagation, and the peak RSS (``ru_maxrss``). The growth per frame is the slope
between lengths.

By default the two networks are replaced by a cheap stub with the same call
signature (``net(rgb, *maps[, reference])`` returning logits, aux and feature, and
``SEFA``) so that the run takes minutes, not hours, on a CPU: the stub segments the
synthetic object by its colour inside the ROI (an exact, soft-edged segmenter), so the
stored masks follow the object with a realistic size and a soft edge. ``--floor P`` adds a constant
background probability inside the ROI (P >= 0.002 makes every stored crop as large as
the ROI: the worst case). ``--real`` uses the untrained EfficientNet-Lite0 pair instead
(slow on a CPU; use fewer frames).

    python benchmarks/memory.py [--lengths 500,1000,2000] [--size 512] [--floor 0] [--real]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


class SyntheticFrames:
    """(T, H, W, 3) uint8 frames drawn on request; nothing is stored per frame."""

    def __init__(self, n: int, size: int = 512, seed: int = 0) -> None:
        self.shape = (n, size, size, 3)
        self.dtype = np.dtype(np.uint8)
        rng = np.random.default_rng(seed)
        self._noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        yy, xx = np.ogrid[:size, :size]
        self._yy, self._xx = yy, xx
        self.radius = size // 8

    def __len__(self) -> int:
        return self.shape[0]

    def centre(self, t: int) -> tuple[int, int]:
        size = self.shape[1]
        # a slow loop around the frame centre
        a = 2 * np.pi * t / 400.0
        return int(size / 2 + size / 5 * np.sin(a)), int(size / 2 + size / 5 * np.cos(a))

    def __getitem__(self, t):
        t = int(t)
        if not 0 <= t < self.shape[0]:
            raise IndexError(t)
        cy, cx = self.centre(t)
        out = self._noise.copy()
        out[(self._yy - cy) ** 2 + (self._xx - cx) ** 2 < self.radius**2] = (220, 120, 60)
        return out


def stub_model(floor: float = 0.0):
    """An object with the attributes Session uses, backed by cheap torch ops."""
    import contextlib
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    def to_logits(p):
        p = p.clamp(1e-6, 1 - 1e-6)
        fg = torch.log(p / (1 - p))
        return torch.cat([torch.zeros_like(fg), fg], dim=1)

    def soften(m, k):
        return F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)

    def colour_segment(rgb):
        # the synthetic object is the only saturated red: a perfect, soft-edged segmenter
        red = rgb[:, 0:1] - rgb[:, 2:3]
        return soften((red * 4 - 1).clamp(0, 1), 3)

    class Interaction:
        def __call__(self, rgb, prev, pos, neg):
            p = torch.maximum(colour_segment(rgb), torch.full_like(prev, floor)) * (1 - neg)
            return SimpleNamespace(logits=to_logits(p), aux=[], feature=torch.zeros(rgb.shape[0], 8, 8, 8))

    class Propagation:
        def __init__(self):
            self.SEFA = lambda current, previous: current

        def __call__(self, rgb, prev_round, neighbour, reference):
            p = torch.maximum(colour_segment(rgb), torch.full_like(neighbour, floor))
            return SimpleNamespace(logits=to_logits(p), aux=[], feature=torch.zeros(rgb.shape[0], 8, 8, 8))

    from napari_ipnet.model.networks import ModelConfig

    class Model:
        interaction = Interaction()
        propagation = Propagation()
        device = torch.device("cpu")
        name = "stub"
        config = ModelConfig()
        uses_objects_may_end = False

        def eval(self):
            return self

        def autocast(self):
            return contextlib.nullcontext()

        def propagation_for(self, may_end):
            return self.propagation

        def image_features(self, rgb):
            cells = torch.nn.functional.avg_pool2d(rgb, 8)
            return torch.nn.functional.normalize(torch.cat([cells, torch.ones_like(cells[:, :1])], 1), dim=1)

    return Model()


def rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # Linux fallback
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def malloc_trim() -> bool:
    """Ask glibc to return freed heap memory to the OS (separates leaks from allocator
    retention). False where unavailable."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


def worker(n: int, size: int, floor: float, real: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from napari_ipnet.session import Session

    if real:
        from napari_ipnet.model.networks import build_model

        torch.manual_seed(0)
        model = build_model()
    else:
        model = stub_model(floor)
    frames = SyntheticFrames(n, size)
    # warm up torch and numpy paths on a throw-away session, so the baseline includes them
    warm = Session(SyntheticFrames(3, size), model)
    p = np.zeros((size, size), bool)
    p[size // 2, size // 2 - 10 : size // 2 + 10] = True
    warm.interact(1, p)
    list(warm.propagate())
    del warm
    base_rss = rss_bytes()

    session = Session(frames, model)
    t = n // 2
    cy, cx = frames.centre(t)
    pos = np.zeros((size, size), bool)
    pos[cy - 2 : cy + 3, cx - frames.radius // 2 : cx + frames.radius // 2] = True
    t0 = time.perf_counter()
    session.interact(t, pos, None, object_id=1)
    done = sum(1 for _ in session.propagate())
    elapsed = time.perf_counter() - t0
    rss_after = rss_bytes()
    trimmed = rss_bytes() if malloc_trim() else None
    return {
        "frames": n,
        "propagated": done,
        "mask_bytes": session.memory_bytes(),
        "base_rss": base_rss,
        "rss_after": rss_after,
        "rss_trimmed": trimmed,
        "peak_rss": peak_rss_bytes(),
        "seconds": elapsed,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="500,1000,2000", help="sequence lengths (default 500,1000,2000)")
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    parser.add_argument("--floor", type=float, default=0.0, help="stub background probability (default 0)")
    parser.add_argument("--real", action="store_true", help="untrained EfficientNet-Lite0 instead of the stub")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the stub ops are small; more threads only contend)")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.size, args.floor, args.real, args.threads)))
        return 0

    lengths = [int(v) for v in args.lengths.split(",")]
    what = "untrained EfficientNet-Lite0 networks" if args.real else (
        f"STUB networks (cheap torch ops with the networks' call signature; background floor {args.floor})"
    )
    print(f"napari-ipnet memory benchmark: {args.size}x{args.size} RGB frames drawn lazily, one object, "
          f"interaction on the middle frame then propagation both ways; {what}")
    print("each length runs in a fresh subprocess; RSS via psutil, peak via ru_maxrss; 'after trim' = RSS after "
          "glibc malloc_trim(0) (what the allocator kept but the program no longer uses)")
    rows = []
    for n in lengths:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(n), "--size", str(args.size),
               "--floor", str(args.floor), "--threads", str(args.threads)] + (["--real"] if args.real else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {n} frames done in {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)

    mib = 1024 * 1024
    head = (f"{'frames':>7}{'masks (MiB)':>13}{'masks/frame (KiB)':>19}{'RSS base (MiB)':>16}"
            f"{'RSS after (MiB)':>17}{'after trim':>12}{'peak RSS (MiB)':>16}{'peak - base':>13}{'s/frame':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['frames']:>7}{r['mask_bytes'] / mib:>13.1f}{r['mask_bytes'] / r['frames'] / 1024:>19.1f}"
              f"{r['base_rss'] / mib:>16.1f}{r['rss_after'] / mib:>17.1f}"
              f"{(r['rss_trimmed'] or float('nan')) / mib:>12.1f}{r['peak_rss'] / mib:>16.1f}"
              f"{(r['peak_rss'] - r['base_rss']) / mib:>13.1f}{r['seconds'] / max(r['propagated'], 1):>9.4f}")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        dn = b["frames"] - a["frames"]

        def per_frame(key):
            return (b[key] - a[key]) / dn / 1024

        parts = [f"masks {per_frame('mask_bytes'):.1f} KiB", f"RSS after {per_frame('rss_after'):.1f} KiB"]
        if a["rss_trimmed"] and b["rss_trimmed"]:
            parts.append(f"RSS after malloc_trim {per_frame('rss_trimmed'):.1f} KiB")
        parts.append(f"peak RSS {per_frame('peak_rss'):.1f} KiB")
        print(f"growth per frame ({a['frames']} -> {b['frames']} frames): " + ", ".join(parts)
              + f" (one float32 {args.size}x{args.size} mask: {args.size * args.size * 4 / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
