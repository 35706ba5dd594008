"""Scribble layers: the Shapes, Points and brush Labels layers strokes are drawn on.

Makes them (one of each kind per image), styles them for the selected object, turns
each finished stroke into a :class:`~napari_ipnet.annotation.Stroke` for the
controller, takes strokes off (reset, undo) or draws them again (redo), and paints the
strokes of an opened session file back.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QTimer

from ..annotation import STROKE_FEATURE, Stroke
from ..annotation.sequence import (
    SequenceSpec,
    UnsupportedLayerError,
    check_layer,
    make_spec,
    spatial_shape,
)
from ..annotation.strokes import NEGATIVE_LABEL, click_map, paint_bounds, shape_map, to_layer_coords
from ._sequence_panel import ROLE_KEY, SOURCE_KEY
from ._workers import short as _short

if TYPE_CHECKING:  # pragma: no cover
    from ..annotation import AnnotationController
    from ._sequence_panel import SequencePanel

log = logging.getLogger(__name__)

#: colour of negative (background) strokes in the Shapes and Points scribble layers
NEGATIVE_COLOR = "#ff3030"


class ScribbleLayers:
    """The scribble layers of the viewer, linked to their image layers.

    Parameters
    ----------
    viewer
        The napari viewer.
    controller
        Receives the strokes (``submit_interaction``, ``strokes_removed``).
    panel
        The sequence panel: selected image, axis, channel, output layer.
    color_of
        ``color_of(object_id) -> RGBA``: the object's colour in the output layer.
    connect
        ``connect(emitter, callback)``: connects and remembers it for the cleanup.
    """

    def __init__(self, viewer, controller: AnnotationController, panel: SequencePanel,
                 color_of: Callable[[int], np.ndarray], connect: Callable[[Any, Any], None]) -> None:
        self.viewer = viewer
        self.controller = controller
        self.panel = panel
        self.color_of = color_of
        self._connect = connect
        self._links: dict[int, Any] = {}  # id(scribble layer) -> image layer
        self._seen_count: dict[int, int] = {}  # id(shapes/points layer) -> items processed
        self._next_stroke_id = 0
        self._clearing_strokes = False  # strokes removed by a reset or an undo: nothing to take back
        self._brush_seen: dict[tuple[int, tuple], np.ndarray] = {}
        self._pending_paint: dict[int, tuple[Any, set]] = {}
        self._paint_scheduled = False

    def is_linked(self, layer) -> bool:
        """Whether ``layer`` is a scribble layer linked to an image."""
        return id(layer) in self._links

    def forget(self, layer) -> None:
        """``layer`` left the viewer."""
        self._links.pop(id(layer), None)
        self._seen_count.pop(id(layer), None)
        for key in [k for k in self._brush_seen if k[0] == id(layer)]:
            del self._brush_seen[key]

    def _scribble_layers_for(self, image) -> list:
        return [x for x in self.viewer.layers if self._links.get(id(x)) is image]

    def _find_scribble(self, image, role):
        return next((x for x in self._scribble_layers_for(image) if x.metadata.get(ROLE_KEY) == role), None)

    def link(self, layer, image) -> None:
        if id(layer) in self._links:
            return
        self._links[id(layer)] = image
        role = layer.metadata.get(ROLE_KEY)
        if role in ("scribbles", "clicks"):
            self._seen_count[id(layer)] = len(layer.data)
            self._connect(layer.events.data, self._on_scribble_data)
        elif role == "brush":
            self._connect(layer.events.paint, self._on_brush_paint)

    def _scribble_kwargs(self, image) -> dict:
        return dict(scale=image.scale, translate=image.translate, rotate=image.rotate, shear=image.shear)

    def scribble_layer(self, image=None) -> Shapes:
        """The freehand Shapes scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "scribbles")
        if layer is None:
            ndim = len(spatial_shape(image))
            layer = Shapes(
                ndim=ndim,
                name=f"{image.name} scribbles",
                features={"object_id": np.zeros(0, int), "positive": np.zeros(0, bool), STROKE_FEATURE: np.zeros(0, int)},
                edge_width=max(2.0, min(spatial_shape(image)[-2:]) / 100),
                face_color="transparent",
                metadata={ROLE_KEY: "scribbles", SOURCE_KEY: image.name},
                **self._scribble_kwargs(image),
            )
            self.viewer.add_layer(layer)
            self.link(layer, image)
            self.panel.ensure_output(image)
        self.apply_stroke_style()
        return layer

    def clicks_layer(self, image=None) -> Points:
        """The Points scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "clicks")
        if layer is None:
            from ..annotation.strokes import CLICK_RADIUS

            layer = Points(
                ndim=len(spatial_shape(image)),
                name=f"{image.name} clicks",
                features={"object_id": np.zeros(0, int), "positive": np.zeros(0, bool), STROKE_FEATURE: np.zeros(0, int)},
                size=2 * CLICK_RADIUS + 1,
                metadata={ROLE_KEY: "clicks", SOURCE_KEY: image.name},
                **self._scribble_kwargs(image),
            )
            self.viewer.add_layer(layer)
            self.link(layer, image)
            self.panel.ensure_output(image)
        self.apply_stroke_style()
        return layer

    def brush_layer(self, image=None) -> Labels:
        """The brush Labels scribble layer of ``image`` (created if needed)."""
        image = self._require_image(image)
        layer = self._find_scribble(image, "brush")
        if layer is None:
            layer = Labels(
                np.zeros(spatial_shape(image), np.uint8),
                name=f"{image.name} brush",
                metadata={ROLE_KEY: "brush", SOURCE_KEY: image.name},
                scale=image.scale,
                translate=image.translate,
            )
            layer.brush_size = max(3, int(min(spatial_shape(image)[-2:]) / 60))
            self.viewer.add_layer(layer)
            self.link(layer, image)
            self.panel.ensure_output(image)
        self.apply_stroke_style()
        return layer

    def activate_scribbles(self, kind: str = "shapes") -> None:
        """Create (if needed), select and arm a scribble layer: shapes, brush or clicks."""
        try:
            image = self._require_image()
        except UnsupportedLayerError as err:
            show_error(f"IPNet: {err}")
            return
        if kind == "shapes":
            layer = self.scribble_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "add_path"
        elif kind == "brush":
            layer = self.brush_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "paint"
        elif kind == "clicks":
            layer = self.clicks_layer(image)
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
        else:
            raise ValueError(f"unknown scribble kind {kind!r}: shapes, brush or clicks")
        self.apply_stroke_style()

    def _require_image(self, image=None):
        image = image if image is not None else self.panel.image_layer
        check_layer(image)
        return image

    def apply_stroke_style(self) -> None:
        """Colour and features of the next strokes: the selected object, or negative."""
        color = NEGATIVE_COLOR if self.controller.negative else self.color_of(self.controller.current)
        defaults = {"object_id": self.controller.current, "positive": not self.controller.negative, STROKE_FEATURE: -1}
        for layer in list(self.viewer.layers):
            if id(layer) not in self._links:
                continue
            role = layer.metadata.get(ROLE_KEY)
            if role in ("scribbles", "clicks"):
                # napari applies current_* to the selected items: do not recolour them
                if len(layer.selected_data):
                    layer.selected_data = set()
                layer.feature_defaults = {k: v for k, v in defaults.items() if k in layer.features}
                if role == "scribbles":
                    layer.current_edge_color = color
                else:
                    layer.current_face_color = color
                    layer.current_border_color = color
            elif role == "brush":
                layer.selected_label = NEGATIVE_LABEL if self.controller.negative else self.controller.current
                self._update_brush_colormap(layer)

    def _update_brush_colormap(self, layer) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        colors = {None: np.array([0.7, 0.7, 0.7, 1.0]), 0: np.zeros(4)}
        for k in self.controller.objects:
            colors[k] = self.color_of(k)
        colors[NEGATIVE_LABEL] = np.array([1.0, 0.19, 0.19, 1.0])
        layer.colormap = DirectLabelColormap(color_dict=colors)

    def _on_scribble_data(self, event) -> None:
        layer = event.source
        action = str(getattr(event, "action", "added"))
        n_before = self._seen_count.get(id(layer), 0)
        n = len(layer.data)
        if self._clearing_strokes:  # strokes taken off or drawn again by the widget itself
            if action in ("added", "removed"):
                self._seen_count[id(layer)] = n
            return
        if action == "removed" or n < n_before:
            self._seen_count[id(layer)] = n
            if not self._clearing_strokes:
                self.controller.strokes_removed(layer)
            return
        if action != "added" or n <= n_before:
            return  # a shape being drawn, moved or edited: wait for "added"
        self._seen_count[id(layer)] = n
        image = self._links.get(id(layer))
        if image is None or image not in self.viewer.layers:
            show_error("IPNet: the image layer of these scribbles is gone; open it again")
            return
        role = layer.metadata.get(ROLE_KEY)
        strokes: dict[tuple, list[Stroke]] = {}
        try:
            for i in range(n_before, n):
                feats = layer.features.iloc[i] if len(layer.features) > i else {}
                obj = int(feats.get("object_id", self.controller.current)) if len(feats) else self.controller.current
                positive = bool(feats.get("positive", True)) if len(feats) else True
                stroke_id = -1
                if STROKE_FEATURE in layer.features:  # its identity, to find it again once deleted
                    stroke_id = self._next_stroke_id
                    self._next_stroke_id += 1
                    layer.features.loc[i, STROKE_FEATURE] = stroke_id
                if role == "scribbles":
                    verts = to_layer_coords(layer, image, np.asarray(layer.data[i]))
                    stype = layer.shape_type[i]
                else:
                    verts = to_layer_coords(layer, image, np.asarray(layer.data[i])[None])
                    stype = "click"
                frame, spec = self._locate(image, verts)
                h, w = spatial_shape(image)[-2:]
                yx = verts[:, -2:]
                m = click_map(yx, h, w) if stype == "click" else shape_map(yx, stype, h, w)
                if not m.any():
                    show_warning("IPNet: the stroke is outside the image; draw on the image")
                    continue
                ref = weakref.ref(layer) if stroke_id >= 0 else None
                drawing = {"data": np.asarray(layer.data[i]).copy(), "shape_type": stype}
                strokes.setdefault((spec, frame), []).append(Stroke(ref, stroke_id, obj, positive, m, drawing))
        except UnsupportedLayerError as err:
            show_error(f"IPNet: {err}")
            return
        except Exception as err:  # noqa: BLE001 - a notification, never a traceback in the console
            log.debug("IPNet: reading a stroke failed", exc_info=err)
            show_error(f"IPNet: this stroke cannot be used ({type(err).__name__}: {_short(err)})")
            return
        for (spec, frame), frame_strokes in strokes.items():
            self.controller.submit_interaction(image, spec, frame, frame_strokes)

    def _locate(self, image, verts: np.ndarray) -> tuple[int, SequenceSpec]:
        """Frame and spec of a stroke from its (leading) coordinates."""
        base = make_spec(image, self.panel.axis, verts[0], self.panel.channel)
        lead = np.rint(verts[:, : base.ndim - 2]).astype(int)
        if lead.size and (lead != lead[0]).any():
            show_warning("IPNet: the stroke spans several frames; it is used on its first frame")
        shape = spatial_shape(image)
        pos = np.clip(lead[0], 0, np.asarray(shape[: base.ndim - 2]) - 1) if lead.size else []
        frame, spec = base.frame_of(list(pos))
        return frame, spec

    def _on_brush_paint(self, event) -> None:
        """A finished brush stroke (or fill): note where, process once the data is written.

        napari emits ``paint`` when it records the history item, which for
        programmatic edits is before the pixels are written: the strokes are read on
        the next turn of the event loop.
        """
        layer = event.source
        image = self._links.get(id(layer))
        if image is None or image not in self.viewer.layers:
            return
        ndim = len(spatial_shape(image))
        combos = paint_bounds(getattr(event, "value", None) or [], ndim)
        if combos is None:
            combos = [tuple(int(round(v)) for v in self.panel._viewer_position(image)[: ndim - 2])]
        pending = self._pending_paint.setdefault(id(layer), (layer, set()))[1]
        pending.update(combos)
        if not self._paint_scheduled:
            self._paint_scheduled = True
            QTimer.singleShot(0, self._process_paint)

    def _process_paint(self) -> None:
        self._paint_scheduled = False
        pending, self._pending_paint = self._pending_paint, {}
        for layer, combos in pending.values():
            image = self._links.get(id(layer))
            if image is None or image not in self.viewer.layers or layer not in self.viewer.layers:
                continue
            self._brush_strokes(layer, image, sorted(combos))

    def _brush_strokes(self, layer, image, combos) -> None:
        data = layer.data
        groups: dict[tuple, list[Stroke]] = {}
        for lead in combos:
            try:
                frame, spec = self._locate(image, np.asarray([list(lead) + [0, 0]], float))
            except UnsupportedLayerError as err:
                show_error(f"IPNet: {err}")
                return
            region = np.asarray(data[tuple(lead)])
            key = (id(layer), tuple(lead))
            prev = self._brush_seen.get(key)
            if prev is None:
                prev = np.zeros_like(region)
            self._brush_seen[key] = region.copy()
            new = (region != prev) & (region != 0)
            if not new.any():
                continue
            # brush paint: kept for the round, cannot be deleted stroke by stroke (layer None)
            paint = []
            values = [int(v) for v in np.unique(region[new])]
            neg = (region == NEGATIVE_LABEL) & new
            for v in values:
                if v == NEGATIVE_LABEL:
                    continue
                if v not in self.controller.objects:
                    self.controller.objects[v] = f"object {v}"
                paint.append(Stroke(None, -1, v, True, (region == v) & new))
            if neg.any():
                paint.append(Stroke(None, -1, self.controller.current, False, neg))
            groups[(spec, frame)] = paint
        self.controller.objects_changed.emit()
        for (spec, frame), paint in groups.items():
            self.controller.submit_interaction(image, spec, frame, paint)

    def clear_strokes(self, ids: set[int] | None) -> None:
        """Remove the strokes of ``ids`` (all when None) from the scribble layers."""
        self._clearing_strokes = True
        try:
            self._remove_strokes(ids)
        finally:
            self._clearing_strokes = False

    def _remove_strokes(self, ids: set[int] | None) -> None:
        for layer in list(self.viewer.layers):
            if id(layer) not in self._links:
                continue
            role = layer.metadata.get(ROLE_KEY)
            if role in ("scribbles", "clicks"):
                if not len(layer.data):
                    continue
                obj = np.asarray(layer.features["object_id"]) if "object_id" in layer.features else None
                if ids is None or obj is None:
                    drop = set(range(len(layer.data)))
                else:
                    drop = {i for i, v in enumerate(obj) if int(v) in ids}
                if drop:
                    layer.selected_data = drop
                    layer.remove_selected()
                self._seen_count[id(layer)] = len(layer.data)
            elif role == "brush":
                data = layer.data
                if ids is None:
                    data[...] = 0
                else:
                    for k in ids:
                        data[data == k] = 0
                layer.refresh()
                for key in [key for key in self._brush_seen if key[0] == id(layer)]:
                    del self._brush_seen[key]

    # ------------------------------------------------------------------ undo / redo
    def take_off(self, strokes: list[Stroke]) -> None:
        """Remove ``strokes`` from their layers (undo took back what they made)."""
        self._clearing_strokes = True
        try:
            for layer, ids in self._by_layer(strokes).items():
                feats = np.asarray(layer.features[STROKE_FEATURE])
                drop = {i for i, v in enumerate(feats) if int(v) in ids}
                if drop:
                    layer.selected_data = drop
                    layer.remove_selected()
                self._seen_count[id(layer)] = len(layer.data)
        finally:
            self._clearing_strokes = False

    def draw_again(self, strokes: list[Stroke]) -> None:
        """Draw ``strokes`` again, with their ids (redo brought back what they made)."""
        self._clearing_strokes = True
        try:
            for st in strokes:
                layer = st.layer() if st.layer is not None else None
                if layer is None or st.drawing is None or layer not in self.viewer.layers or st.present():
                    continue
                color = self.color_of(st.object_id) if st.positive else NEGATIVE_COLOR
                layer.selected_data = set()
                layer.feature_defaults = {
                    k: v for k, v in {"object_id": st.object_id, "positive": st.positive,
                                      STROKE_FEATURE: st.stroke_id}.items() if k in layer.features
                }
                if isinstance(layer, Shapes):
                    layer.add([st.drawing["data"]], shape_type=st.drawing["shape_type"], edge_color=color)
                else:
                    layer.current_face_color = color
                    layer.current_border_color = color
                    layer.add(st.drawing["data"])
                self._seen_count[id(layer)] = len(layer.data)
        finally:
            self._clearing_strokes = False
        self.apply_stroke_style()

    @staticmethod
    def _by_layer(strokes: list[Stroke]) -> dict:
        out: dict = {}
        for st in strokes:
            layer = st.layer() if st.layer is not None else None
            if layer is not None and STROKE_FEATURE in layer.features:
                out.setdefault(layer, set()).add(int(st.stroke_id))
        return out

    def paint_logged(self, image, spec: SequenceSpec, strokes: list) -> int:
        """Paint the strokes of an opened session file into ``image``'s brush layer.

        A session file keeps strokes as pixel maps (not as the shapes drawn), so they
        come back as brush paint, exactly where they were: label ``k`` for object
        ``k``, :data:`NEGATIVE_LABEL` for negative strokes, in the order drawn. Like
        brush paint they stay (they cannot be taken back stroke by stroke), and the
        brush does not send them to the network again. Objects beyond the brush's
        labels are left out.

        Parameters
        ----------
        image : napari.layers.Image
            The image the session was opened on.
        spec : SequenceSpec
            Its sequence (where frame ``f`` of the session is in the layer).
        strokes : list of LoggedStroke
            See :func:`napari_ipnet.session_file.logged_strokes`.

        Returns
        -------
        int
            How many strokes were painted.
        """
        strokes = [st for st in strokes if not st.positive or 0 < st.object_id < NEGATIVE_LABEL]
        if not strokes:
            return 0
        layer = self.brush_layer(image)
        data = layer.data
        leads = []
        for st in strokes:
            lead = spec.index(st.frame)
            region = data[lead]
            region[np.asarray(st.stroke_map)] = st.object_id if st.positive else NEGATIVE_LABEL
            if lead not in leads:
                leads.append(lead)
        for lead in leads:  # seen: the next brush stroke there sends only its own pixels
            self._brush_seen[(id(layer), lead)] = np.asarray(data[lead]).copy()
        layer.refresh()
        return len(strokes)

    def recolor(self, object_id: int, color) -> None:
        """Draw the positive strokes of ``object_id`` already in the layers in ``color``."""
        rgba = np.asarray(color, float)[:4]
        for layer in list(self.viewer.layers):
            role = layer.metadata.get(ROLE_KEY) if id(layer) in self._links else None
            if role not in ("scribbles", "clicks") or not len(layer.data) or "object_id" not in layer.features:
                continue
            obj = np.asarray(layer.features["object_id"])
            pos = np.asarray(layer.features["positive"], bool) if "positive" in layer.features else True
            idx = np.flatnonzero((obj == object_id) & pos)
            if not idx.size:
                continue
            names = ("edge_color",) if role == "scribbles" else ("face_color", "border_color")
            for name in names:
                colors = np.array(getattr(layer, name), float)
                colors[idx] = rgba
                setattr(layer, name, colors)
