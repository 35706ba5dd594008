"""The napari dock widget (the only Qt code of napari-ipnet).

``widget.IPNetWidget`` is the dock widget; ``_sequence``, ``_strokes`` and
``_results`` are its Qt-free helpers (layer -> frames, scribble layers -> maps,
session results -> Labels layer with undo history).
"""
