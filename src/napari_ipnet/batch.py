"""``napari-ipnet batch SESSIONS... --out DIR``: replay many sessions on a Dask cluster.

One task per session file (one stack): the worker loads the model once, opens the
session's image lazily (a TIFF memory map, a zarr or ``.npy`` array, a video), replays
the log, propagates a round left pending, and writes into ``DIR/<session name>/``:

- ``labels.zarr``: OME-Zarr labels (NGFF v0.4 ``image-label``), written frame by frame;
- ``labels.tif``: the plugin's label TIFF (see :func:`napari_ipnet._writer.write_labels_tiff`);
- ``report.json``: timings, peak memory, whether the replay matched the saved labels;
- ``done.json``: written last and atomically; a re-run skips a session whose marker
  names the same session file (same SHA-256) and whose outputs are there.

A failed stack does not stop the others: it is reported at the end, and the exit
code is 1. The cluster is a :class:`distributed.LocalCluster` (``--workers N``, one
process each) unless ``--scheduler ADDRESS`` names a running scheduler (e.g. one that
dask-jobqueue started on SLURM; see the README). Each worker runs one stack at a time
with ``--threads-per-worker`` torch threads.

:func:`process_session` is the task, also used by ``napari-ipnet propagate``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

FORMATS = ("zarr", "tif")
DONE = "done.json"
_MODELS: dict = {}  # per worker process: (name, device) -> model


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (bytes)."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib) * (1 if sys.platform == "darwin" else 1024)


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Let glibc serve large allocations from the heap again (once per process).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``; setting it turns
    off glibc's adaptive mmap threshold, so every large tensor the networks allocate
    is a fresh ``mmap`` whose pages the kernel zeroes: measured here, the replay of
    two stacks took 5.6 s of system time and 21 s instead of 0.1 s and 8 s. This sets
    the mmap threshold to 32 MiB and the trim threshold to 128 MiB (``mallopt``).
    Returns whether it did (Linux with glibc only).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(-3, 32 * 2**20)) and bool(libc.mallopt(-1, 128 * 2**20))  # M_MMAP_/M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl)
        return False
    _MALLOC_TUNED = ok
    return ok


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _model(name: str | None, device: str):
    from .weights import load_model

    key = (name, device)
    if key not in _MODELS:
        _MODELS[key] = load_model(name, device=device)
    return _MODELS[key]


def write_labels(session, target: str | os.PathLike, axis: str = "t") -> Path:
    """Write a session's labels to ``target``: ``*.zarr`` (OME-Zarr) or ``*.tif``/``*.tiff``."""
    from ._writer import write_labels_tiff
    from .labels_zarr import write_labels_zarr

    p = Path(os.fspath(target))
    suffix = p.suffix.lower()
    if suffix == ".zarr":
        dtype = "uint8" if max(session.object_ids, default=0) < 256 else "uint16"  # as Session.labels
        return write_labels_zarr(p, session.label_frame, session.shape, dtype=dtype, axis=axis, name=p.stem)
    if suffix in (".tif", ".tiff"):
        tmp = p.with_name(f".{p.stem}.{os.getpid()}.part{p.suffix}")
        try:
            write_labels_tiff(str(tmp), session.labels, {})
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        return p
    raise ValueError(f"labels are written as .zarr or .tif, not {p.name!r}")


def _axis_name(session) -> str:
    """'z' for a session whose objects may end (a z-stack), else 't'."""
    return "z" if session.objects_may_end else "t"


def process_session(
    session_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    model: str | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    formats: Sequence[str] = FORMATS,
    finish: bool = True,
    skip_done: bool = True,
) -> dict:
    """Replay one session file and write its labels (the batch task).

    Parameters
    ----------
    session_path : str or os.PathLike
        The session file.
    out_dir : str or os.PathLike
        This stack's output folder.
    model : str, optional
        Model to replay with (``"default"``, ``"ipnet-paper"``, a checkpoint path);
        None: the one each session recorded.
    device : str
        Torch device.
    threads : int, optional
        ``torch.set_num_threads`` for this task (the worker's share of the cores).
    formats : sequence of str
        Among ``"zarr"`` and ``"tif"``.
    finish : bool
        Propagate a round the session left pending.
    skip_done : bool
        Return at once when ``out_dir`` has a done marker for this very file.

    Returns
    -------
    dict
        ``status`` ("done", "skipped" or "failed"), ``session``, ``out``, ``seconds``,
        ``peak_rss``, ``labels_match``, ``error`` (on failure) ...; never raises for
        a bad stack, so that one failure does not stop a batch.
    """
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    tune_malloc()
    session_path, out = Path(os.fspath(session_path)), Path(os.fspath(out_dir))
    result = {"session": str(session_path), "out": str(out), "pid": os.getpid()}
    try:
        digest = file_sha256(session_path)
        if skip_done and is_done(out, digest, formats):
            return dict(result, status="skipped", seconds=0.0, peak_rss=peak_rss_bytes())
        import torch

        from .session_file import SessionMismatchWarning, load_session, read_session

        if threads:
            torch.set_num_threads(int(threads))
        if model is None:
            name = read_session(session_path).header["model"]["name"]
        else:
            name = model
        net = _model(name, device)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SessionMismatchWarning)  # reported below
            session = load_session(session_path, None, net, on_mismatch="ignore")
        rep = session.replay_report
        t_replay = time.perf_counter() - t0
        propagated = 0
        if finish and session.pending_frame is not None:
            propagated = sum(1 for _ in session.propagate())
        out.mkdir(parents=True, exist_ok=True)
        (out / DONE).unlink(missing_ok=True)
        written = [str(write_labels(session, out / f"labels.{fmt}", _axis_name(session))) for fmt in formats]
        report = dict(
            result, status="done", model=rep.model, same_model=rep.same_model, labels_match=rep.labels_match,
            differing_pixels=rep.differing_pixels, finished_pending_round=propagated, shape=list(session.shape),
            replay_seconds=round(t_replay, 3), seconds=round(time.perf_counter() - t0, 3),
            cpu_seconds=round(_cpu_seconds() - cpu0, 3),
            peak_rss=peak_rss_bytes(), torch_threads=torch.get_num_threads(), outputs=written,
        )
        _write_json_atomic(out / "report.json", report)
        _write_json_atomic(out / DONE, {"session": str(session_path), "sha256": digest, "outputs": written})
        return report
    except Exception as err:  # noqa: BLE001 - a bad stack is reported, the batch goes on
        return dict(result, status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(),
                    seconds=round(time.perf_counter() - t0, 3), peak_rss=peak_rss_bytes())


def is_done(out_dir: str | os.PathLike, digest: str, formats: Sequence[str] = FORMATS) -> bool:
    """Whether ``out_dir`` holds finished outputs of the session file with SHA-256 ``digest``."""
    marker = Path(os.fspath(out_dir)) / DONE
    try:
        done = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    outs = [Path(p) for p in done.get("outputs", [])]
    want = {f"labels.{fmt}" for fmt in formats}
    return done.get("sha256") == digest and want <= {p.name for p in outs} and all(p.exists() for p in outs)


def stack_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Output folder names: the session file names without suffix (duplicates refused)."""
    names = [Path(os.fspath(p)).name.split(".")[0] or Path(p).stem for p in paths]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"several session files are named {dup[0]!r}: their outputs would collide; rename them")
    return names


def run_batch(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    model: str | None = None,
    device: str = "cpu",
    formats: Sequence[str] = FORMATS,
    finish: bool = True,
    log: Callable[[str], None] = print,
    client=None,
) -> list[dict]:
    """Process many session files, one task each, on a Dask cluster.

    Parameters
    ----------
    paths : sequence of path
        Session files.
    out : path
        Output folder; each stack writes into ``out/<name>/``.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); default: a LocalCluster.
    workers : int
        LocalCluster workers (processes, unless ``processes`` is False).
    threads_per_worker : int
        Torch threads per task. A worker runs one stack at a time.
    processes : bool
        LocalCluster workers as processes (True) or threads of this process.
    model, device, formats, finish :
        See :func:`process_session`.
    log : callable
        Where progress lines go.
    client : distributed.Client, optional
        Use this client instead of making one.

    Returns
    -------
    list of dict
        One :func:`process_session` result per path, in the order given.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the batch command needs dask distributed: pip install 'napari-ipnet[batch]'") from err
    from tqdm import tqdm

    paths = [Path(os.fspath(p)) for p in paths]
    names = stack_names(paths)
    out = Path(os.fspath(out))
    out.mkdir(parents=True, exist_ok=True)
    cluster = own_client = None
    if client is None:
        if scheduler:
            client = own_client = Client(scheduler)
        else:
            cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=processes,
                                   dashboard_address=":0")
            client = own_client = Client(cluster)
    try:
        link = getattr(client, "dashboard_link", None)
        log(f"napari-ipnet batch: {len(paths)} stacks, {len(client.scheduler_info().get('workers', {}))} workers"
            + (f", dashboard {link}" if link else ""))
        futures = {}
        for p, name in zip(paths, names):
            f = client.submit(process_session, str(p.resolve()), str((out / name).resolve()), model, device,
                              threads_per_worker, tuple(formats), finish, True, key=f"ipnet-{name}-{time.time_ns()}",
                              pure=False)
            futures[f] = p
        results: dict[Path, dict] = {}
        bar = tqdm(total=len(paths), unit="stack", disable=not sys.stderr.isatty())
        for f in as_completed(futures):
            p = futures[f]
            try:
                r = f.result()
            except Exception as err:  # noqa: BLE001 - a worker died (memory), the batch goes on
                r = {"session": str(p), "status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": 0.0}
            results[p] = r
            bar.update(1)
            n = len(results)
            msg = f"[{n}/{len(paths)}] {p.name}: {r['status']}"
            if r["status"] == "done":
                msg += (f" in {r['seconds']:.1f} s, peak {r['peak_rss'] / 2**20:.0f} MiB"
                        + ("" if r["labels_match"] else f", replay differs from the saved labels in "
                           f"{r['differing_pixels']} pixels"))
            elif r["status"] == "failed":
                msg += f": {r['error']}"
            (tqdm.write if not bar.disable else log)(msg)
        bar.close()
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
    ordered = [results[p] for p in paths]
    failed = [r for r in ordered if r["status"] == "failed"]
    done = sum(r["status"] == "done" for r in ordered)
    skipped = sum(r["status"] == "skipped" for r in ordered)
    log(f"{done} done, {skipped} skipped (already done), {len(failed)} failed")
    for r in failed:
        log(f"FAILED {r['session']}: {r['error']}")
    return ordered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sessions", nargs="+", metavar="SESSION", help="session files (napari-ipnet .ipnet)")
    parser.add_argument("--out", required=True, help="output folder: one subfolder per stack")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler (tcp://...)")
    where.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1, metavar="K",
                        help="torch threads per worker; a worker runs one stack at a time (default 1)")
    parser.add_argument("--model", default=None, help="replay with this model (default: each session's own)")
    parser.add_argument("--device", default="cpu", help="torch device on the workers (default cpu)")
    parser.add_argument("--format", default="zarr,tif", help="outputs, among zarr and tif (default zarr,tif)")
    parser.add_argument("--no-finish", action="store_true", help="do not propagate a round left pending")


def _formats(text: str) -> tuple[str, ...]:
    fmts = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise SystemExit(f"--format takes zarr and/or tif, got {text!r}")
    return fmts


def run(args: argparse.Namespace) -> int:
    results = run_batch(
        args.sessions, args.out, scheduler=args.scheduler, workers=args.workers,
        threads_per_worker=args.threads_per_worker, model=args.model, device=args.device,
        formats=_formats(args.format), finish=not args.no_finish,
    )
    return 1 if any(r["status"] == "failed" for r in results) else 0
