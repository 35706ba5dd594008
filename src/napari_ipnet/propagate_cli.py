"""``napari-ipnet propagate SESSION``: replay one session file headless and write its labels.

The session's log is replayed with the recorded model (or ``--model``) on its recorded
image (or ``--frames``); a round it left pending is propagated (unless
``--no-finish``); the labels go to ``--out`` (``*.zarr``: OME-Zarr labels; ``*.tif``:
the plugin's label TIFF). With ``--save`` the finished session is written back.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", metavar="SESSION", help="a session file (.ipnet)")
    parser.add_argument("--out", default=None,
                        help="labels to write: *.zarr (OME-Zarr) or *.tif (default: SESSION name + _labels.zarr)")
    parser.add_argument("--model", default=None, help="replay with this model (default: the recorded one)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument("--frames", default=None, metavar="PATH",
                        help="the image, when its recorded path moved (same axis order as recorded)")
    parser.add_argument("--no-finish", action="store_true", help="do not propagate a round left pending")
    parser.add_argument("--save", default=None, metavar="PATH", help="write the finished session to PATH")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 2 when the replay differs from the saved labels")


def run(args: argparse.Namespace) -> int:
    from .batch import _axis_name, write_labels
    from .session_file import (
        SessionFileError,
        SessionMismatchWarning,
        load_session,
        open_source,
        read_session,
    )
    from .weights import load_model

    path = Path(args.session)
    try:
        header = read_session(path).header
        frames = None
        if args.frames:
            source = dict(header["source"], kind="file", path=str(Path(args.frames).resolve()))
            frames = open_source(source)
        model = load_model(args.model, device=args.device) if args.model else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SessionMismatchWarning)
            session = load_session(path, frames, model, device=args.device, on_mismatch="ignore")
    except (SessionFileError, FileNotFoundError) as err:
        print(f"napari-ipnet propagate: {err}", file=sys.stderr)
        return 1
    rep = session.replay_report
    print(f"{rep.describe()} ({len(header['log'])} calls, {rep.seconds:.1f} s, model {rep.model['name']})")
    if session.pending_frame is not None and not args.no_finish:
        n = sum(1 for _ in session.propagate())
        print(f"propagated the pending round: {n} frames")
    out = Path(args.out) if args.out else path.with_name(path.name.split(".")[0] + "_labels.zarr")
    write_labels(session, out, _axis_name(session))
    print(f"wrote {out}")
    if args.save:
        session.save(args.save)
        print(f"wrote {args.save}")
    return 2 if args.strict and not rep.labels_match else 0
