"""Move a loaded model and its sessions to another device (no Qt here).

The widget calls :func:`move_model` only while no job runs: a running interaction or
propagation holds tensors on the old device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def autocast_for(device) -> bool:
    """Mixed precision (float16 autocast) on ``device``, as ``load_model`` sets it by default."""
    return getattr(device, "type", str(device)) == "cuda"


def move_model(model, sessions: Iterable[Any], device) -> None:
    """Move ``model`` and the reference features of ``sessions`` to ``device``.

    Sets ``model.use_autocast`` as :func:`napari_ipnet.weights.load_model` does for
    that device (on for CUDA), so a model moved to a GPU runs as one loaded there.
    When a move fails (e.g. out of GPU memory), the model and the sessions are moved
    back to where they were and the error is raised.

    Parameters
    ----------
    model:
        The IPNetModel the sessions use.
    sessions:
        :class:`~napari_ipnet.session.Session` objects (``to_device``).
    device:
        A ``torch.device``.
    """
    sessions = list(sessions)
    old = model.device
    try:
        model.to(device)
        for session in sessions:
            session.to_device(device)
    except Exception:
        model.to(old)
        for session in sessions:
            session.to_device(old)
        raise
    model.use_autocast = autocast_for(device)
