"""Evaluation: J / F metrics, the DAVIS scribble robot and the interactive protocol.

Nothing here imports torch; the names below are loaded on first use::

    from napari_ipnet.evaluation import run_protocol, load_davis_sequence, ScribbleRobot
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "jaccard": "metrics",
    "f_measure": "metrics",
    "boundary_map": "metrics",
    "boundary_tolerance": "metrics",
    "evaluate_labels": "metrics",
    "object_ids": "metrics",
    "ScribbleRobot": "robot",
    "EvalSequence": "protocol",
    "evaluate_sequence": "protocol",
    "run_protocol": "protocol",
    "summarize": "protocol",
    "time_curve": "protocol",
    "area_over_rounds": "protocol",
    "format_table": "protocol",
    "save_summary": "protocol",
    "load_davis_sequence": "datasets",
    "iter_davis": "datasets",
    "davis_sequences": "datasets",
    "load_tiff_units": "datasets",
    "read_annotation": "datasets",
    "plot_summary": "plots",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
