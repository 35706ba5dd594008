"""napari-ipnet: interactive video object segmentation (IPNet) for napari.

The public API is importable without loading torch until it is used::

    from napari_ipnet import load_model, Session
    model = load_model("default")
    session = Session(frames, model)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["load_model", "Session", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session
    from .weights import load_model


def __getattr__(name: str):
    # torch is imported on first use, not at plugin discovery
    if name == "load_model":
        from .weights import load_model

        return load_model
    if name == "Session":
        from .session import Session

        return Session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
