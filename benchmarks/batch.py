"""Throughput of ``napari-ipnet batch`` with 1 and 2 workers on a LocalCluster.

Makes ``--stacks`` session files (the synthetic cell time-lapse, ``--frames`` frames of
``--size``, one round per stack with the bundled weights, images saved as
uncompressed TIFFs that the workers memory-map), then replays them all with 1 worker
and with 2 workers, the runs interleaved (processes, ``--threads`` torch threads each). The workers load the
model before the clock starts (a warm cluster), so the figure is the replay and
writing throughput; the cluster start-up is printed apart. Each configuration runs
``--repeats`` times into fresh output folders; the median time is used. Prints the
stacks per minute, the ratio, the CPU seconds per stack (user + system, in the worker:
unlike the wall time, not inflated by other programs on the machine) and the peak
resident memory of each worker process.

    python benchmarks/batch.py [--stacks 8] [--frames 16] [--size 128x160] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_sessions(root: Path, n: int, frames: int, height: int, width: int) -> list[Path]:
    """``n`` session files on TIFF stacks, one propagated round each."""
    import tifffile
    import torch

    from napari_ipnet._sample_data import make_cell_timelapse
    from napari_ipnet.session import Session
    from napari_ipnet.session_file import image_source
    from napari_ipnet.weights import load_model

    torch.set_num_threads(1)
    model = load_model("default", device="cpu")
    paths = []
    for i in range(n):
        img, gt = make_cell_timelapse(n_frames=frames, height=height, width=width, seed=i)
        tif = root / f"img{i}.tif"
        tifffile.imwrite(tif, img)  # uncompressed: memory-mapped by the workers
        s = Session(img, model)
        mid = frames // 2
        ids = [int(k) for k in np.unique(gt[mid]) if k][:2]
        s.interact_many(mid, {k: gt[mid] == k for k in ids})
        for _ in s.propagate():
            pass
        paths.append(s.save(root / f"stack{i}.ipnet", source=image_source(tif)))
    return paths


def _warm() -> int:
    from napari_ipnet import batch

    batch._model("default", "cpu")
    return os.getpid()


def _start(workers: int):
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    client.run(_warm)
    return cluster, client, time.perf_counter() - t0


def measure(paths: list[Path], workers: list[int], threads: int, repeats: int, root: Path) -> list[dict]:
    """Run the stacks ``repeats`` times on a warm cluster of each size, the sizes
    interleaved (1, 2, 1, 2, ...) so that a change in the machine's load hits both."""
    from napari_ipnet.batch import run_batch

    clusters = [_start(n) for n in workers]
    rows = [{"workers": n, "startup": c[2], "times": [], "peaks": {}, "cpu": []} for n, c in zip(workers, clusters)]
    try:
        for r in range(repeats):
            for row, (_, client, _) in zip(rows, clusters):
                out = root / f"out_w{row['workers']}_r{r}"
                t = time.perf_counter()
                results = run_batch(paths, out, client=client, threads_per_worker=threads, model="default",
                                    log=lambda s: None)
                row["times"].append(time.perf_counter() - t)
                bad = [x for x in results if x["status"] != "done"]
                if bad:
                    raise RuntimeError(f"{len(bad)} stacks failed: {bad[0].get('error')}")
                for x in results:
                    row["peaks"][x["pid"]] = max(row["peaks"].get(x["pid"], 0), x["peak_rss"])
                row["cpu"].append(sum(x["cpu_seconds"] for x in results) / len(results))
    finally:
        for cluster, client, _ in clusters:
            client.close()
            cluster.close()
    for row in rows:
        row["median"], row["cpu"] = statistics.median(row["times"]), statistics.median(row["cpu"])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", default="128x160", help="HxW")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--workers", default="1,2")
    args = p.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        paths = make_sessions(root, args.stacks, args.frames, h, w)
        print(f"{args.stacks} sessions of {args.frames}x{h}x{w} made in {time.perf_counter() - t:.1f} s; "
              f"{os.cpu_count()} CPUs; {args.threads} torch thread(s) per worker")
        load0 = os.getloadavg()[0]
        rows = measure(paths, [int(n) for n in args.workers.split(",")], args.threads, args.repeats, root)
        print(f"load average (1 min) {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print(f"{'workers':>7} {'start (s)':>9} {'median (s)':>10} {'runs (s)':>22} {'stacks/min':>10} "
          f"{'CPU s/stack':>11} {'peak RSS/worker (MiB)':>22}")
    for r in rows:
        runs = " ".join(f"{x:.1f}" for x in r["times"])
        peaks = " ".join(f"{v / 2**20:.0f}" for v in r["peaks"].values())
        print(f"{r['workers']:>7} {r['startup']:>9.1f} {r['median']:>10.2f} {runs:>22} "
              f"{60 * args.stacks / r['median']:>10.1f} {r['cpu']:>11.2f} {peaks:>22}")
    if len(rows) > 1:
        print(f"throughput ratio {rows[-1]['workers']} vs {rows[0]['workers']} workers: "
              f"{rows[0]['median'] / rows[-1]['median']:.2f}x (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
