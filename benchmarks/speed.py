"""Interaction latency and per-frame propagation time of a Session.

Both encoders ("efficientnet_lite0" = ModelConfig(), "resnet50" = ModelConfig.paper()),
random weights (speed does not depend on the values), frames at 480p (854x480) and
1024x1024, on the CPU with a stated thread count and on CUDA when present. Each
repeat builds a fresh Session on fresh frames (so frame normalisation is included),
interacts once on frame 0 and propagates through the other frames. Configurations are
interleaved repeat by repeat (so that load from other processes hits them alike);
medians over repeats after one warm-up repeat; the encoder ratio comes from the same run.

    python benchmarks/speed.py [--threads 2] [--repeats 3] [--frames 5] [--no-cuda]

Prints a table; this is a script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time

import numpy as np

SIZES = {"480p": (480, 854), "1024x1024": (1024, 1024)}
#: "default" is the bundled trained model (EfficientNet-Lite0 at the ROI size it was
#: trained at); the other two are random-weight architectures at the paper's 256 px ROI
ENCODERS = ("default", "default-unrefined", "default-uncalibrated", "default-no-memory", "default-unfused",
            "efficientnet_lite0", "resnet50")
#: "default-unrefined": the bundled model with the scribble refinement off
#: (``Session(refine=False)``), to measure what the refinement costs per interaction;
#: "default-uncalibrated": with the propagation's calibration off
#: (``Session(calibrate=False)``): the calibration's extra network pass falls in the
#: first propagated frame, reported on its own; "default-no-memory": without the
#: memory readout (``Session(memory=False)``), to measure what it costs per frame;
#: "default-unfused": the bundled model as it ran before the inference layout (contiguous
#: tensors, BatchNorm not folded into the convolutions), to measure what that saves


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_text() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def make_model(encoder: str, device: str, half: bool = False, seed: int = 0):
    import torch

    from napari_ipnet.model.networks import ModelConfig, build_model

    torch.manual_seed(seed)
    if encoder.startswith("default"):
        from napari_ipnet.weights import load_model

        model = load_model("default", device=device, half=half)
        if encoder == "default-unfused":
            model = model.to(memory_format=torch.contiguous_format)
        return model
    config = ModelConfig() if encoder == "efficientnet_lite0" else ModelConfig.paper()
    model = build_model(config).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.use_autocast = bool(half)
    return model


def make_frames(n: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise frames with a bright disc drifting right, and a positive stroke on frame 0."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 80, (n, height, width, 3), dtype=np.uint8)
    yy, xx = np.ogrid[:height, :width]
    r = min(height, width) // 6
    for t in range(n):
        cy, cx = height // 2, width // 3 + 4 * t
        frames[t][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (220, 120, 60)
    pos = np.zeros((height, width), bool)
    pos[height // 2 - 2 : height // 2 + 3, width // 3 - r // 2 : width // 3 + r // 2] = True
    return frames, pos


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def session_options(encoder: str) -> dict:
    """The Session settings of a variant of :data:`ENCODERS` (the default's unless its name
    turns one off)."""
    return {"refine": encoder != "default-unrefined", "calibrate": encoder != "default-uncalibrated",
            "memory": encoder != "default-no-memory", "fold_batchnorm": encoder != "default-unfused"}


@contextlib.contextmanager
def batchnorm_folding(on: bool):
    """Run the EfficientNet blocks with their BatchNorm folded in (``on``, the engine's
    way) or not (the layout before, for the ``default-unfused`` variants), then restore."""
    from napari_ipnet.model.backbones import MBConv

    MBConv.fold_batchnorm = on
    try:
        yield
    finally:
        MBConv.fold_batchnorm = True


def measure_once(model, size: tuple[int, int], device: str, n_frames: int, seed: int, refine: bool = True,
                 calibrate: bool = True, memory: bool = True, fold_batchnorm: bool = True) -> tuple:
    """One repeat: (interaction wall, interaction CPU, [propagation wall], [propagation CPU]) in ms."""
    with batchnorm_folding(fold_batchnorm):
        return _measure_once(model, size, device, n_frames, seed, refine, calibrate, memory)


def _measure_once(model, size, device, n_frames, seed, refine, calibrate, memory) -> tuple:
    from napari_ipnet.session import Session

    h, w = size
    frames, pos = make_frames(n_frames, h, w, seed=seed)
    session = Session(frames, model, refine=refine, calibrate=calibrate, memory=None if memory else False)
    _sync(device)
    c0, t0 = time.process_time(), time.perf_counter()
    session.interact(0, pos, None, object_id=1)
    _sync(device)
    c1, t1 = time.process_time(), time.perf_counter()
    prop, prop_cpu = [], []
    last, last_cpu = t1, c1
    for _ in session.propagate():
        _sync(device)
        now, now_cpu = time.perf_counter(), time.process_time()
        prop.append((now - last) * 1000)
        prop_cpu.append((now_cpu - last_cpu) * 1000)
        last, last_cpu = now, now_cpu
    return (t1 - t0) * 1000, (c1 - c0) * 1000, prop, prop_cpu


def run(devices: list[tuple[str, bool]], repeats: int, n_frames: int, sizes=SIZES, encoders=ENCODERS) -> list[dict]:
    """Medians per (device, encoder, size). Configurations are interleaved repeat by
    repeat, so that load from other processes hits them alike; repeat 0 warms up."""
    rows = []
    for device, half in devices:
        models = {enc: make_model(enc, device, half) for enc in encoders}
        samples = {(enc, sz): ([], [], [], [], []) for enc in encoders for sz in sizes}
        for rep in range(repeats + 1):
            for (enc, sz), acc in samples.items():
                i, ic, p, pc = measure_once(models[enc], sizes[sz], device, n_frames, seed=rep,
                                            **session_options(enc))
                if rep > 0:
                    acc[0].append(i)
                    acc[1].append(ic)
                    # the first propagated frame carries the round's start (the
                    # calibration pass): reported apart, unless it is the only one
                    acc[2].extend(p[1:] or p)
                    acc[3].extend(pc[1:] or pc)
                    acc[4].append(p[0])
            print(f"  {device}{' fp16' if half else ''}: repeat {rep}/{repeats} done"
                  + (" (warm-up)" if rep == 0 else ""), file=sys.stderr, flush=True)
        for (enc, sz), (i, ic, p, pc, first) in samples.items():
            rows.append({
                "device": device + (" fp16" if half else ""), "encoder": enc, "size": sz,
                "interaction_ms": statistics.median(i), "propagation_ms": statistics.median(p),
                "first_frame_ms": statistics.median(first),
                "interaction_cpu_ms": statistics.median(ic), "propagation_cpu_ms": statistics.median(pc),
                "interaction_all": i, "propagation_n": len(p),
            })
        del models
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        f"{'device':<11}{'encoder':<20}{'frame size':<12}{'interaction (ms)':>18}{'propagation (ms/frame)':>24}"
        f"{'process CPU ms: inter.':>24}{'prop.':>8}",
        "-" * 117,
    ]
    for r in rows:
        lines.append(
            f"{r['device']:<11}{r['encoder']:<20}{r['size']:<12}"
            f"{r['interaction_ms']:>18.1f}{r['propagation_ms']:>24.1f}"
            f"{r['interaction_cpu_ms']:>24.1f}{r['propagation_cpu_ms']:>8.1f}"
        )
    lines.append("(wall-clock medians; 'process CPU ms' is the CPU time of all threads of this process, "
                 "which other processes on the machine inflate less than the wall clock)")
    lines.append("")
    lines.append("ratios (same run):")
    by = {(r["device"], r["encoder"], r["size"]): r for r in rows}
    def against(variant):
        """(device, size, default's row, the variant's row) where both were measured."""
        for (device, enc, size), r in by.items():
            if enc == "default" and (device, variant, size) in by:
                yield device, size, r, by[(device, variant, size)]

    for device, size, r, base in against("default-unrefined"):
        lines.append(
            f"  scribble refinement       {device:<10} {size:<10} interaction x{r['interaction_ms'] / base['interaction_ms']:.2f} "
            f"(+{r['interaction_ms'] - base['interaction_ms']:.0f} ms)   propagation x{r['propagation_ms'] / base['propagation_ms']:.2f}"
        )
    for device, size, r, base in against("default-unfused"):
        lines.append(
            f"  inference layout          {device:<10} {size:<10} interaction x{r['interaction_ms'] / base['interaction_ms']:.2f}   "
            f"propagation x{r['propagation_ms'] / base['propagation_ms']:.2f} (channels-last, BatchNorm folded / before)"
        )
    for variant, name, extra in (("default-uncalibrated", "propagation calibration", False),
                                 ("default-no-memory", "memory readout", True)):
        for device, size, r, base in against(variant):
            lines.append(
                f"  {name:<25} {device:<10} {size:<10} first propagated frame "
                f"{r['first_frame_ms']:.0f} vs {base['first_frame_ms']:.0f} ms, later frames "
                f"x{r['propagation_ms'] / base['propagation_ms']:.2f}"
                + (f" (+{r['propagation_ms'] - base['propagation_ms']:.0f} ms)" if extra else "")
            )
    for base_name in ("efficientnet_lite0", "default"):
        for (device, enc, size), r in by.items():
            if enc != "resnet50" or (device, base_name, size) not in by:
                continue
            base = by[(device, base_name, size)]
            lines.append(
                f"  resnet50 / {base_name:<18} {device:<10} {size:<10} interaction x{r['interaction_ms'] / base['interaction_ms']:.2f}   "
                f"propagation x{r['propagation_ms'] / base['propagation_ms']:.2f}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after one warm-up (default 3)")
    parser.add_argument("--frames", type=int, default=5, help="frames per repeat: 1 interaction + N-1 propagated")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    parser.add_argument("--no-cuda", action="store_true", help="skip CUDA even when present")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated: " + ", ".join(ENCODERS))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    sizes = {k: SIZES[k] for k in args.sizes.split(",")}
    encoders = tuple(args.encoders.split(","))
    devices = [] if args.no_cpu else [("cpu", False)]
    cuda = torch.cuda.is_available() and not args.no_cuda
    if cuda:
        devices += [("cuda", False), ("cuda", True)]
    print(f"napari-ipnet speed benchmark: torch {torch.__version__}, CPU '{cpu_name()}', "
          f"{os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()} "
          f"(interop {torch.get_num_interop_threads()})")
    why = "disabled" if args.no_cuda else "absent"
    print(f"CUDA: {torch.cuda.get_device_name(0) if cuda else f'not used ({why})'}")
    print(f"default*: the bundled weights; efficientnet_lite0, resnet50: random weights; {args.repeats} repeats x ({args.frames - 1} propagated frames) "
          f"after 1 warm-up; medians; {load_text()} at start")
    t0 = time.perf_counter()
    rows = run(devices, args.repeats, args.frames, sizes, encoders)
    print(table(rows))
    print(f"total {time.perf_counter() - t0:.0f} s; {load_text()} at end "
          "(a load above the thread count means other processes shared the CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
