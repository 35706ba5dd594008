"""Command line: ``napari-ipnet demo | evaluate | train | fetch-weights | propagate | batch``.

Each sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules (and torch) are imported only for the command used.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "demo": ("napari_ipnet.demo", "open napari with the sample and the widget, or --headless OUTDIR"),
    "evaluate": ("napari_ipnet.evaluation.cli", "DAVIS interactive protocol on a DAVIS folder or TIFF stacks"),
    "train": ("napari_ipnet.training.cli", "train the default model (CPU or GPU), with checkpoints and resume"),
    "fetch-weights": ("napari_ipnet.fetch", "download the original IPNet weights (non-commercial licence)"),
    "propagate": ("napari_ipnet.propagate_cli", "replay a saved session headless and write its labels"),
    "batch": ("napari_ipnet.batch", "replay many saved sessions on a Dask cluster, one task per stack"),
}

#: the top-level help's description (plain text: argparse prints it as it is)
DESCRIPTION = (
    "Interactive video object segmentation (IPNet) from the command line: the demo, "
    "the DAVIS interactive evaluation, training, and the original weights' download. "
    "Run 'napari-ipnet COMMAND --help' for a command's options."
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the module of ``command`` (if given) is imported for its options."""
    parser = argparse.ArgumentParser(prog="napari-ipnet", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
