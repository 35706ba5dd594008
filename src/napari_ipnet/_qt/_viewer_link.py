"""The dock widget's link with the viewer: layer and dims events, and their cleanup.

:class:`ViewerLink` connects the widget's parts to the viewer's events (layers
added, removed, moved or renamed; the current step; axis labels), links scribble
layers found in the viewer to their image, and remembers every connection and key
binding. :func:`make_cleanup` undoes them all; it holds no reference to the widget,
so it can run when the Qt widget is destroyed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.layers import Image

from ..annotation import remove_history_hooks
from ._sequence_panel import ROLE_KEY, SOURCE_KEY

if TYPE_CHECKING:  # pragma: no cover
    from ..annotation import AnnotationController
    from ._confidence import FrameNavigator
    from ._scribble_layers import ScribbleLayers
    from ._sequence_panel import SequencePanel

__all__ = ["ViewerLink", "make_cleanup"]

#: the roles (metadata ``ROLE_KEY``) of scribble layers
SCRIBBLE_ROLES = ("scribbles", "clicks", "brush")


class ViewerLink:
    """The widget's connections to ``viewer``, undone by :meth:`cleanup`.

    Parameters
    ----------
    viewer
        The napari viewer (a ``ViewerModel`` is enough).

    Attributes
    ----------
    connected : list of (emitter, callback)
        Every connection made with :meth:`connect`.
    bound_keys : list of (key, previous binding)
        The viewer key bindings the widget made (see ``_shortcuts.bind_keys``).
    """

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.connected: list[tuple[Any, Any]] = []
        self.bound_keys: list[tuple[str, Any]] = []
        self.panel: SequencePanel | None = None
        self.scribbles: ScribbleLayers | None = None
        self.controller: AnnotationController | None = None

    def connect(self, emitter, callback) -> None:
        """Connect ``callback`` to ``emitter`` and remember it for the cleanup."""
        emitter.connect(callback)
        self.connected.append((emitter, callback))

    def watch(self, panel: SequencePanel, scribbles: ScribbleLayers, navigator: FrameNavigator,
              controller: AnnotationController) -> None:
        """Follow the viewer's layers and dims, and the layers already open."""
        self.panel, self.scribbles, self.controller = panel, scribbles, controller
        ev = self.viewer.layers.events
        dims = self.viewer.dims.events
        self.connect(ev.inserted, self._on_layer_inserted)
        self.connect(ev.removed, self._on_layer_removed)
        self.connect(ev.moved, panel._refresh_layers)
        self.connect(dims.current_step, panel._update_sequence_label)
        self.connect(dims.current_step, navigator.show_current)
        self.connect(dims.axis_labels, panel._on_axis_labels_changed)
        for layer in self.viewer.layers:
            self.watch_layer(layer)

    def watch_layer(self, layer) -> None:
        """Follow ``layer``'s name and axis labels; link it to its image if it is a scribble layer."""
        self.connect(layer.events.name, self.panel._refresh_layers)
        if isinstance(layer, Image) and hasattr(layer.events, "axis_labels"):
            self.connect(layer.events.axis_labels, self.panel._on_axis_labels_changed)
        role = layer.metadata.get(ROLE_KEY) if isinstance(layer.metadata, dict) else None
        if role in SCRIBBLE_ROLES and not self.scribbles.is_linked(layer):
            source = layer.metadata.get(SOURCE_KEY)
            image = next((x for x in self.viewer.layers if isinstance(x, Image) and x.name == source), None)
            if image is not None:
                self.scribbles.link(layer, image)

    def _on_layer_inserted(self, event) -> None:
        self.watch_layer(event.value)
        self.panel._refresh_layers()

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        self.disconnect_layer(layer)
        self.scribbles.forget(layer)
        self.controller.layer_removed(layer)
        if layer is self.panel._output:
            self.panel._output = None
        self.panel._refresh_layers()

    def disconnect_layer(self, layer) -> None:
        """Drop the connections to ``layer``'s events (it left the viewer)."""
        for emitter, cb in list(self.connected):
            if getattr(emitter, "source", None) is layer:
                try:
                    emitter.disconnect(cb)
                except Exception:  # noqa: BLE001
                    pass
                self.connected.remove((emitter, cb))

    def fit_view(self) -> None:
        """Fit the layers to the canvas (nothing when there are none, or the viewer is closed)."""
        try:
            if len(self.viewer.layers):
                self.viewer.reset_view()
        except (RuntimeError, AttributeError):  # viewer or widget already closed
            pass

    def cleanup_callback(self, hooked=(), ctrl_ref=None, flush: Callable[[], Any] | None = None) -> Callable:
        """:func:`make_cleanup` of this link's connections and key bindings (holds no widget)."""
        return make_cleanup(weakref.ref(self.viewer), self.connected, self.bound_keys, hooked, ctrl_ref, flush)

    def cleanup(self) -> None:
        """Disconnect everything and put the viewer's key bindings back."""
        make_cleanup(weakref.ref(self.viewer), self.connected, self.bound_keys)()


def make_cleanup(viewer_ref: Callable[[], Any], connected: list, bound_keys: list, hooked=(), ctrl_ref=None,
                 flush: Callable[[], Any] | None = None) -> Callable[..., None]:
    """A cleanup for when the Qt widget is destroyed (it holds no reference to it).

    In order: ``flush()`` (the pending autosaves), the history hooks of ``hooked``
    removed, every ``(emitter, callback)`` of ``connected`` disconnected, every
    ``(key, previous)`` of ``bound_keys`` bound back in the viewer (if it is still
    alive). Errors are ignored: the viewer may be half closed. The lists are emptied,
    so running it twice does nothing more.
    """

    def cleanup(*_args) -> None:
        if flush is not None:
            try:
                flush()  # the pending autosaves
            except Exception:  # noqa: BLE001
                pass
        if hooked:
            remove_history_hooks(hooked, ctrl_ref)
        for emitter, cb in list(connected):
            try:
                emitter.disconnect(cb)
            except Exception:  # noqa: BLE001
                pass
        connected.clear()
        viewer = viewer_ref()
        if viewer is not None:
            for key, previous in list(bound_keys):
                try:
                    viewer.bind_key(key, previous, overwrite=True)
                except Exception:  # noqa: BLE001
                    pass
        bound_keys.clear()

    return cleanup
