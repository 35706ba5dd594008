"""Write Session results into a napari Labels layer, through its undo history.

No Qt here. Two rules:

- only pixels that are background or belong to an object the session manages may
  change; any other label already in the layer (painted by hand, loaded from disk,
  another tool's result) is kept as it is;
- every write is recorded in the layer's undo history with the public API
  (``Labels.block_history`` + ``Labels.data_setitem``), so one Ctrl+Z on the layer
  undoes one interaction, or one whole round of propagation.

A round of propagation writes frames one by one as they arrive (so the user sees
them), straight into the data; :meth:`RoundRecorder.commit` then turns everything the
round wrote into a single history item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .sequence import SequenceSpec

Change = tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]  # (indices, old, new)


def frame_write(
    data, spec: SequenceSpec, frame: int, new_labels: np.ndarray, managed: Iterable[int]
) -> tuple[Change | None, dict[int, int], set[int]]:
    """What writing ``new_labels`` on ``frame`` changes, and what it cannot write.

    Only background and the ``managed`` objects' pixels may change. Returns the change
    (``(indices, old_values, new_values)`` in ``data`` coordinates, or None when
    nothing changes), the pixels of each object of ``new_labels`` that were refused
    because the layer holds another label there (``{object: pixels}``), and those
    other labels.
    """
    lead = spec.index(frame)
    region = np.asarray(data[lead])
    new_labels = np.asarray(new_labels)
    if new_labels.shape != region.shape:
        raise ValueError(f"labels of shape {new_labels.shape} do not fit the layer's frame {region.shape}")
    managed = np.asarray(sorted({int(k) for k in managed}), dtype=np.int64)
    writable = region == 0
    if managed.size:
        writable |= np.isin(region, managed)
    target = np.where(writable, new_labels.astype(region.dtype, copy=False), region)
    refused_px = ~writable & (new_labels != 0) & (new_labels != region)
    refused: dict[int, int] = {}
    owners: set[int] = set()
    if refused_px.any():
        ids, counts = np.unique(new_labels[refused_px], return_counts=True)
        refused = {int(k): int(c) for k, c in zip(ids, counts)}
        owners = {int(v) for v in np.unique(region[refused_px])}
    changed = target != region
    if not changed.any():
        return None, refused, owners
    rr, cc = np.nonzero(changed)
    indices = tuple(np.full(rr.size, i, dtype=np.intp) for i in lead) + (rr, cc)
    return (indices, region[changed], target[changed]), refused, owners


def frame_change(data, spec: SequenceSpec, frame: int, new_labels: np.ndarray, managed: Iterable[int]) -> Change | None:
    """What writing ``new_labels`` on ``frame`` changes, respecting unmanaged labels.

    Returns ``(indices, old_values, new_values)`` in ``data`` coordinates, or None
    when nothing changes (see :func:`frame_write`).
    """
    return frame_write(data, spec, frame, new_labels, managed)[0]


@dataclass
class Refusals:
    """Pixels of a session's objects an output layer kept (it holds other labels there)."""

    pixels: dict[int, int] = field(default_factory=dict)  # object -> pixels not written
    frames: set[int] = field(default_factory=set)
    owners: set[int] = field(default_factory=set)  # the labels that kept them

    def add(self, frame: int, refused: dict[int, int], owners: set[int]) -> None:
        if not refused:
            return
        for k, n in refused.items():
            self.pixels[k] = self.pixels.get(k, 0) + int(n)
        self.frames.add(int(frame))
        self.owners |= set(owners)

    def __bool__(self) -> bool:
        return bool(self.pixels)

    def text(self, layer_name: str, describe=None) -> str:
        """``"3,968 pixels of object 2 on frame 3 were not written to 'masks': ..."``."""
        describe = describe or (lambda ids: ", ".join(f"object {k}" for k in ids))
        ids = sorted(self.pixels)
        total = sum(self.pixels.values())
        per = "" if len(ids) == 1 else " (" + ", ".join(f"{k}: {self.pixels[k]:,}" for k in ids) + ")"
        owners = sorted(self.owners)
        held = "label " + str(owners[0]) if len(owners) == 1 else "labels " + ", ".join(map(str, owners))
        return (
            f"{total:,} pixels of {describe(ids)}{per} on {frames_text(self.frames)} were not written to "
            f"{layer_name!r}: they hold {held} from another object, session or axis, which IPNet "
            "never overwrites. Choose another output layer (Output: 'new layer') to see and save "
            "the whole result."
        )


def erase_change(data, spec: SequenceSpec, frame: int, label: int) -> Change | None:
    """Change that sets the pixels of ``label`` on ``frame`` to background."""
    lead = spec.index(frame)
    region = np.asarray(data[lead])
    changed = region == label
    if not changed.any():
        return None
    rr, cc = np.nonzero(changed)
    indices = tuple(np.full(rr.size, i, dtype=np.intp) for i in lead) + (rr, cc)
    return indices, region[changed], np.zeros(rr.size, region.dtype)


def apply_with_history(layer, changes: list[Change]) -> int:
    """Apply ``changes`` as one undoable step of ``layer``; returns the pixels changed."""
    changes = [c for c in changes if c is not None and c[0][0].size]
    if not changes:
        return 0
    n = 0
    with layer.block_history():
        for i, (indices, _old, new) in enumerate(changes):
            layer.data_setitem(indices, new, refresh=(i == len(changes) - 1))
            n += indices[0].size
    return n


def apply_live(layer, change: Change | None) -> None:
    """Write a change straight into the data (no history) and redraw."""
    if change is None:
        return
    indices, _old, new = change
    layer.data[indices] = new
    layer.refresh()


class RoundRecorder:
    """Collect the live writes of one propagation round into one undo step."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.changes: list[Change] = []
        self.frames: list[int] = []

    def write(self, frame: int, change: Change | None) -> None:
        self.frames.append(frame)
        if change is not None:
            apply_live(self.layer, change)
            self.changes.append(change)

    def commit(self) -> int:
        """Turn the live writes into one history item; returns the pixels recorded.

        Pixels the user edited in the meantime (no longer holding the value the round
        wrote) are left alone and not recorded.
        """
        data = self.layer.data
        kept: list[Change] = []
        # revert, newest first, so that a pixel written twice gets its original value
        for indices, old, new in reversed(self.changes):
            current = np.asarray(data[indices])
            ours = current == new
            if not ours.any():
                continue
            idx = tuple(i[ours] for i in indices)
            data[idx] = old[ours]
            kept.append((idx, old[ours], new[ours]))
        kept.reverse()
        n = apply_with_history(self.layer, kept)
        self.changes = []
        return n


def empty_objects(labels: np.ndarray, ids: Iterable[int]) -> list[int]:
    """The objects of ``ids`` with no pixel in the label map ``labels``, in order."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "u" and labels.dtype.itemsize <= 2:
        present = set(np.flatnonzero(np.bincount(labels.ravel())).tolist())
    else:
        present = set(np.unique(labels).tolist())
    return [int(k) for k in ids if int(k) not in present]


def frame_ranges(frames: Iterable[int]) -> str:
    """Frame numbers as compact text: ``[12, 3, 13, 14, 19]`` -> ``"3, 12-14, 19"``."""
    out: list[str] = []
    run: list[int] = []
    for f in sorted({int(f) for f in frames}):
        if run and f != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(f)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def frames_text(frames: Iterable[int]) -> str:
    """``"frame 7"`` or ``"frames 12-19"``."""
    frames = sorted({int(f) for f in frames})
    return f"{'frame' if len(frames) == 1 else 'frames'} {frame_ranges(frames)}"
