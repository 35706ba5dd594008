"""The napari dock widget (the only Qt code of napari-ipnet).

``widget.IPNetWidget`` is the dock widget, a view over the Qt-free
:class:`napari_ipnet.annotation.AnnotationController`; the other modules are its
panels and helpers (see the docstring of ``widget``).
"""
