"""The whole GPU check in one go: CUDA versus CPU equality, speed and memory.

    python benchmarks/gpu_check.py [--quick]

1. Equality on fixed inputs, for both encoders with the same random weights on both
   devices: each network alone (identical ROI inputs; softmax probabilities and
   features), then a Session (interaction + propagation over 6 frames at 480p),
   in float32 (TF32 off) and in float16 autocast. The trained default weights are
   checked too when installed. Tolerances are printed with the numbers; any failure
   makes the exit status 1.
2. Speed: interaction latency and per-frame propagation time at 480p and 1024x1024,
   CPU (all cores) and CUDA float32 / float16 (reuses ``speed.py``).
3. Memory: peak CUDA memory (``torch.cuda.max_memory_allocated``), host RSS and
   stored mask bytes of a Session over a long lazily drawn 1024x1024 sequence.

Sized to finish well within ten minutes on one recent GPU. Without CUDA it prints why
and exits 0 (``--simulate-cpu`` runs the same code with the CPU standing in for the GPU,
at small sizes, to check the script itself).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import memory as membench  # noqa: E402  (benchmarks/memory.py)
import speed as speedbench  # noqa: E402  (benchmarks/speed.py)

TOL = {
    # max |p_gpu - p_cpu| of softmax foreground probabilities
    "net_fp32": 1e-3,
    "net_fp16": 3e-2,
    "session_fp32": 2e-3,
    # share of pixels whose label differs (session outputs)
    "labels_fp32": 1e-3,
    "labels_fp16": 1e-2,
}


def _fixed_roi_inputs(seed: int = 0, size: int = 256):
    import torch

    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(1, 3, size, size, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = (((yy - size * 0.45) ** 2 + (xx - size * 0.5) ** 2) < (size * 0.22) ** 2).float()[None, None]
    rgb = rgb * 0.3 + blob * torch.tensor([0.8, 0.4, 0.2]).view(1, 3, 1, 1)
    pos = torch.zeros_like(blob)
    pos[..., int(size * 0.45) - 2 : int(size * 0.45) + 2, int(size * 0.4) : int(size * 0.6)] = 1
    neg = torch.zeros_like(blob)
    neg[..., int(size * 0.9) : int(size * 0.9) + 3, int(size * 0.1) : int(size * 0.9)] = 1
    return rgb, blob * 0.9, pos, neg


def _prob(logits):
    import torch

    return torch.softmax(logits.float(), dim=1)[:, 1]


def network_equality(model_cpu, model_dev, device: str, half: bool) -> dict:
    """Both networks on identical ROI inputs; max abs differences."""
    import torch

    rgb, prev, pos, neg = _fixed_roi_inputs()
    out = {}
    with torch.inference_mode():
        ic = model_cpu.interaction(rgb, prev, pos, neg)
        ctx = torch.autocast("cuda", dtype=torch.float16) if (half and device.startswith("cuda")) else _null()
        with ctx:
            ig = model_dev.interaction(*(x.to(device) for x in (rgb, prev, pos, neg)))
        out["interaction_p"] = float((_prob(ic.logits) - _prob(ig.logits).cpu()).abs().max())
        fc, fg = ic.feature, ig.feature.float().cpu()
        out["interaction_feature_rel"] = float((fc - fg).abs().max() / (fc.abs().max() + 1e-12))
        ref = ic.feature
        pc = model_cpu.propagation(rgb, prev, prev.round(), ref)
        with ctx:
            pg = model_dev.propagation(*(x.to(device) for x in (rgb, prev, prev.round(), ref)))
        out["propagation_p"] = float((_prob(pc.logits) - _prob(pg.logits).cpu()).abs().max())
        fused_c = model_cpu.propagation.SEFA(ref, ref * 0.5)
        fused_g = model_dev.propagation.SEFA(ref.to(device), ref.to(device) * 0.5).cpu()
        out["fusion_rel"] = float((fused_c - fused_g).abs().max() / (fused_c.abs().max() + 1e-12))
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def session_equality(model_cpu, model_dev, n_frames: int, size) -> dict:
    """Interaction on frame 0, propagation through the rest, on both devices."""
    from napari_ipnet.session import Session

    frames, pos = speedbench.make_frames(n_frames, *size, seed=7)
    res = {}
    probs = {}
    labels = {}
    for key, model in (("cpu", model_cpu), ("dev", model_dev)):
        s = Session(frames, model)
        s.interact(0, pos, None, object_id=1)
        list(s.propagate())
        probs[key] = np.stack([s.probability(t, 1) for t in range(n_frames)])
        labels[key] = s.labels
    d = np.abs(probs["cpu"] - probs["dev"])
    res["interaction_frame_p"] = float(d[0].max())
    res["propagated_p_max"] = float(d[1:].max()) if n_frames > 1 else 0.0
    res["propagated_p_mean"] = float(d[1:].mean()) if n_frames > 1 else 0.0
    res["labels_differ"] = float((labels["cpu"] != labels["dev"]).mean())
    res["foreground_share"] = float((labels["cpu"] > 0).mean())
    return res


def equality(device: str, encoders, n_frames: int, size, lines: list, failures: list) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    models = []
    for enc in encoders:
        models.append((f"random {enc}", speedbench.make_model(enc, "cpu", seed=1)))
    try:
        from napari_ipnet.weights import load_model

        models.append(("default (trained)", load_model("default", device="cpu", half=False)))
    except Exception as err:  # noqa: BLE001 - report and go on
        lines.append(f"  default weights: not checked ({type(err).__name__}: {str(err).splitlines()[0][:90]})")
    for name, m_cpu in models:
        for half in (False, True):
            m_dev = copy.deepcopy(m_cpu).to(device)
            m_dev.use_autocast = half
            m_cpu.use_autocast = False
            tag = "fp16" if half else "fp32"
            net = network_equality(m_cpu, m_dev, device, half)
            ses = session_equality(m_cpu, m_dev, n_frames, size)
            net_tol = TOL["net_fp16" if half else "net_fp32"]
            lab_tol = TOL["labels_fp16" if half else "labels_fp32"]
            ok_net = net["interaction_p"] <= net_tol and net["propagation_p"] <= net_tol
            ok_ses = ses["labels_differ"] <= lab_tol and (half or ses["interaction_frame_p"] <= TOL["session_fp32"])
            lines.append(
                f"  {name:<28}{tag:<6}net p diff I {net['interaction_p']:.1e} P {net['propagation_p']:.1e} "
                f"(tol {net_tol:.0e}); feature rel {net['interaction_feature_rel']:.1e}; fusion rel "
                f"{net['fusion_rel']:.1e} | session p diff frame0 {ses['interaction_frame_p']:.1e}, "
                f"propagated max {ses['propagated_p_max']:.1e} mean {ses['propagated_p_mean']:.1e}; "
                f"labels differ {ses['labels_differ'] * 100:.3f}% (tol {lab_tol * 100:.1f}%, fg "
                f"{ses['foreground_share'] * 100:.1f}%)  {'PASS' if ok_net and ok_ses else 'FAIL'}"
            )
            if not (ok_net and ok_ses):
                failures.append(f"equality {name} {tag}")
            del m_dev


def gpu_memory(device: str, encoders, n_frames: int, size: int, lines: list) -> None:
    import torch

    from napari_ipnet.session import Session

    for enc in encoders:
        for half in (False, True):
            model = speedbench.make_model(enc, device, half)
            frames = membench.SyntheticFrames(n_frames, size)
            cy, cx = frames.centre(n_frames // 2)
            pos = np.zeros((size, size), bool)
            pos[cy - 2 : cy + 3, cx - frames.radius // 2 : cx + frames.radius // 2] = True
            cuda = device.startswith("cuda")
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                weights = torch.cuda.memory_allocated()
            rss0 = membench.rss_bytes()
            options = speedbench.session_options(enc)
            s = Session(frames, model, refine=options["refine"], calibrate=options["calibrate"],
                        memory=None if options["memory"] else False)
            with speedbench.batchnorm_folding(options["fold_batchnorm"]):
                t0 = time.perf_counter()
                s.interact(n_frames // 2, pos, None, 1)
                n = sum(1 for _ in s.propagate())
                dt = time.perf_counter() - t0
            peak = (torch.cuda.max_memory_allocated() - weights) / 2**20 if cuda else float("nan")
            lines.append(
                f"  {enc:<20}{'fp16' if half else 'fp32':<6}{n_frames} frames {size}x{size}: peak CUDA "
                f"above weights {peak:8.1f} MiB; host RSS +{(membench.rss_bytes() - rss0) / 2**20:7.1f} MiB; "
                f"masks {s.memory_bytes() / 2**20:6.1f} MiB; {dt / max(n, 1) * 1000:6.1f} ms/frame"
            )
            del s, model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and frames")
    parser.add_argument("--simulate-cpu", action="store_true", help="run on the CPU at small sizes (script check)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: equality,speed,memory")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("GPU check skipped: torch is not installed")
        return 0
    skip = set(filter(None, args.skip.split(",")))
    if torch.cuda.is_available():
        device = "cuda"
        print(f"GPU check on {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB); {os.cpu_count()} CPUs")
    elif args.simulate_cpu:
        device = "cpu"
        print("GPU check SIMULATED on the CPU (no CUDA): numbers below are not GPU numbers")
    else:
        print(
            "GPU check skipped: torch sees no CUDA device "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}). "
            "Run it on a machine with an NVIDIA GPU and a CUDA build of torch; "
            "benchmarks/speed.py and benchmarks/memory.py measure the CPU."
        )
        return 0

    sim = device == "cpu"
    encoders = speedbench.ENCODERS
    t_start = time.perf_counter()
    failures: list[str] = []

    if "equality" not in skip:
        lines: list[str] = []
        size = (96, 128) if sim else (480, 854)
        equality(device, encoders, 3 if sim else 6, size, lines, failures)
        print(f"\n1. CUDA vs CPU on fixed inputs ({size[1]}x{size[0]} session, same random weights)")
        print("\n".join(lines), flush=True)

    if "speed" not in skip:
        torch.set_num_threads(max(1, (os.cpu_count() or 2)))
        devices = [("cpu", False)] if sim else [("cpu", False), ("cuda", False), ("cuda", True)]
        sizes = {"small": (96, 128)} if sim else speedbench.SIZES
        repeats = 1 if (sim or args.quick) else 3
        n_frames = 2 if sim else (5 if args.quick else 9)
        print(f"\n2. Speed (torch CPU threads {torch.get_num_threads()}; {repeats} repeats after a warm-up; medians)",
              flush=True)
        rows = speedbench.run(devices, repeats, n_frames, sizes, encoders)
        print(speedbench.table(rows), flush=True)

    if "memory" not in skip:
        lines = []
        n = 20 if sim else (150 if args.quick else 400)
        size = 128 if sim else 1024
        gpu_memory(device, encoders, n, size, lines)
        print(f"\n3. Memory of a {n}-frame session (frames drawn lazily)")
        print("\n".join(lines), flush=True)

    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all equality checks passed" if "equality" not in skip else "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
