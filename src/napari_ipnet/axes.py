"""What the leading axes of a stack are: names, guesses, and the defaults they imply.

No Qt, no torch here (the reader imports this module). One home for three rules:

- :func:`objects_may_end_default`: whether objects may end along an axis of that name
  (on for z-stacks, off for time); used by the widget, ``napari-ipnet evaluate`` and
  the headless demo;
- :func:`tiff_axes`: the axis names a TIFF file stores (tifffile's ``series[0].axes``,
  which reads ImageJ hyperstack and OME metadata);
- :func:`guess_axis_kinds`: for unnamed axes, which one is probably time and which z.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: axis names (case-insensitive, one word of the name) of a z-stack: objects may end
Z_AXIS_NAMES = frozenset({
    "z", "depth", "depths", "plane", "planes", "slice", "slices", "section", "sections",
    "focal", "focus", "focalplane", "zplane", "zslice", "zstack",
})
#: prefixes that mark a z axis too ("focal_depth", "slices3" ...)
Z_AXIS_PREFIXES = ("depth", "plane", "slice", "section", "focal", "focus")
#: axis names of a time axis: objects do not end
TIME_AXIS_NAMES = frozenset({"t", "time", "times", "frame", "frames", "timepoint", "timepoints", "tp", "video"})

#: tifffile's axis letters -> napari axis labels (Q, I: unknown; C, S: channels)
_TIFF_LETTERS = {"T": "t", "Z": "z", "Y": "y", "X": "x", "C": "c", "S": "s", "R": "r", "E": "e",
                 "H": "h", "A": "a", "P": "p", "L": "l", "V": "v", "M": "m"}
#: longest axis still guessed as z (a z-stack rarely has more planes than this)
MAX_GUESSED_PLANES = 64


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]


def axis_kind(name: str | None) -> str | None:
    """``"z"``, ``"t"`` or None (unknown) for an axis name, case-insensitive.

    ``"z"``, ``"depth"``, ``"Plane"``, ``"z-slice"``, ``"focal plane"`` are z; ``"t"``,
    ``"time"``, ``"frame"`` are time; napari's numeric defaults (``"-3"``), ``"axis 1"``
    and anything else are unknown.
    """
    if not name:
        return None
    words = _words(str(name))
    if any(w in TIME_AXIS_NAMES for w in words):
        return "t"
    if any(w in Z_AXIS_NAMES or w.startswith(Z_AXIS_PREFIXES) for w in words):
        return "z"
    return None


def objects_may_end_default(axis_name: str | None) -> bool:
    """Default of "objects may end" along an axis named ``axis_name``.

    On along a z axis (``z``, ``depth``, ``plane``, ``slice``, ``focal...``, any case):
    nuclei end within a z-stack. Off along time (``t``, ``time``, ``frame``) and along
    axes of unknown meaning: in a video a dim or blurred object is still there.
    """
    return axis_kind(axis_name) == "z"


def is_named(label) -> bool:
    """Whether an axis label is a real name (not napari's numeric default, not empty)."""
    text = str(label).strip() if label is not None else ""
    return bool(text) and not text.lstrip("-").isdigit()


def tiff_axes(path) -> str | None:
    """The axis letters tifffile reads for the first series of a TIFF (``"TZYX"``), or None.

    tifffile reads them from ImageJ hyperstack and OME-XML metadata; ``Q`` (or ``I``)
    marks an axis it knows nothing about. Only the header is read.
    """
    try:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            return str(tf.series[0].axes).upper()
    except Exception:  # noqa: BLE001 - not a TIFF, damaged, or tifffile missing: nothing known
        return None


def tiff_axis_labels(axes: str) -> tuple[str | None, ...]:
    """napari axis labels for tifffile's axis letters: ``"TZYX"`` -> ``("t", "z", "y", "x")``.

    Unknown axes (``Q``, ``I`` and letters tifffile uses for other dimensions) give None.
    """
    return tuple(_TIFF_LETTERS.get(a) for a in axes.upper())


def guess_axis_kinds(shape: Sequence[int], names: Sequence[str | None]) -> list[str | None]:
    """Guessed kind (``"t"``, ``"z"`` or None) of each leading axis whose name says nothing.

    ``shape`` and ``names`` cover the leading axes only (those before Y, X). Axes whose
    name tells (:func:`axis_kind`) get None here: nothing to guess. With a single
    leading axis nothing is guessed (a 20-frame time-lapse and a 20-plane stack look
    alike). With several: the unnamed axis nearest Y, X with at most
    :data:`MAX_GUESSED_PLANES` planes is z (unless an axis is named z), and the
    longest other unnamed axis is time (unless one is named time).
    """
    n = len(shape)
    kinds = [axis_kind(nm) for nm in names]
    out: list[str | None] = [None] * n
    if n < 2:
        return out
    free = [i for i in range(n) if kinds[i] is None]
    if "z" not in kinds:
        for i in reversed(free):
            if int(shape[i]) <= MAX_GUESSED_PLANES:
                out[i] = "z"
                free.remove(i)
                break
    if "t" not in kinds and free and (out.count("z") or "z" in kinds):
        t = max(free, key=lambda i: (int(shape[i]), -i))
        out[t] = "t"
    return out


def axis_entry(index: int, name: str | None, size: int, guess: str | None = None) -> str:
    """Text of an axis in the widget's list.

    ``"t (20 frames)"``, ``"z (5 planes)"``, ``"axis 1 (5 planes; guessed z)"``,
    ``"axis 0 (7 frames)"``.
    """
    label = str(name) if is_named(name) else f"axis {index}"
    kind = axis_kind(label) if is_named(name) else guess
    unit = "plane" if kind == "z" else "frame"
    text = f"{size} {unit}{'s' if size != 1 else ''}"
    if guess is not None and not is_named(name):
        text += f"; guessed {guess}"
    return f"{label} ({text})"
