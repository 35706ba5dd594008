"""``napari-ipnet evaluate``: the DAVIS interactive protocol from the command line.

DAVIS-layout folder::

    napari-ipnet evaluate ROOT [--sequences a,b] [--rounds 8] [--model default]
                               [--device auto] [--out summary.json] [--plot curve.png]

TIFF image stack with its label stack (all objects in one session; J per object and
their mean)::

    napari-ipnet evaluate IMAGE.tif --labels LABELS.tif --axis t --z 2 --rounds 3

Torch and the model are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Test hook: a callable ``args -> session_factory`` used instead of loading a model.
_session_factory_override = None


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def _name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="DAVIS-layout folder, or an image TIFF stack (with --labels)")
    g = parser.add_argument_group("protocol")
    g.add_argument("--rounds", type=int, default=8, help="interaction rounds per sequence (default 8)")
    g.add_argument("--max-time", type=float, default=None, metavar="S",
                   help="time budget per object in seconds for the AUC (default: rounds x longest round)")
    g.add_argument("--no-f", action="store_true", help="skip the boundary measure F (faster)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--choose-frame", choices=("worst", "confidence"), default="worst",
                   help="frame the robot corrects after round 1: the worst by the ground truth (DAVIS), or "
                        "the one the session is least confident of (as a user with the confidence strip)")
    g.add_argument("--oracle", type=int, default=None, metavar="MARGIN",
                   help="instead of the rounds: give the ground truth of the first frame as scribbles "
                        "(objects eroded by MARGIN px, background beyond MARGIN px) and report J of that "
                        "frame (the interaction ceiling) and propagated from it (the propagation ceiling)")
    m = parser.add_argument_group("model")
    m.add_argument("--model", default="default",
                   help="default | ipnet-paper | PATH to a checkpoint | random (untrained, plumbing only)")
    m.add_argument("--weights-dir", default=None, help="folder of the ipnet-paper checkpoints")
    m.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    m.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    m.add_argument("--reference-fusion", choices=("model", "on", "off"), default="model",
                   help="fuse every round's reference (on, the paper) or propagate from each object's "
                        "first-round reference (off); default: what the model's config says")
    m.add_argument("--refine", choices=("on", "off"), default="on",
                   help="refine each interaction with the strokes as constraints (Session refine; default on)")
    m.add_argument("--calibrate", choices=("on", "first-round", "off"), default="on",
                   help="calibrate the propagation on each round's annotated frame (on), on an object's "
                        "first annotated frame only (first-round: the rule before correction rounds were "
                        "calibrated), or not at all (Session calibrate and calibrate_corrections; default on)")
    m.add_argument("--memory", choices=("on", "off"), default="on",
                   help="propagation also reads each object's annotated frames and the frame it comes "
                        "from by image features (Session memory; default on)")
    m.add_argument("--objects-may-end", choices=("auto", "on", "off"), default="auto",
                   help="let objects end inside the sequence (Session objects_may_end); auto: on for "
                        "--axis z of a TIFF stack, off otherwise. Used by models made for it (the bundled one)")
    d = parser.add_argument_group("DAVIS folder")
    d.add_argument("--sequences", type=_name_list, default=None, help="comma-separated sequence names (default all)")
    d.add_argument("--resolution", default="480p", help="sub-folder of JPEGImages/Annotations (default 480p)")
    d.add_argument("--scribble-index", type=int, default=1,
                   help="human first scribble Scribbles/<seq>/NNN.json (default 1; 0: always use the robot)")
    t = parser.add_argument_group("TIFF stacks")
    t.add_argument("--labels", default=None, help="label TIFF stack matching the image stack")
    t.add_argument("--axis", choices=("t", "z"), default="t", help="propagate along time or z (default t)")
    t.add_argument("--z", type=int, default=None, help="z plane for --axis t (default: the middle plane)")
    t.add_argument("--t", type=int, default=None, help="time point for --axis z (default 0)")
    t.add_argument("--objects", type=_int_list, default=None, help="comma-separated label ids to evaluate")
    t.add_argument("--max-objects", type=int, default=None,
                   help="without --objects: the N ids present in most slices (default: every object "
                        "present in at least half of the slices)")
    t.add_argument("--one-at-a-time", action="store_true",
                   help="segment each object in a session of its own (default: all objects in one "
                        "session, as a user does)")
    t.add_argument("--keep-ids", action="store_true",
                   help="trust the label ids through the slices (default: link objects by overlap, "
                        "since stored ids often jump between cells)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", default=None, help="write the summary as JSON")
    o.add_argument("--plot", default=None, help="write J versus round and versus time as PNG")


def _model_factory(args):
    import torch

    from ..session import Session

    if args.threads:
        torch.set_num_threads(int(args.threads))
    if args.model == "random":
        from ..model.networks import build_model
        from ..weights import resolve_device

        print("warning: --model random uses untrained weights; the scores only check the plumbing",
              file=sys.stderr)
        model = build_model().to(resolve_device(args.device))
    else:
        from ..weights import load_model

        model = load_model(args.model, weights_dir=args.weights_dir, device=args.device)
    if args.reference_fusion != "model":
        import dataclasses

        model.config = dataclasses.replace(model.config, fuse_references=args.reference_fusion == "on")
    may_end = objects_may_end(args)
    refine = getattr(args, "refine", "on") == "on"
    calibrate = getattr(args, "calibrate", "on")
    memory = None if getattr(args, "memory", "on") == "on" else False  # None: the session's default
    return (lambda frames: Session(frames, model, objects_may_end=may_end, refine=refine,
                                   calibrate=calibrate != "off", calibrate_corrections=calibrate == "on",
                                   memory=memory)), model


def objects_may_end(args) -> bool:
    """``--objects-may-end``, with auto resolved by the axis name (on along z of a TIFF stack).

    The rule is :func:`napari_ipnet.axes.objects_may_end_default`, the widget's and
    the headless demo's; a DAVIS folder (videos) has no axis name: off.
    """
    if args.objects_may_end != "auto":
        return args.objects_may_end == "on"
    from ..axes import objects_may_end_default

    return objects_may_end_default(None if Path(args.source).is_dir() else args.axis)


def _units(args):
    from .datasets import iter_davis, load_tiff_units

    src = Path(args.source)
    if src.is_dir():
        for flag, value in (("--labels", args.labels), ("--objects", args.objects), ("--z", args.z), ("--t", args.t)):
            if value is not None:
                raise ValueError(f"{flag} is for TIFF stacks; a folder is read as a DAVIS layout")
        index = args.scribble_index if args.scribble_index and args.scribble_index > 0 else None
        return iter_davis(src, args.sequences, args.resolution, index), {"source": str(src), "format": "davis"}
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist")
    if not args.labels:
        raise ValueError("an image stack needs its label stack: add --labels LABELS.tif")
    if args.sequences:
        raise ValueError("--sequences is for DAVIS folders")
    link = not args.keep_ids
    together = not args.one_at_a_time
    units = load_tiff_units(src, args.labels, args.axis, args.z, args.t, args.objects, args.max_objects,
                            link=link, together=together)
    return units, {"source": str(src), "labels": str(args.labels), "format": "tiff", "axis": args.axis,
                   "ids": "linked by overlap" if link else "as stored",
                   "objects_in_one_session": together}


def run(args) -> int:
    from .protocol import format_table, run_protocol

    if args.rounds < 1:
        print("error: --rounds must be at least 1", file=sys.stderr)
        return 2
    try:
        units, settings = _units(args)
        if _session_factory_override is not None:
            factory = _session_factory_override(args)
            settings["model"] = "override"
        else:
            factory, model = _model_factory(args)
            settings.update(model=str(getattr(model, "name", args.model)), device=str(model.device),
                            encoder=model.config.encoder, fuse_references=model.config.fuse_references,
                            objects_may_end=objects_may_end(args), refine=args.refine == "on",
                            calibrate=args.calibrate != "off", calibrate_corrections=args.calibrate == "on",
                            memory=args.memory == "on",
                            model_uses_objects_may_end=model.uses_objects_may_end)
            if args.threads:
                settings["threads"] = int(args.threads)
        if args.oracle is not None:
            if args.oracle < 0:
                raise ValueError("--oracle MARGIN must be >= 0 pixels")
            from .protocol import format_oracle_table, run_oracle

            summary = run_oracle(units, factory, args.oracle, settings=settings, progress=not args.quiet)
            print(format_oracle_table(summary))
            return _write_outputs(summary, args)
        summary = run_protocol(
            units, factory, rounds=args.rounds, max_time=args.max_time,
            progress=not args.quiet, boundary=not args.no_f, settings=settings,
            choose_frame=args.choose_frame,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # weights missing or unreadable, device unavailable
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(summary))
    return _write_outputs(summary, args)


def _write_outputs(summary: dict, args) -> int:
    from .protocol import save_summary

    if args.out:
        print(f"summary written to {save_summary(summary, args.out)}")
    if args.plot:
        from .plots import plot_summary

        print(f"plot written to {plot_summary(summary, args.plot)}")
    return 0
