"""The "Sequence" panel: which image, which axis, which channel, which output layer.

Reads the napari viewer (layers, axis labels, the dims position); tells the dock
widget when the output layer changes (``output_changed``) and the controller when
"objects may end" is toggled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel

from ..annotation.sequence import (
    UnsupportedLayerError,
    check_layer,
    layer_data,
    make_spec,
    spatial_shape,
)
from ..axes import (
    axis_entry,
    axis_kind,
    guess_axis_kinds,
    is_named,
    objects_may_end_default,
    tiff_axes,
    tiff_axis_labels,
)
from ._colors import label_colormap

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..annotation import AnnotationController

ROLE_KEY = "napari_ipnet_role"  # layer.metadata key marking the layers the widget made
SOURCE_KEY = "napari_ipnet_source"
AXIS_KEY = "napari_ipnet_axis"  # output layers: the propagation axis whose results they hold
ENDING_TOOLTIP = (
    "Objects may end inside the sequence, as nuclei do within a z-stack: propagation may "
    "then leave a frame empty. Off for time-lapses and videos, where a dim or blurred "
    "object is still there. On by default along an axis named (or guessed) z, depth, "
    "plane, slice or focal...; off along time and unknown axes. The bundled model has a "
    "propagation network for each case; takes effect at the next propagation."
)


class SequencePanel(QGroupBox):
    """Image, propagation axis, channel and output layer of the annotation."""

    output_changed = Signal()  # the output layer (or its choice) changed

    def __init__(self, viewer: napari.Viewer, controller: AnnotationController, parent=None) -> None:
        super().__init__("Sequence", parent)
        self.viewer = viewer
        self.controller = controller
        self._output = None
        self._explicit_output = False  # the user chose the output (kept across axis changes)
        self._ending_default: bool | None = None  # "objects may end" default of the axis
        self._tiff_names: dict[str, list] = {}  # source TIFF path -> axis names
        self._updating = False
        self._last_image = None
        form = QFormLayout(self)
        self.image_combo = QComboBox()
        self.image_combo.setToolTip(
            "Image layer to segment: 2D+t grayscale, RGB video, or a stack with several "
            "leading axes (e.g. T, Z, Y, X). A multichannel image opened with one layer per "
            "channel: pick the channel's layer."
        )
        self.axis_combo = QComboBox()
        self.axis_combo.setToolTip(
            "Axis to propagate along (time, or z to segment through a volume). The other "
            "leading axes stay fixed at the viewer position where you scribble."
        )
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("RGB(A) images: use the colour image, or one channel")
        self.output_combo = QComboBox()
        self.output_combo.setToolTip(
            "Labels layer receiving the results: by default one per image and propagation "
            "axis ('<image> IPNet masks (t)', '(z)'), so results along t and along z never "
            "collide; 'new layer' starts another one (to redo an axis). Labels already in it "
            "are kept: only background and the objects IPNet manages are written, and pixels "
            "that cannot be written are reported."
        )
        self.ending_check = QCheckBox("Objects may end along this axis")
        self.ending_check.setToolTip(ENDING_TOOLTIP)
        self.sequence_label = QLabel("")
        self.sequence_label.setWordWrap(True)
        form.addRow("Image", self.image_combo)
        form.addRow("Propagate along", self.axis_combo)
        form.addRow("", self.ending_check)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Output", self.output_combo)
        form.addRow(self.sequence_label)
        self.image_combo.currentIndexChanged.connect(self._on_image_changed)
        self.axis_combo.currentIndexChanged.connect(self._update_sequence_label)
        self.axis_combo.currentIndexChanged.connect(self._on_axis_changed)
        self.ending_check.toggled.connect(self._on_ending_toggled)
        self.channel_combo.currentIndexChanged.connect(self._update_sequence_label)
        self.output_combo.currentIndexChanged.connect(self._on_output_changed)
        controller.model_set.connect(self.model_set)

    def model_set(self, model) -> None:
        """"Objects may end" can be ticked only for a model that tells the two cases apart."""
        uses_flag = bool(getattr(model, "uses_objects_may_end", False))
        self.ending_check.setEnabled(uses_flag)
        self.ending_check.setToolTip(ENDING_TOOLTIP if uses_flag else "This model does not tell the two cases apart.")

    def _image_layers(self) -> list:
        return [x for x in self.viewer.layers if isinstance(x, Image) and x.metadata.get(ROLE_KEY) is None]

    def _refresh_layers(self, *_args) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            current = self.image_layer
            images = self._image_layers()
            self.image_combo.clear()
            for layer in images:
                self.image_combo.addItem(layer.name)
            if current in images:
                self.image_combo.setCurrentIndex(images.index(current))
            elif images:
                self.image_combo.setCurrentIndex(0)
        finally:
            self._updating = False
        self._on_image_changed()

    @property
    def image_layer(self):
        """The image layer chosen in the widget (None if there is none)."""
        name = self.image_combo.currentText()
        return next((x for x in self._image_layers() if x.name == name), None) if name else None

    def set_image_layer(self, layer) -> None:
        names = [self.image_combo.itemText(i) for i in range(self.image_combo.count())]
        if layer.name not in names:
            self._refresh_layers()
            names = [self.image_combo.itemText(i) for i in range(self.image_combo.count())]
        self.image_combo.setCurrentIndex(names.index(layer.name))

    def _on_image_changed(self, *_args) -> None:
        if self._updating:
            return
        layer = self.image_layer
        if layer is not None and layer is self._last_image and self.axis_combo.count():
            self._refresh_outputs()  # same image: keep the user's axis and channel
            self._update_sequence_label()
            return
        self._updating = True
        self._explicit_output = False  # another image: its own output layers
        try:
            prev_axis = self.axis_combo.currentData()
            self.axis_combo.clear()
            self.channel_combo.clear()
            if layer is not None:
                for ax, text, tip in self._axis_entries(layer):
                    self.axis_combo.addItem(text, ax)
                    self.axis_combo.setItemData(ax, tip, Qt.ItemDataRole.ToolTipRole)
                if prev_axis is not None and prev_axis < self.axis_combo.count():
                    self.axis_combo.setCurrentIndex(prev_axis)
                if getattr(layer, "rgb", False):
                    n_ch = int(layer_data(layer).shape[-1])
                    self.channel_combo.addItem("colour (RGB)", -1)
                    for c, name in zip(range(n_ch), "RGBA"):
                        self.channel_combo.addItem(name, c)
            self.channel_combo.setEnabled(self.channel_combo.count() > 0)
            self._refresh_outputs()
        finally:
            self._updating = False
        self._update_sequence_label()
        if layer is not None and layer is not self._last_image:
            try:
                check_layer(layer)
            except UnsupportedLayerError as err:
                show_warning(f"IPNet: {err}")
        self._last_image = layer

    def _axis_names(self, layer) -> list[str | None]:
        """Names of the layer's axes, None where nothing names them.

        In order: the viewer's axis labels (what the user sees and may rename), the
        layer's own ``axis_labels`` (set by our TIFF reader from ImageJ / OME metadata),
        the axes stored in the TIFF the layer was opened from; napari's numeric
        defaults ("-3") name nothing.
        """
        n = len(spatial_shape(layer))
        viewer = [str(x) for x in list(self.viewer.dims.axis_labels)[-n:]]
        own = [str(x) for x in getattr(layer, "axis_labels", ())]
        sources = [viewer, own, self._source_axis_names(layer, n)]
        out: list[str | None] = []
        for i in range(n):
            out.append(next((c[i] for c in sources if len(c) == n and is_named(c[i])), None))
        return out

    def _source_axis_names(self, layer, n: int) -> list:
        """Axis names stored in the TIFF file the layer was read from ([] if none)."""
        path = getattr(getattr(layer, "source", None), "path", None)
        if not path or not str(path).lower().endswith((".tif", ".tiff")):
            return []
        key = str(path)
        if key not in self._tiff_names:
            axes = tiff_axes(key) or ""
            if getattr(layer, "rgb", False) and axes.endswith("S"):
                axes = axes[:-1]
            self._tiff_names[key] = [a if a else "" for a in tiff_axis_labels(axes)]
        names = self._tiff_names[key]
        return names if len(names) == n else []

    def _axis_labels(self, layer) -> list[str]:
        """Names of the layer's axes, "axis i" where nothing names them."""
        return [nm if nm is not None else f"axis {i}" for i, nm in enumerate(self._axis_names(layer))]

    def _axis_kinds(self, layer) -> list[tuple[str | None, bool]]:
        """(kind, guessed) of each leading axis: ``("z", False)`` for an axis named z,
        ``("t", True)`` for an unnamed axis guessed to be time, ``(None, False)``."""
        names = self._axis_names(layer)
        shape = spatial_shape(layer)
        lead = max(0, len(shape) - 2)
        guesses = guess_axis_kinds(shape[:lead], names[:lead])
        return [
            (axis_kind(names[ax]), False) if names[ax] is not None else (guesses[ax], guesses[ax] is not None)
            for ax in range(lead)
        ]

    def _axis_entries(self, layer) -> list[tuple[int, str, str]]:
        """(axis, list text, tooltip) of each leading axis of ``layer``."""
        names = self._axis_names(layer)
        shape = spatial_shape(layer)
        out = []
        for ax, (kind, guessed) in enumerate(self._axis_kinds(layer)):
            text = axis_entry(ax, names[ax], shape[ax], kind if guessed else None)
            if guessed:
                tip = (
                    f"Axis {ax} has no name: guessed {'z' if kind == 'z' else 'time'} from its length "
                    "and place. "
                    "Name the viewer's axes (double-click a slider's label) or open a TIFF with "
                    "ImageJ / OME axes to be sure."
                )
            elif names[ax] is None:
                tip = f"Axis {ax} has no name: name the viewer's axes (double-click a slider's label)."
            else:
                tip = f"Axis {ax}, named {names[ax]!r}."
            out.append((ax, text, tip))
        return out

    def _on_axis_labels_changed(self, *_args) -> None:
        """The viewer's (or a layer's) axis labels changed: rename the axis list, keep the choice."""
        layer = self.image_layer
        if layer is None or self._updating:
            return
        entries = self._axis_entries(layer)
        if len(entries) != self.axis_combo.count():
            self._last_image = None  # the layer changed shape: rebuild the list
            self._on_image_changed()
            return
        for i, (ax, text, tip) in enumerate(entries):
            self.axis_combo.setItemText(i, text)
            self.axis_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self._apply_ending_default(keep_override=True)
        self._update_sequence_label()

    @property
    def axis(self) -> int:
        ax = self.axis_combo.currentData()
        return int(ax) if ax is not None else 0

    def set_axis(self, axis: int) -> None:
        idx = self.axis_combo.findData(int(axis))
        if idx < 0:
            raise ValueError(f"axis {axis} is not a leading axis of the selected layer")
        self.axis_combo.setCurrentIndex(idx)

    @property
    def channel(self) -> int | None:
        """Colour channel used from an RGB layer (None: the colour image)."""
        c = self.channel_combo.currentData() if self.channel_combo.count() else None
        return None if c is None or c < 0 else int(c)

    def set_channel(self, channel: int | None) -> None:
        idx = self.channel_combo.findData(-1 if channel is None else int(channel))
        if idx < 0:
            raise ValueError(f"channel {channel} is not available for the selected layer")
        self.channel_combo.setCurrentIndex(idx)

    def _viewer_position(self, layer) -> np.ndarray:
        return np.asarray(layer.world_to_data(self.viewer.dims.point))

    @property
    def objects_may_end(self) -> bool:
        """Whether new sessions let objects end along the axis (see ``Session``)."""
        return self.ending_check.isChecked()

    def _on_axis_changed(self, *_args) -> None:
        """Another axis: its "objects may end" default, and its own output layer."""
        self._explicit_output = False
        self._apply_ending_default()
        self._refresh_outputs()

    def axis_may_end_default(self, layer=None, axis: int | None = None) -> bool:
        """Default of "objects may end" along ``axis`` (:func:`napari_ipnet.axes.objects_may_end_default`
        of its name, or of the guess for an unnamed axis)."""
        layer = layer if layer is not None else self.image_layer
        axis = self.axis if axis is None else int(axis)
        if layer is None:
            return False
        names = self._axis_names(layer)
        kinds = self._axis_kinds(layer)
        if axis >= len(kinds):
            return False
        name = names[axis] if names[axis] is not None else kinds[axis][0]
        return objects_may_end_default(name)

    def _apply_ending_default(self, keep_override: bool = False) -> None:
        """Set "objects may end" to the axis' default; with ``keep_override`` only where
        the user left the previous default as it was."""
        layer = self.image_layer
        if layer is None or self.axis_combo.currentData() is None:
            return
        default = self.axis_may_end_default(layer)
        previous = self._ending_default
        if keep_override and previous is not None and self.ending_check.isChecked() != previous:
            self._ending_default = default
            return  # the user chose: keep it
        self._ending_default = default
        self.ending_check.setChecked(default)

    def _on_ending_toggled(self, checked: bool) -> None:
        # takes effect at the next propagation of the sessions along this axis
        self.controller.set_objects_may_end(self.image_layer, self.axis, bool(checked))

    def _update_sequence_label(self, *_args) -> None:
        layer = self.image_layer
        if layer is None:
            self.sequence_label.setText("Open an image sequence (video, time-lapse, z-stack).")
            return
        try:
            spec = make_spec(layer, self.axis, self._viewer_position(layer), self.channel)
        except UnsupportedLayerError as err:
            self.sequence_label.setText(f"Not a sequence: {err}")
            return
        n = spatial_shape(layer)[self.axis]
        self.sequence_label.setText(f"{n} frames {spec.describe(self._axis_labels(layer))}")

    # ------------------------------------------------------------------ output layer
    def _matching_labels(self, image) -> list:
        if image is None:
            return []
        shape = spatial_shape(image)
        return [
            x for x in self.viewer.layers
            if isinstance(x, Labels) and tuple(x.data.shape) == shape and x.metadata.get(ROLE_KEY) != "brush"
        ]

    @staticmethod
    def _output_axis(layer) -> int | None:
        """The axis an IPNet output layer holds results of (None: any, or not an IPNet output)."""
        ax = layer.metadata.get(AXIS_KEY) if isinstance(layer.metadata, dict) else None
        return int(ax) if ax is not None else None

    def _fits(self, layer, image, axis: int) -> bool:
        """Whether ``layer`` is a fitting output for ``image`` along ``axis`` without being chosen.

        Labels layers of the user's always fit; an IPNet output layer only for its
        own image and axis (results along t and along z never share a layer unless the
        user chooses so).
        """
        if layer.metadata.get(ROLE_KEY) != "output":
            return True
        source = layer.metadata.get(SOURCE_KEY)
        own = self._output_axis(layer)
        return image is not None and source == image.name and own in (None, int(axis))

    def _linked_output(self, image, axis: int):
        """The IPNet output layer made for ``image`` along ``axis`` (None if there is none)."""
        linked = [
            x for x in self._matching_labels(image)
            if x.metadata.get(ROLE_KEY) == "output" and x.metadata.get(SOURCE_KEY) == image.name
            and self._output_axis(x) in (None, int(axis))
        ]
        linked.sort(key=lambda x: self._output_axis(x) is None)  # this axis' own first
        return linked[0] if linked else None

    def _refresh_outputs(self) -> None:
        image = self.image_layer
        current = self._output
        self.output_combo.blockSignals(True)
        self.output_combo.clear()
        self.output_combo.addItem("new layer", None)
        matches = self._matching_labels(image)
        for x in matches:
            self.output_combo.addItem(x.name, x.name)
        axis = self.axis
        if current is not None and current in matches and (self._explicit_output or self._fits(current, image, axis)):
            self.output_combo.setCurrentIndex(matches.index(current) + 1)
        elif current is None and self._explicit_output:
            self.output_combo.setCurrentIndex(0)  # the user asked for a new layer
        else:
            self._output = self._linked_output(image, axis) if image is not None else None
            self._explicit_output = False
            if self._output is not None:
                self.output_combo.setCurrentIndex(matches.index(self._output) + 1)
        self.output_combo.blockSignals(False)
        self.output_changed.emit()

    def _on_output_changed(self, *_args) -> None:
        name = self.output_combo.currentData()
        self._output = next((x for x in self.viewer.layers if isinstance(x, Labels) and x.name == name), None)
        self._explicit_output = True
        self.output_changed.emit()

    @property
    def output_layer(self):
        """The output Labels layer (None until created or chosen)."""
        if self._output is not None and self._output not in self.viewer.layers:
            self._output = None
        return self._output

    def set_output_layer(self, layer) -> None:
        """Write the results of the selected image and axis into ``layer`` (None: a new layer)."""
        if layer is None:
            self._output = None
            self._explicit_output = True
            self._refresh_outputs()
            return
        self._refresh_outputs()
        idx = self.output_combo.findData(layer.name)
        if idx < 0:
            raise ValueError(f"{layer.name!r} does not have the spatial shape of the image layer")
        self.output_combo.setCurrentIndex(idx)
        self._output = layer
        self._explicit_output = True
        self.output_changed.emit()

    def output_name(self, image, axis: int) -> str:
        """Name of a new output layer: ``"<image> IPNet masks (t)"`` (the axis name only
        when the image has several axes to propagate along)."""
        shape = spatial_shape(image)
        if len(shape) <= 3:
            return f"{image.name} IPNet masks"
        return f"{image.name} IPNet masks ({self._axis_labels(image)[axis]})"

    def ensure_output(self, image=None, axis: int | None = None):
        """The output Labels layer for ``image`` along ``axis`` (the selected ones by default).

        For the selected image and axis: the output chosen in the widget, else the
        output layer made for them, else a new one. For another image or axis (a round
        propagated after the choice changed): the layer its results went to, else its
        own output layer, made if needed; the widget's choice is left alone.
        """
        image = image if image is not None else self.image_layer
        axis = self.axis if axis is None else int(axis)
        shape = spatial_shape(image)
        shown = image is self.image_layer and axis == self.axis
        out = self.output_layer
        if shown and out is not None and tuple(out.data.shape) == shape:
            return out
        if not (shown and self._explicit_output):  # else the user asked for a new layer
            linked = self._linked_output(image, axis)
            if linked is not None:
                if shown:
                    self._output = linked
                    self._refresh_outputs()
                return linked
        active = self.viewer.layers.selection.active
        out = self.viewer.add_labels(
            np.zeros(shape, dtype=np.uint8),
            name=self.output_name(image, axis),
            scale=image.scale,
            translate=image.translate,
            metadata={ROLE_KEY: "output", SOURCE_KEY: image.name, AXIS_KEY: int(axis)},
            colormap=label_colormap(),
        )
        if shown:
            self._output = out
            self._explicit_output = False
        self._refresh_outputs()
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active  # keep the user's layer (e.g. scribbles)
        return out

    def output_for(self, rec):
        """The Labels layer a session's results go to now.

        The widget's output choice applies to the sessions of the selected image and
        axis; a session of another one keeps writing where it wrote before (or into
        its own output layer).
        """
        shape = spatial_shape(rec.layer)
        if rec.layer is self.image_layer and rec.spec.axis == self.axis:
            return self.ensure_output(rec.layer, rec.spec.axis)
        for layer in reversed(rec.output_layers()):
            if layer in self.viewer.layers and tuple(layer.data.shape) == shape:
                return layer
        return self.ensure_output(rec.layer, rec.spec.axis)
