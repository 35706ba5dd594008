"""The interactive session engine: interact, propagate, blend rounds, merge objects.

A :class:`Session` holds the state of one annotation job on one sequence. It has no
Qt or napari dependency: the widget, the evaluation protocol, the CLI and user
scripts all drive it the same way::

    session = Session(frames, load_model("default"))
    session.interact(10, positive, negative, object_id=1)
    for t in session.propagate():      # yields each finished frame
        show(session.label_frame(t))
    labels = session.labels

State per object is compact: each frame's foreground probability is kept as a uint8
crop of its region of interest (see :class:`SoftMask`), never as full float32 frames.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from .calibration import apply_logit_bias, fit_logit_bias
from .frames import FrameSource
from .memory import MemoryFrame, MemorySettings, ObjectMemory, fuse, label_cells, object_weight, readout
from .model.interface import SegmentationModel
from .model.roi import Bounds, Box, map_bounds, object_box_from_bounds, union_bounds, warp_in, warp_out
from .refine import RefineSettings, refine_probability
from .scribbles import davis_to_maps, scribble_map

_EPS = 1e-4


@dataclass
class SoftMask:
    """A foreground probability stored as uint8 (0..255) over a crop of the frame."""

    y0: int
    x0: int
    data: np.ndarray  # uint8 (h, w)

    @classmethod
    def from_crop(cls, y0: int, x0: int, prob: np.ndarray) -> SoftMask | None:
        """Quantise ``prob`` and shrink it to the bounding box of its non-zero values."""
        q = np.rint(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)
        rows = np.flatnonzero(q.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(q.any(axis=0))
        q = q[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        return cls(y0 + int(rows[0]), x0 + int(cols[0]), np.ascontiguousarray(q))

    def paste(self, height: int, width: int) -> np.ndarray:
        """Full-frame float32 probability."""
        return self.region(0, 0, height, width)

    @property
    def prob(self) -> np.ndarray:
        """The stored crop as float32 probability (``data / 255``)."""
        return self.data * np.float32(1 / 255)

    @property
    def extent(self) -> tuple[int, int, int, int]:
        """``(y0, x0, y1, x1)`` of the stored crop in the frame (exclusive end)."""
        return self.y0, self.x0, self.y0 + self.data.shape[0], self.x0 + self.data.shape[1]

    def region(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """Float32 probability over the frame region ``[y0:y1, x0:x1]``."""
        out = np.zeros((y1 - y0, x1 - x0), np.float32)
        h, w = self.data.shape
        a0, b0 = max(y0, self.y0), max(x0, self.x0)
        a1, b1 = min(y1, self.y0 + h), min(x1, self.x0 + w)
        if a0 < a1 and b0 < b1:
            out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = (
                self.data[a0 - self.y0 : a1 - self.y0, b0 - self.x0 : b1 - self.x0] * np.float32(1 / 255)
            )
        return out

    def bounds(self) -> Bounds | None:
        """Frame bounds (y0, x0, y1, x1, inclusive) of the pixels >= the ROI threshold."""
        b = map_bounds([self.prob])
        return None if b is None else (b[0] + self.y0, b[1] + self.x0, b[2] + self.y0, b[3] + self.x0)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


@dataclass
class _ObjectState:
    masks: dict[int, SoftMask] = field(default_factory=dict)
    annotated: set[int] = field(default_factory=set)  # frames annotated in closed rounds
    fused_reference: torch.Tensor | None = None  # fused reference of the last closed round
    reference: torch.Tensor | None = None  # this round's interaction feature
    positive: dict[int, np.ndarray] = field(default_factory=dict)  # this round's strokes
    negative: dict[int, np.ndarray] = field(default_factory=dict)
    confidence: dict[int, float] = field(default_factory=dict)  # per frame, see frame_confidence
    # the open round's frame and the object's mask there before the round's first
    # interaction (what the propagation sees as the previous round on other frames)
    before: tuple[int, SoftMask | None] | None = None


@dataclass(frozen=True)
class _ObjectSnapshot:
    masks: dict[int, SoftMask]
    annotated: frozenset[int]
    fused_reference: torch.Tensor | None
    reference: torch.Tensor | None
    positive: dict[int, np.ndarray]
    negative: dict[int, np.ndarray]
    confidence: dict[int, float]
    before: tuple[int, SoftMask | None] | None


@dataclass(frozen=True, eq=False)
class SessionSnapshot:
    """The whole state of a :class:`Session` at one moment (see :meth:`Session.snapshot`).

    Opaque: pass it back to :meth:`Session.restore` of the session that made it. It
    shares the session's immutable pieces (soft masks, reference tensors, stroke maps,
    none of which the session ever modifies in place) and copies only the containers
    that hold them, so it costs a few small dicts per object, never a frame.
    """

    _owner: Any = field(repr=False)  # weakref.ref to the session
    _objects: dict[int, _ObjectSnapshot] = field(repr=False)
    _round_frame: int | None
    _round_objects: tuple[int, ...]
    _log: tuple[dict, ...] = field(default=(), repr=False)  # the interaction log then

    @property
    def pending_frame(self) -> int | None:
        """Frame of the round that was open (not yet propagated) at snapshot time."""
        return self._round_frame

    @property
    def object_ids(self) -> list[int]:
        """Objects the session knew at snapshot time."""
        return sorted(self._objects)


def soft_aggregate(probs: np.ndarray) -> np.ndarray:
    """Merge per-object foreground probabilities (K, H, W) into (K + 1, H, W).

    Background is ``prod(1 - p_k)``; the K + 1 probabilities are turned into logits
    ``log(p / (1 - p))`` and normalised with a softmax. Channel 0 is background.
    """
    probs = np.clip(np.asarray(probs, dtype=np.float32), _EPS, 1 - _EPS)
    bg = np.prod(1.0 - probs, axis=0, keepdims=True)
    p = np.clip(np.concatenate([bg, probs], axis=0), _EPS, 1 - _EPS)
    logits = np.log(p / (1.0 - p))
    logits -= logits.max(axis=0, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=0, keepdims=True)


def _cover(*extents: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The smallest ``(y0, x0, y1, x1)`` (exclusive end) covering every extent given."""
    return (min(e[0] for e in extents), min(e[1] for e in extents),
            max(e[2] for e in extents), max(e[3] for e in extents))


def _crispness(p: np.ndarray, also: np.ndarray | None = None) -> float:
    """Mean ``|2p - 1|`` over the pixels in doubt: p > 0.1, or ``also`` (0 when none)."""
    doubt = p > 0.1
    if also is not None:
        doubt |= also
    return float(np.mean(np.abs(2.0 * p[doubt] - 1.0))) if doubt.any() else 0.0


def mask_confidence(
    soft: SoftMask | None, *, raw: np.ndarray | None = None, neighbour: np.ndarray | None = None,
    neighbour_area: int | None = None, may_end: bool = False,
) -> float:
    """How sure the engine is of one object's mask on one frame, in [0, 1].

    The product of two signals the engine has anyway:

    - how sure the network is: the mean of ``|2p - 1|`` over the pixels in doubt (p > 0.1,
      or in the neighbouring frame's mask), where p is ``raw``, the propagation network's
      own probability over its region of interest *before* the calibration offset and
      the blend with the previous round (the offset moves the threshold and makes the
      calibrated mask crisp however unsure the network was), or, without ``raw``, the
      soft mask itself (an interaction);
    - how little the mask's area changed from the neighbouring frame's
      (``neighbour_area``, or the count of ``neighbour``, the neighbour's mask over the
      same region as ``raw``): ``1 - |a - b| / max(a, b)``.

    An object that vanished from one frame to the next scores 0 (0.5 where objects may
    end). Measured against the per-frame J (``weights/README.md``, "Per-frame
    confidence"), the agreement with the previous round's mask (an earlier factor) and
    the crispness of the calibrated mask were dropped. Cheap: one pass over the crops.
    """
    if neighbour is not None:
        neighbour = np.asarray(neighbour) > 0.5
        if neighbour_area is None:
            neighbour_area = int(np.count_nonzero(neighbour))
    if soft is None:
        if neighbour_area:
            return 0.5 if may_end else 0.0
        return 1.0  # absent here and on the neighbour: nothing to doubt
    if raw is not None:
        also = neighbour if neighbour is not None and neighbour.shape == np.shape(raw) else None
        score = _crispness(np.asarray(raw, np.float32), also)
    else:
        score = _crispness(soft.prob)
    if neighbour_area is not None:
        area = int(np.count_nonzero(soft.prob >= 0.5))
        score *= 1.0 - abs(area - neighbour_area) / max(area, neighbour_area, 1)
    return float(np.clip(score, 0.0, 1.0))


def round_bounds(annotated, frame: int) -> tuple[int | None, int | None]:
    """The nearest frames annotated in earlier rounds below and above ``frame``.

    A round annotated on ``frame`` propagates up to them (exclusive), or to the
    sequence's ends where there is none (``None``); see :func:`blend_weight`.
    """
    lower = max((a for a in annotated if a < frame), default=None)
    upper = min((a for a in annotated if a > frame), default=None)
    return lower, upper


def blend_weight(f: int, t: int, end: int | None) -> float:
    """Weight of the new round on frame ``f`` propagated from ``t`` towards ``end``.

    1 when there is no earlier annotation on that side (``end`` is None), otherwise
    ``max(0, 1 - |f - t| / |end - t|)``, which is 0 at the annotated frame ``end``.
    """
    if end is None:
        return 1.0
    return max(0.0, 1.0 - abs(f - t) / abs(end - t))


def _settings(name: str, value, default, kind):
    """A Session argument that takes settings: None -> ``default``, True -> ``kind()``,
    False -> None (off), or an instance of ``kind``."""
    if value is None:
        value = default
    elif value is True:
        value = kind()
    if not (value is False or value is None or isinstance(value, kind)):
        raise TypeError(f"{name} must be True, False, None or a {kind.__name__}, got {value!r}")
    return value or None


class Session:
    """Interactive multi-object segmentation of one sequence.

    Parameters
    ----------
    frames:
        (T, H, W) or (T, H, W, C) array-like, any numeric dtype; read frame by frame.
    model:
        An :class:`~napari_ipnet.model.networks.IPNetModel` (see :func:`load_model`), or
        any object with the :class:`~napari_ipnet.model.interface.SegmentationModel`
        interface.
    objects_may_end:
        Objects may end inside the sequence, as nuclei do within a z-stack: the
        propagation may then empty a frame. False (the default) suits time-lapses and
        videos, where a dim or blurred object is still there. Only models made for it
        use it (see :attr:`uses_objects_may_end`): those with a second propagation
        network for such objects (``model.config.ending_network``, the bundled model).
    refine:
        Scribbles are constraints (the default): after the interaction network, each
        object's probability is refined on its region by a random walker with the
        network's answer as prior, pixels under this round's positive strokes set to
        the object and under its negative strokes to background (see
        :mod:`napari_ipnet.refine`). A :class:`~napari_ipnet.refine.RefineSettings`
        sets its parameters; False keeps the network's output as it is; None (the
        default) takes :attr:`default_refine`.
    calibrate:
        Calibrate the propagation of each round on its annotated frame (see
        :mod:`napari_ipnet.calibration`); None (the default) takes
        :attr:`calibrate_propagation` (on).
    calibrate_corrections:
        With ``calibrate``: calibrate the correction rounds too, each on its corrected
        frame (False: only each object's first round, the rule before), unless
        ``objects_may_end``; None (the default) takes
        :attr:`calibrate_correction_rounds` (on).
    memory:
        Propagation also reads the object's annotated frames and the frame it comes
        from, by image features (see :mod:`napari_ipnet.memory`): a
        :class:`~napari_ipnet.memory.MemorySettings` sets how, False turns it off,
        None (the default) takes :attr:`default_memory`.
    """

    #: objects run through a network in one call (a batch); more are split into chunks
    batch_size: int = 8

    #: the refinement a session uses when ``refine`` is not given
    default_refine: RefineSettings | None = RefineSettings()

    #: calibrate the propagation of each round on its annotated frame (see
    #: :mod:`napari_ipnet.calibration`): one more network pass per object and round
    calibrate_propagation: bool = True

    #: with :attr:`calibrate_propagation`, calibrate correction rounds too: on the
    #: corrected frame, from the object's new label there and, as the previous round's
    #: mask, its mask there before the correction (what the network sees on the other
    #: frames of such a round); not where :attr:`objects_may_end` (see :meth:`_calibration`)
    calibrate_correction_rounds: bool = True

    #: the memory readout a session uses when ``memory`` is not given
    default_memory: MemorySettings | None = MemorySettings()

    def __init__(
        self,
        frames,
        model: SegmentationModel,
        objects_may_end: bool = False,
        refine: bool | RefineSettings | None = None,
        calibrate: bool | None = None,
        memory: bool | MemorySettings | None = None,
        calibrate_corrections: bool | None = None,
    ) -> None:
        self.frames = frames if isinstance(frames, FrameSource) else FrameSource(frames)
        self.model = model.eval()
        self.objects_may_end = bool(objects_may_end)
        self.refine: RefineSettings | None = _settings("refine", refine, self.default_refine, RefineSettings)
        if calibrate is not None:
            self.calibrate_propagation = bool(calibrate)
        if calibrate_corrections is not None:
            self.calibrate_correction_rounds = bool(calibrate_corrections)
        self.memory: MemorySettings | None = _settings("memory", memory, self.default_memory, MemorySettings)
        self._objects: dict[int, _ObjectState] = {}
        self._round_frame: int | None = None  # frame interacted on in the open round
        self._round_objects: list[int] = []
        self._restores = 0  # counts restore() calls: a propagation started before one stops
        self._log: list[dict] = []  # the public calls that made the state (see session_file)

    # ------------------------------------------------------------------ properties
    @property
    def uses_objects_may_end(self) -> bool:
        """Whether the model acts on :attr:`objects_may_end`."""
        return self.model.uses_objects_may_end

    @property
    def n_frames(self) -> int:
        return self.frames.n_frames

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the label array."""
        return (self.frames.n_frames, self.frames.height, self.frames.width)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._objects)

    @property
    def pending_frame(self) -> int | None:
        """Frame of the current round's interaction, waiting to be propagated."""
        return self._round_frame

    def annotated_frames(self, object_id: int | None = None) -> list[int]:
        """Frames annotated in closed rounds (for one object, or any object)."""
        if object_id is not None:
            return sorted(self._state(object_id).annotated)
        return sorted(set().union(*(s.annotated for s in self._objects.values()))) if self._objects else []

    def _state(self, object_id: int) -> _ObjectState:
        if object_id not in self._objects:
            raise KeyError(f"unknown object {object_id}; known objects: {self.object_ids}")
        return self._objects[object_id]

    # ------------------------------------------------------------------ masks
    def probability(self, frame: int, object_id: int) -> np.ndarray:
        """Foreground probability (H, W) float32 of one object on one frame."""
        frame = self.frames.check_index(frame)
        m = self._state(object_id).masks.get(frame)
        if m is None:
            return np.zeros((self.frames.height, self.frames.width), np.float32)
        return m.paste(self.frames.height, self.frames.width)

    def label_frame(self, frame: int) -> np.ndarray:
        """Label map (H, W) of one frame after soft aggregation (0 = background)."""
        frame = self.frames.check_index(frame)
        out = np.zeros((self.frames.height, self.frames.width), self._label_dtype())
        masks = [(k, self._objects[k].masks[frame]) for k in self.object_ids if frame in self._objects[k].masks]
        if not masks:
            return out
        # argmax of the aggregated softmax == argmax of p over {bg, objects}; a running
        # maximum (first wins on ties, as argmax) over each mask's own crop: the cost
        # grows with the objects' sizes, not with their number times the frame
        best = np.ones(out.shape, np.float32)
        probs = []
        for k, m in masks:
            h, w = m.data.shape
            sl = (slice(m.y0, m.y0 + h), slice(m.x0, m.x0 + w))
            p = m.prob
            best[sl] *= 1.0 - np.clip(p, _EPS, 1 - _EPS)
            probs.append((k, sl, p))
        for k, sl, p in probs:
            win = p > best[sl]
            out[sl][win] = k
            np.maximum(best[sl], p, out=best[sl])
        return out

    def frame_confidence(self, object_id: int | None = None, reduce: str = "mean") -> np.ndarray:
        """How sure the engine is of each frame's mask: a (T,) float32 array in [0, 1].

        Per object (``object_id``), or over the objects: their mean (``reduce="mean"``,
        the default: a frame's J is the mean of its objects' J, and a correction there
        fixes all of them; the minimum let the hardest of ten cells decide every frame,
        see ``weights/README.md``) or their minimum (``reduce="min"``: the frame where
        some object is least sure). Frames the
        user annotated (closed rounds) are 1 for the objects annotated there; frames
        never segmented are 0 (nothing is known there); the others carry the score of
        their latest computation (see :func:`mask_confidence`), updated as frames are
        propagated; where a later round's mask is blended with the previous round's
        (:func:`blend_weight`), its score is blended with the previous score by the
        same weight. Low values point at the frames to check first.
        """
        if reduce not in ("mean", "min"):
            raise ValueError(f"reduce must be 'mean' or 'min', got {reduce!r}")
        ids = [object_id] if object_id is not None else self.object_ids
        if not ids:
            return np.ones(self.n_frames, np.float32)
        per_object = np.zeros((len(ids), self.n_frames), np.float64)
        for i, k in enumerate(ids):
            state = self._state(k)
            for t, c in state.confidence.items():
                per_object[i, t] = c
            per_object[i, sorted(state.annotated)] = 1.0
        out = per_object.mean(axis=0) if reduce == "mean" else per_object.min(axis=0)
        return out.astype(np.float32)

    def _label_dtype(self):
        return np.uint8 if (max(self._objects, default=0) < 256) else np.uint16

    @property
    def labels(self) -> np.ndarray:
        """Label array (T, H, W) of the whole sequence (uint8, or uint16 past 255 ids)."""
        out = np.zeros(self.shape, self._label_dtype())
        touched = set().union(*(s.masks.keys() for s in self._objects.values())) if self._objects else set()
        for t in sorted(touched):
            out[t] = self.label_frame(t)
        return out

    def memory_bytes(self) -> int:
        """Bytes held by the stored soft masks."""
        return sum(m.nbytes for s in self._objects.values() for m in s.masks.values())

    # ------------------------------------------------------------------ network calls
    def _rgb_tensor(self, frame: int) -> torch.Tensor:
        rgb = self.frames.rgb(frame)
        return torch.from_numpy(rgb).permute(2, 0, 1)[None].to(self.model.device)

    def _roi_rgb(self, frame: int, boxes: list[Box]) -> torch.Tensor:
        """Frame ``frame`` warped into each box: (len(boxes), 3, S, S) on the model's device."""
        h, w = self.frames.height, self.frames.width
        size = self.model.config.roi_size
        frame_rgb = self._rgb_tensor(frame)
        crops = []
        for box in boxes:
            y0, x0, y1, x1 = box.clip_int(h, w)
            local = Box(box.y0 - y0, box.x0 - x0, box.y1 - y0, box.x1 - x0)
            crops.append(warp_in(frame_rgb[:, :, y0:y1, x0:x1], local, size))
        return torch.cat(crops)

    def _roi_maps(self, maps: list[np.ndarray], box: Box) -> torch.Tensor:
        """Maps over the part of the frame ``box`` covers, warped into it: (1, len(maps), S, S)."""
        h, w = self.frames.height, self.frames.width
        y0, x0, _, _ = box.clip_int(h, w)
        local = Box(box.y0 - y0, box.x0 - x0, box.y1 - y0, box.x1 - x0)
        stacked = torch.from_numpy(np.stack([np.asarray(m, np.float32) for m in maps]))[None].to(self.model.device)
        return warp_in(stacked, local, self.model.config.roi_size)

    def _run(self, net, frame: int, jobs: list[tuple[list[np.ndarray], Box]], extra=(), rgb=None):
        """Run ``net`` on several objects of one frame as one batch.

        Each job is ``(maps, box)``: the object's region of interest and its input
        maps over the part of the frame the box covers (``box.clip_int``), so that no
        full-frame map is made per object. The frame and the maps are warped into
        each box, the network runs once on the batch (in chunks of
        :attr:`batch_size`), and each foreground probability is warped back.
        ``extra``: further network inputs, each a tensor with one row per job (the
        references) or ``None``. ``rgb``: the frame already warped into the boxes
        (:meth:`_roi_rgb`), if the caller has it.

        Returns a list, one ``((y0, x0), crop, feature)`` per job.
        """
        h, w = self.frames.height, self.frames.width
        if rgb is None:
            rgb = self._roi_rgb(frame, [box for _, box in jobs])
        results = []
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            roi_maps = torch.cat([self._roi_maps(maps, box) for maps, box in chunk])
            inputs = [roi_maps[:, i : i + 1] for i in range(roi_maps.shape[1])]
            more = tuple(None if x is None else x[start : start + len(chunk)] for x in extra)
            with torch.inference_mode(), self.model.autocast():
                out = net(rgb[start : start + len(chunk)], *inputs, *more)
            logits = out.logits.float()
            if not torch.isfinite(logits).all():
                # NaN would otherwise be cast silently to an arbitrary uint8 mask value
                which = "interaction" if net is self.model.interaction else "propagation"
                raise FloatingPointError(
                    f"the {which} network produced NaN or infinite scores on frame {frame}: the weights "
                    "may be broken, or float16 overflowed (load the model with half=False)"
                )
            prob = torch.softmax(logits, dim=1)[:, 1:2]
            with torch.inference_mode():
                for i, (_, box) in enumerate(chunk):
                    (y0, x0, y1, x1), crop = warp_out(prob[i : i + 1], box, h, w)
                    results.append(((y0, x0), crop[0, 0].cpu().numpy(), out.feature[i : i + 1]))
        return results

    def _image_features(self, rgb: torch.Tensor, size: int) -> torch.Tensor:
        """The model's image features of ROI crops ``rgb``, resampled to ``size`` pixels
        (in chunks of :attr:`batch_size`)."""
        with torch.inference_mode(), self.model.autocast():
            if rgb.shape[-1] != size:
                rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=True,
                                                      antialias=True)
            return torch.cat([
                self.model.image_features(rgb[i : i + self.batch_size]).float()
                for i in range(0, len(rgb), self.batch_size)
            ])

    def _region_of(self, frame: int, k: int, box: Box) -> tuple[tuple[slice, slice], np.ndarray]:
        """The frame region a box covers, and object ``k``'s probability over it."""
        y0, x0, y1, x1 = box.clip_int(self.frames.height, self.frames.width)
        m = self._objects[k].masks.get(frame)
        prev = m.region(y0, x0, y1, x1) if m is not None else np.zeros((y1 - y0, x1 - x0), np.float32)
        return (slice(y0, y1), slice(x0, x1)), prev

    # ------------------------------------------------------------------ interaction
    def _check_map(self, m, name: str) -> np.ndarray:
        """A scribble map of this sequence's frame size as bool (None: empty); a map that
        is not a 0/1 mask is refused (see :func:`~napari_ipnet.scribbles.scribble_map`)."""
        return scribble_map(m, (self.frames.height, self.frames.width), name)

    #: the largest object id: labels are uint8, or uint16 past 255 ids
    MAX_OBJECT_ID = 65535

    def _check_object_id(self, object_id) -> int:
        """``object_id`` as an int, or a ValueError naming the valid range."""
        if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)) or not (
            1 <= object_id <= self.MAX_OBJECT_ID
        ):
            raise ValueError(
                f"object_id must be an integer from 1 to {self.MAX_OBJECT_ID} (0 is background), got {object_id!r}"
            )
        return int(object_id)

    def _open_round(self, frame: int) -> None:
        if self._round_frame is not None and self._round_frame != frame:
            self._close_round()
        self._round_frame = frame

    def interact(
        self,
        frame: int,
        positive: np.ndarray | None,
        negative: np.ndarray | None = None,
        object_id: int = 1,
    ) -> np.ndarray:
        """Run the interaction network for one object on one frame.

        Strokes accumulate on the frame until the round is propagated. The negatives
        seen by the network are ``negative``, earlier negatives on this frame, and the
        positive strokes of the other objects on this frame.

        A new object starts with a positive stroke: negative strokes alone only
        correct an object that exists (on a new object they are a ValueError).

        Returns
        -------
        numpy.ndarray
            The object's new foreground probability (H, W) on ``frame``.
        """
        frame = self.frames.check_index(frame)
        object_id = self._check_object_id(object_id)
        pos = self._check_map(positive, "positive")
        neg = self._check_map(negative, "negative")
        if not pos.any() and not neg.any():
            raise ValueError("empty scribbles: draw at least one positive or negative stroke")
        if object_id not in self._objects and not pos.any():
            raise ValueError(
                f"object {object_id} is new: start it with a positive stroke on it (negative strokes "
                "only correct an object that exists)"
            )
        self._open_round(frame)
        state = self._objects.setdefault(object_id, _ObjectState())
        given = (pos, neg)
        if frame in state.positive:
            pos = pos | state.positive[frame]
            neg = neg | state.negative[frame]
        state.positive[frame], state.negative[frame] = pos, neg
        self._interact_objects(frame, [object_id])
        self._record("interact", frame=frame, object_id=object_id, positive=given[0], negative=given[1])
        return self.probability(frame, object_id)

    def _interact_objects(self, frame: int, ids: list[int]) -> None:
        """Run the interaction network for objects ``ids`` on ``frame``, as one batch.

        Each object sees its own positive strokes; its negatives are its negative
        strokes plus the other objects' positive strokes on this frame. Its region of
        interest comes from its own evidence (:func:`~napari_ipnet.model.roi.object_box`).
        """
        h, w = self.frames.height, self.frames.width
        # how many objects have a positive stroke on each pixel: the others' strokes
        # of object k are where that count exceeds k's own
        count = np.zeros((h, w), np.uint16)
        for other in self._objects.values():
            if frame in other.positive:
                count += other.positive[frame]
        jobs, regions = [], []
        for k in ids:
            state = self._objects[k]
            pos, neg = state.positive[frame], state.negative[frame]
            soft = state.masks.get(frame)
            if state.before is None or state.before[0] != frame:
                state.before = (frame, soft)
            evidence = union_bounds([soft.bounds() if soft is not None else None, map_bounds([pos])])
            box = object_box_from_bounds(evidence, h, w, lambda: map_bounds([neg | (count > pos)]))
            sl, prev = self._region_of(frame, k, box)
            pos_r = pos[sl]
            neg_r = neg[sl] | (count[sl] > pos_r)
            jobs.append(([prev, pos_r, neg_r], box))
            regions.append(sl)
        for k, (maps, _), sl, ((y0, x0), crop, feature) in zip(
            ids, jobs, regions, self._run(self.model.interaction, frame, jobs)
        ):
            state = self._objects[k]
            if self.refine is not None:
                crop = refine_probability(self.frames.rgb(frame)[sl], crop, maps[1], maps[2], self.refine,
                                          previous=maps[0])
            soft = SoftMask.from_crop(y0, x0, crop)
            if soft is None:
                state.masks.pop(frame, None)
            else:
                state.masks[frame] = soft
            state.confidence[frame] = mask_confidence(soft)
            state.reference = feature.detach()
            if k not in self._round_objects:
                self._round_objects.append(k)

    def interact_davis(self, scribbles: Mapping, frame: int | None = None) -> int:
        """Interact with DAVIS scribble JSON (all objects of one frame).

        Object 0 strokes are background. Every object with strokes, and every known
        object, is re-segmented on that frame (see :meth:`interact_many`). Returns the
        frame index.
        """
        frame, maps = davis_to_maps(scribbles, self.frames.height, self.frames.width, frame)
        if not maps or not any(m.any() for m in maps.values()):
            raise ValueError("empty scribbles: the scribble dict has no stroke on any frame")
        background = maps.pop(0, None)
        self.interact_many(frame, maps, background)
        return self.frames.check_index(frame)

    def interact_many(
        self,
        frame: int,
        positives: Mapping[int, np.ndarray],
        negative: np.ndarray | None = None,
    ) -> list[int]:
        """Run the interaction network for all objects of one frame at once.

        ``positives`` maps object ids to their positive scribble maps (H, W);
        ``negative`` is the background's scribble map, a negative for every object.
        Each object's negatives are also the other objects' positives. Every object
        with strokes, and every known object, is re-segmented on the frame, as one
        batch. Strokes accumulate on the frame until the round is propagated.

        Returns
        -------
        list of int
            The objects re-segmented.
        """
        frame = self.frames.check_index(frame)
        maps = {self._check_object_id(k): self._check_map(m, f"object {k}'s positive") for k, m in positives.items()}
        maps = {k: m for k, m in maps.items() if m.any() or k in self._objects}  # no stroke, no new object
        background = self._check_map(negative, "negative")
        if not background.any() and not any(m.any() for m in maps.values()):
            raise ValueError("empty scribbles: draw at least one positive or negative stroke")
        ids = sorted(set(maps) | set(self._objects))
        if not ids:
            raise ValueError(
                "background strokes alone, and no object yet: start an object with a positive stroke on it"
            )
        self._open_round(frame)
        empty = np.zeros_like(background)
        for k in ids:
            state = self._objects.setdefault(k, _ObjectState())
            pos = maps.get(k, empty)
            neg = background
            if frame in state.positive:
                pos = pos | state.positive[frame]
                neg = neg | state.negative[frame]
            state.positive[frame], state.negative[frame] = pos, neg
        run = [
            k for k in ids
            if self._objects[k].positive[frame].any() or self._objects[k].negative[frame].any() or len(ids) > 1
        ]
        self._interact_objects(frame, run)
        self._record("interact_many", frame=frame, positives=maps, negative=background)
        return run

    # ------------------------------------------------------------------ propagation
    def _bounds(self, object_id: int, frame: int) -> tuple[int | None, int | None]:
        return round_bounds(self._objects[object_id].annotated, frame)

    def propagation_plan(self, frame: int | None = None) -> list[int]:
        """Frames the next :meth:`propagate` will update, in order (forward, then backward)."""
        frame = self._round_frame if frame is None else frame
        if frame is None:
            return []
        # union over the round's objects of the frames with a non-zero weight
        bounds = [self._bounds(k, frame) for k in self._round_objects]
        fwd_end = max((self.n_frames if upper is None else upper for _, upper in bounds), default=self.n_frames)
        bwd_end = min((-1 if lower is None else lower for lower, _ in bounds), default=-1)
        return list(range(frame + 1, fwd_end)) + list(range(frame - 1, bwd_end, -1))

    def propagate(self, frame: int | None = None) -> Generator[int, None, None]:
        """Propagate the current round forward and backward; yield each finished frame.

        Each frame is committed for all objects at once before it is yielded, so
        closing the generator early leaves every frame either updated or untouched.
        Once the first frame has been computed, the round is closed when the generator
        finishes or is closed; closing it before that changes nothing and leaves the
        round open, to be propagated later.
        """
        if self._round_frame is None:
            raise RuntimeError("nothing to propagate: scribble on a frame first (interact)")
        if frame is not None and self.frames.check_index(frame) != self._round_frame:
            raise ValueError(
                f"the current round was annotated on frame {self._round_frame}, not {frame}; "
                "propagate from that frame or interact on the new one first"
            )
        t = self._round_frame
        ids = list(self._round_objects)
        # a round fixes its settings when it starts: the network does not change mid-round
        net = self._propagation_net()
        fused = {k: self._fused_reference(self._objects[k], net) for k in ids}
        from .session_file import logged_propagation

        return logged_propagation(
            self, self._propagate(t, ids, fused, self.calibrate_propagation, self._restores, net, self.memory), t
        )

    def _calibration(self, net, t: int, ids: list[int], fused: dict) -> dict[int, float]:
        """The logit offset of each object for this round (:func:`~napari_ipnet.calibration.fit_logit_bias`).

        The propagation network runs on the annotated frame ``t`` itself, with the
        object's label there as the neighbouring frame's mask, and as the previous
        round's mask what it sees on the other frames of the round: nothing in the
        object's first round; in a correction round (with
        :attr:`calibrate_correction_rounds`), the object's mask on ``t`` before the
        correction. The offset that best turns its answer into that label is used on
        every frame the round reaches.

        Without :attr:`calibrate_correction_rounds`, objects in a later round get none
        (this was the rule until it was measured: from a corrected frame that the
        correction made right, one step of an uncalibrated network lost 0.1-0.4 J on
        small cells). Nor do they with :attr:`objects_may_end`: the offset, fitted where
        the object is, kept nuclei of a z-stack past the plane where they end (CHO along
        z, J after 3 rounds 0.883 -> 0.756).
        """
        h, w = self.frames.height, self.frames.width
        corrections = self.calibrate_correction_rounds and not self.objects_may_end
        todo = [k for k in ids if t in self._objects[k].masks and (not self._objects[k].annotated or corrections)]
        if not todo:
            return {}
        labels = self.label_frame(t)
        jobs = []
        for k in todo:
            state = self._objects[k]
            box = object_box_from_bounds(state.masks[t].bounds(), h, w)
            y0, x0, y1, x1 = box.clip_int(h, w)
            own = (labels[y0:y1, x0:x1] == k).astype(np.float32)
            previous = np.zeros_like(own)
            if state.annotated and state.before is not None and state.before[0] == t and state.before[1] is not None:
                previous = state.before[1].region(y0, x0, y1, x1)
            jobs.append(([previous, own], box))
        bias = {}
        for k, ((cy, cx), crop, _) in zip(todo, self._run(net, t, jobs, [torch.cat([fused[k] for k in todo])])):
            target = labels[cy : cy + crop.shape[0], cx : cx + crop.shape[1]] == k
            bias[k] = fit_logit_bias(crop, target)
        return bias

    def _fused_reference(self, state: _ObjectState, net=None) -> torch.Tensor:
        """The reference the propagation of ``state``'s current round uses.

        The new round's reference fused with the earlier ones (the paper), or, for a
        model configured with ``fuse_references=False``, the first round's reference.
        """
        if state.fused_reference is not None and not self.model.config.fuse_references:
            return state.fused_reference
        with torch.inference_mode():
            return (net or self._propagation_net()).SEFA(state.reference, state.fused_reference)

    def _memories(self, t: int, ids: list[int], settings: MemorySettings) -> dict[int, ObjectMemory]:
        """Each object's memory for the round annotated on ``t``: the image features of
        every frame annotated for it (this round's and the earlier rounds'), with its
        label there, each in the object's region of interest on that frame."""
        h, w = self.frames.height, self.frames.width
        memories = {k: ObjectMemory() for k in ids}
        by_frame: dict[int, list[int]] = {}
        for k in ids:
            state = self._objects[k]
            for a in sorted(state.annotated | {t}):
                if a in state.masks:
                    by_frame.setdefault(a, []).append(k)
        for a, objects in sorted(by_frame.items()):
            labels = self.label_frame(a)
            boxes = [object_box_from_bounds(self._objects[k].masks[a].bounds(), h, w) for k in objects]
            features = self._image_features(self._roi_rgb(a, boxes), settings.feature_size)
            for k, box, feature in zip(objects, boxes, features):
                label = self._roi_label(labels, k, box, feature.shape[-1])
                memories[k].annotated.append(MemoryFrame(feature, label))
        return {k: m for k, m in memories.items() if m.annotated}

    def _roi_label(self, labels: np.ndarray, k: int, box: Box, cells: int) -> torch.Tensor:
        """Object ``k``'s share of each of the ``cells`` x ``cells`` feature cells of ``box``."""
        y0, x0, y1, x1 = box.clip_int(self.frames.height, self.frames.width)
        with torch.inference_mode():
            return label_cells(self._roi_maps([labels[y0:y1, x0:x1] == k], box), cells).cpu()

    def _propagate(
        self, t: int, ids: list[int], fused: dict, calibrate: bool, restores: int, net,
        memory: MemorySettings | None = None,
    ) -> Generator[int, None, None]:
        # in the generator, so that propagate() itself returns at once (a GUI calls it
        # on its main thread); a failure here leaves the round open
        bias = self._calibration(net, t, ids, fused) if calibrate else {}
        memories = self._memories(t, ids, memory) if memory is not None else {}
        try:
            bounds = {k: self._bounds(k, t) for k in ids}
            for direction in (+1, -1):
                f = t + direction
                while 0 <= f < self.n_frames:
                    if self._restores != restores:
                        return
                    weights = {}
                    for k in ids:
                        end = bounds[k][1] if direction > 0 else bounds[k][0]
                        w = blend_weight(f, t, end)
                        if w > 0.0 and (end is None or (f - end) * direction < 0):
                            weights[k] = w
                    if not weights:
                        break
                    # the previous frame's label map, shared by all objects
                    neighbour = self.label_frame(f - direction)
                    updates = self._propagate_objects(net, f, neighbour, weights, fused, bias, memories, memory)
                    for k, soft in updates.items():  # commit the frame for all objects
                        if soft is None:
                            self._objects[k].masks.pop(f, None)
                        else:
                            self._objects[k].masks[f] = soft
                    yield f
                    f += direction
        finally:
            if self._restores == restores:  # after restore() the round is no longer ours
                self._close_round(fused)

    def _propagation_net(self):
        return self.model.propagation_for(self.objects_may_end)

    def _propagation_jobs(self, f: int, neighbour: np.ndarray, ids: list[int]) -> list[tuple[list[np.ndarray], Box]]:
        """The propagation network's inputs on frame ``f`` for objects ``ids``: one
        ``([previous-round mask, neighbour's mask], box)`` per object (see :meth:`_run`).

        Each box comes from the object's own masks (this frame's previous round, the
        neighbouring frame's label ``neighbour``) and covers all of its neighbour pixels.
        """
        h, w = self.frames.height, self.frames.width
        where = ndimage.find_objects(neighbour, max_label=max(ids))  # each label's bounds, one pass
        jobs = []
        for k in ids:
            soft = self._objects[k].masks.get(f)
            nb_slices = where[k - 1]
            nb_bounds = None if nb_slices is None else (
                nb_slices[0].start, nb_slices[1].start, nb_slices[0].stop - 1, nb_slices[1].stop - 1
            )
            box = object_box_from_bounds(union_bounds([soft.bounds() if soft is not None else None, nb_bounds]), h, w)
            sl, prev = self._region_of(f, k, box)
            jobs.append(([prev, (neighbour[sl] == k).astype(np.float32)], box))
        return jobs

    def _propagate_objects(
        self, net, f: int, neighbour: np.ndarray, weights: dict[int, float], fused: dict,
        bias: dict[int, float] | None = None, memories: dict[int, ObjectMemory] | None = None,
        memory: MemorySettings | None = None,
    ) -> dict[int, SoftMask | None]:
        """New soft masks on frame ``f`` of the objects in ``weights``, as one batch.

        Each object's network output gets its logit offset in its first round
        (``bias``, see :meth:`_calibration`), is averaged with its memory readout
        (``memories``, see :mod:`napari_ipnet.memory`) and blended with its
        previous-round mask by its weight; its region of interest comes from its own
        masks (this frame's previous round, the neighbouring frame's label).
        """
        ids = list(weights)
        jobs = self._propagation_jobs(f, neighbour, ids)
        extra = [torch.cat([fused[k] for k in ids])]
        rgb = self._roi_rgb(f, [box for _, box in jobs])
        read = memory is not None and any(k in (memories or {}) for k in ids)
        features = self._image_features(rgb, memory.feature_size) if read else None
        out = {}
        for j, (k, (maps, box), ((cy, cx), raw, _)) in enumerate(zip(ids, jobs, self._run(net, f, jobs, extra, rgb))):
            crop = apply_logit_bias(raw, (bias or {}).get(k, 0.0))
            if read and k in memories:
                read_crop, weight = self._memory_readout(memories[k], f, features[j], box, neighbour, k, memory)
                crop = fuse(crop, read_crop, weight)
            out[k] = self._blend(k, f, cy, cx, crop, weights[k])
            # the box covers all of k's neighbour pixels, so its map counts them all; the
            # network's answer before the offset says how sure it was (mask_confidence)
            conf = mask_confidence(out[k], raw=raw, neighbour=maps[1], may_end=self.objects_may_end)
            before = self._objects[k].confidence.get(f)
            if weights[k] < 1.0 and before is not None:
                # the mask is blended with the previous round's: so is its confidence
                conf = weights[k] * conf + (1.0 - weights[k]) * before
            self._objects[k].confidence[f] = conf
        return out

    def _memory_readout(
        self, mem: ObjectMemory, f: int, feature: torch.Tensor, box: Box, neighbour: np.ndarray, k: int,
        settings: MemorySettings,
    ) -> tuple[np.ndarray, float]:
        """Object ``k``'s probability on frame ``f`` read from its memory, over ``box``'s
        crop of the frame (as :meth:`_run` gives the network's), and the weight it gets
        (:func:`~napari_ipnet.memory.object_weight`); the frame's features then become
        the memory's last frame."""
        cells = feature.shape[-1]
        frames = list(mem.annotated)
        if settings.previous_frame and mem.last_frame is not None and abs(f - mem.last_frame) == 1:
            # the frame this one comes from: its features, and k's label as just propagated
            frames.append(MemoryFrame(mem.last_feature, self._roi_label(neighbour, k, mem.last_box, cells)))
        mem.last_frame, mem.last_feature, mem.last_box = f, feature, box
        size = self.model.config.roi_size
        with torch.inference_mode():
            prob = readout(feature, frames, settings)[None, None]
            prob = torch.nn.functional.interpolate(prob, size=(size, size), mode="bilinear", align_corners=True)
            _, crop = warp_out(prob, box, self.frames.height, self.frames.width)
        return crop[0, 0].cpu().numpy(), object_weight(frames, settings)

    def _blend(self, k: int, f: int, cy: int, cx: int, crop: np.ndarray, w: float):
        """Blend a new crop into object ``k``'s previous-round mask on frame ``f`` with weight ``w``."""
        if w >= 1.0:
            return SoftMask.from_crop(cy, cx, crop)
        # blend only where either map can be non-zero: the ROI crop and the old mask
        old = self._objects[k].masks.get(f)
        y0, x0, y1, x1 = (cy, cx, cy + crop.shape[0], cx + crop.shape[1])
        if old is not None:
            y0, x0, y1, x1 = _cover((y0, x0, y1, x1), old.extent)
        new = np.zeros((y1 - y0, x1 - x0), np.float32)
        new[cy - y0 : cy - y0 + crop.shape[0], cx - x0 : cx - x0 + crop.shape[1]] = crop
        prev = old.region(y0, x0, y1, x1) if old is not None else 0.0
        blended = w * new + (1.0 - w) * prev
        return SoftMask.from_crop(y0, x0, blended)

    def _close_round(self, fused: dict | None = None) -> None:
        t = self._round_frame
        if t is None:
            return
        for k in self._round_objects:
            state = self._objects.get(k)
            if state is None:
                continue
            if fused is not None and k in fused:
                state.fused_reference = fused[k]
            elif state.reference is not None:
                state.fused_reference = self._fused_reference(state)
            state.reference = None
            state.before = None
            state.annotated.add(t)
            state.positive.clear()
            state.negative.clear()
        self._round_frame = None
        self._round_objects = []

    # ------------------------------------------------------------------ device
    def to_device(self, device) -> None:
        """Move the session's reference features to ``device`` (the model's, after
        ``model.to(device)``), so that the next round runs there.

        Do not call it while an interaction or a propagation is running.
        """
        device = torch.device(device)
        for state in self._objects.values():
            if state.reference is not None:
                state.reference = state.reference.to(device)
            if state.fused_reference is not None:
                state.fused_reference = state.fused_reference.to(device)

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> SessionSnapshot:
        """Capture the whole engine state, to go back to it later with :meth:`restore`.

        The snapshot covers, per object, the soft masks of every frame, the frames
        annotated in closed rounds, the fused reference of the last closed round, and
        the open round's reference feature and strokes; plus the open round itself
        (its frame and objects). Undoing a result in an editor is ``restore`` of the
        snapshot taken before it.

        Returns
        -------
        SessionSnapshot
            An opaque, immutable snapshot. It is cheap: the soft masks, tensors and
            stroke maps are shared with the session (the session replaces them, never
            modifies them in place), only the dicts and sets holding them are copied,
            so its memory is a few dict entries per object and frame, no image data.

        Notes
        -----
        Do not call it from another thread while :meth:`interact` or a
        :meth:`propagate` generator is running: the state would be caught
        half-updated.

        Examples
        --------
        >>> before = session.snapshot()                       # doctest: +SKIP
        >>> session.interact(3, positive)                     # doctest: +SKIP
        >>> for t in session.propagate(): pass                # doctest: +SKIP
        >>> session.restore(before)    # as if neither call had happened  # doctest: +SKIP
        """
        objects = {
            k: _ObjectSnapshot(
                masks=dict(s.masks),
                annotated=frozenset(s.annotated),
                fused_reference=s.fused_reference,
                reference=s.reference,
                positive=dict(s.positive),
                negative=dict(s.negative),
                confidence=dict(s.confidence),
                before=s.before,
            )
            for k, s in self._objects.items()
        }
        return SessionSnapshot(
            weakref.ref(self), objects, self._round_frame, tuple(self._round_objects), tuple(map(dict, self._log))
        )

    def restore(self, snapshot: SessionSnapshot) -> None:
        """Put the engine back in the state captured by :meth:`snapshot`.

        Everything done since (interactions, propagated frames, closed rounds,
        resets) is forgotten: labels, annotated frames, the pending round and the
        references are those of the snapshot, and the next round gives the same
        result as if those calls had never been made. A snapshot can be restored any
        number of times, and restoring an older one after a newer one is fine.

        Parameters
        ----------
        snapshot : SessionSnapshot
            A snapshot made by this session's :meth:`snapshot`.

        Raises
        ------
        TypeError
            If ``snapshot`` is not a :class:`SessionSnapshot`.
        ValueError
            If the snapshot was made by another session.

        Notes
        -----
        A :meth:`propagate` generator started before the restore stops at its next
        frame and leaves the restored state alone (it neither writes more frames nor
        closes its round). Do not restore from another thread while one is running.
        """
        if not isinstance(snapshot, SessionSnapshot):
            raise TypeError(f"expected a SessionSnapshot, got {type(snapshot).__name__}")
        if snapshot._owner() is not self:
            raise ValueError("this snapshot was made by another session")
        # fresh containers: the session mutates them, the snapshot must stay intact
        self._objects = {
            k: _ObjectState(
                masks=dict(o.masks),
                annotated=set(o.annotated),
                fused_reference=o.fused_reference,
                reference=o.reference,
                positive=dict(o.positive),
                negative=dict(o.negative),
                confidence=dict(o.confidence),
                before=o.before,
            )
            for k, o in snapshot._objects.items()
        }
        self._round_frame = snapshot._round_frame
        self._round_objects = list(snapshot._round_objects)
        self._log = [dict(e) for e in snapshot._log]
        self._restores += 1

    # ------------------------------------------------------------------ reset
    def reset(self, object_id: int | None = None) -> None:
        """Forget one object (all its masks, strokes and references), or everything.

        A :meth:`propagate` generator running at the time stops at its next frame, as
        after :meth:`restore`: the frames it finished stay, the others keep their
        previous masks.
        """
        if object_id is not None:
            self._state(object_id)
        self._restores += 1  # a running propagation no longer owns the state
        self._record("reset", object_id=object_id)
        if object_id is None:
            self._objects.clear()
            self._round_frame = None
            self._round_objects = []
            return
        del self._objects[object_id]
        if object_id in self._round_objects:
            self._round_objects.remove(object_id)
        if not self._round_objects:
            self._round_frame = None

    # ------------------------------------------------------------------ session files
    #: set by :meth:`load`: how the replay compared with the saved labels
    replay_report = None

    def _record(self, call: str, **args) -> None:
        """Append a public call to the interaction log that :meth:`save` writes."""
        from .session_file import log_entry

        self._log.append(log_entry(self, call, args))

    def save(self, path, *, source=None, names: Mapping[int, str] | None = None) -> Path:
        """Write the session (interaction log, settings, labels) to ``path`` atomically.

        See :func:`napari_ipnet.session_file.save_session` and docs/session_format.md.
        """
        from .session_file import save_session

        return save_session(self, path, source=source, names=names)

    @classmethod
    def load(cls, path, frames=None, model: SegmentationModel | None = None, **kwargs) -> Session:
        """Rebuild a saved session by replaying its log with ``model`` on ``frames``.

        See :func:`napari_ipnet.session_file.load_session` (``frames`` None: reopen the
        recorded image; ``model`` None: the recorded model).
        """
        from .session_file import load_session

        return load_session(path, frames, model, session_class=cls, **kwargs)
