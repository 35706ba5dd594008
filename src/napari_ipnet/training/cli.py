"""``napari-ipnet train``: train the default model, with checkpoints and resume."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis", type=Path, default=None, help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p)")
    parser.add_argument("--holdout", default=None, help="comma-separated sequences kept out of training (validation)")
    parser.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder (checkpoints, log.csv)")
    parser.add_argument("--steps", type=int, default=20000,
                        help="train up to this step (a resumed run counts on from its checkpoint; default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="clips per training step (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=3, help="frames per training clip")
    parser.add_argument("--rounds", type=int, default=2, help="simulated interaction rounds per clip")
    parser.add_argument("--lr", type=float, default=2e-4,
                        help="learning rate of the decoders, the fusion and the extra-input convolutions; the "
                             "encoder trunks get half of it (default: %(default)g)")
    parser.add_argument("--decay-steps", type=int, default=0,
                        help="decay the learning rate linearly to a tenth over the last N of --steps")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights' initialisation, the clips and the simulated user; the same "
                             "seed and thread count repeat a run to the bit (default: %(default)s)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then Apple MPS, then the CPU), cuda, cuda:N, mps or cpu; CUDA trains "
                             "with mixed precision (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--hours", type=float, default=None, help="stop (with a checkpoint) after this many hours")
    parser.add_argument("--val-every", type=int, default=250, metavar="N",
                        help="with --davis: validate every N steps and at the end (mean IoU per round on held-out "
                             "DAVIS clips and synthetic cells and nuclei, in log.csv; default: %(default)s)")
    parser.add_argument("--roi", type=int, default=256, help="ROI size (the exported model runs at this size)")
    parser.add_argument("--export", type=Path, default=None, help="write the final model as safetensors here")
    parser.add_argument("--nuclei-ending", type=float, default=0.0,
                        help="share of synthetic z-series whose target nucleus ends inside the clip (default 0: "
                             "a model trained with 0.5 dropped dim cells of time-lapses)")
    parser.add_argument("--dim-frames", type=float, default=0.0,
                        help="share of clips with one frame darkened to 35-70 %% (mask unchanged)")
    parser.add_argument("--rods-share", type=float, default=0.0, metavar="S",
                        help="share S of the generated cell clips that show a dense colony of touching rod-shaped "
                             "bacteria that drifts, grows and divides (phase contrast or fluorescence, like the "
                             "trpL time-lapse); with --davis, validation gets rod clips too (default 0: none)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start a new run from the weights of this checkpoint (.pt or .safetensors)")
    parser.add_argument("--good-neighbour", type=float, default=0.0, metavar="P",
                        help="share of clips whose propagation starts from the slightly perturbed ground truth "
                             "of the neighbouring frame instead of the model's own mask (default 0)")
    parser.add_argument("--freeze-interaction", action="store_true",
                        help="train only the propagation network; the interaction network keeps the weights "
                             "of --init (to fit a propagation network to a given interaction network)")
    parser.add_argument("--as-ending-network-of", type=Path, default=None, metavar="BASE",
                        help="with --export: write the model file BASE with this run's propagation network "
                             "added as its network for objects that may end (a --nuclei-ending run); "
                             "the config, --first-reference included, is BASE's")
    parser.add_argument("--first-reference", action="store_true",
                        help="the exported model propagates from each object's first-round reference "
                             "instead of fusing every round's (fuse_references=False)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .data import DEFAULT_HOLDOUT, ClipSampler, list_sequences
    from .loop import TrainConfig, add_ending_network, export, train

    if args.threads:
        torch.set_num_threads(args.threads)
    holdout = tuple(args.holdout.split(",")) if args.holdout else DEFAULT_HOLDOUT
    try:
        seqs = [s for s in list_sequences(args.davis) if s not in holdout] if args.davis else []
        print(f"training sequences: {len(seqs)}; held out: {','.join(holdout) if args.davis else '-'}")
        cfg = TrainConfig(steps=args.steps, batch=args.batch, frames=args.frames, rounds=args.rounds,
                          lr=args.lr, encoder_lr=args.lr / 2, seed=args.seed, val_every=args.val_every,
                          roi_size=args.roi, decay_steps=args.decay_steps,
                          init=str(args.init) if args.init else None, freeze_interaction=args.freeze_interaction,
                          good_neighbour=args.good_neighbour, nuclei_ending=args.nuclei_ending,
                          dim_frames=args.dim_frames, rods_share=args.rods_share)
        if not 0.0 <= args.rods_share <= 1.0:
            raise ValueError(f"--rods-share must be between 0 and 1, got {args.rods_share}")
        sampler = ClipSampler(args.davis, seqs, n_frames=args.frames, seed=args.seed,
                              nuclei_ending=args.nuclei_ending, dim_frames=args.dim_frames,
                              rods_share=args.rods_share)
        val_clips = None
        if args.davis:
            vs = ClipSampler(args.davis, [s for s in holdout if s in list_sequences(args.davis)], n_frames=5,
                             seed=999, mix=(1.0, 0, 0, 0))
            val_clips = [vs.sample() for _ in range(8)] if vs.data else None
            cells = np.random.default_rng(4242)
            from .data import synthetic_cells, synthetic_nuclei
            val_clips = (val_clips or []) + [synthetic_cells(cells, 5) for _ in range(4)]
            val_clips += [synthetic_nuclei(cells, 5) for _ in range(4)]
            if args.rods_share > 0:  # from a generator of their own: the other clips stay as they were
                from .data import synthetic_rods
                rods = np.random.default_rng(4343)
                val_clips += [synthetic_rods(rods, 5) for _ in range(4)]
    except (OSError, ValueError) as err:  # unreadable data or settings, before any training
        print(f"error: {err}", file=sys.stderr)
        return 2
    ckpt = train(args.out, sampler, val_clips, cfg, device=args.device,
                 time_limit=args.hours * 3600 if args.hours else None)
    if args.export:
        if args.as_ending_network_of is not None:
            path = add_ending_network(args.as_ending_network_of, ckpt, args.export)
            print(f"exported {args.as_ending_network_of} with this run's propagation network for ending objects "
                  f"to {path}")
        else:
            path = export(ckpt, args.export, fuse_references=not args.first_reference)
            print(f"exported {path}")
    return 0
