"""The one home of the widget's access to a Labels layer's undo history (no Qt here).

napari 0.9 writes to the history through public API (``Labels.block_history``,
``Labels.data_setitem``, ``Labels.undo`` / ``redo``, the ``paint`` event), but offers
no public way to *read* it: the undo and redo stacks are the private attributes
``Labels._undo_history`` and ``Labels._redo_history``. The widget reads them to keep
IPNet's memory in step with Ctrl+Z / Ctrl+Shift+Z on the output layer. Every such
read goes through this module and nowhere else, so that a napari change (a
deprecation warning, a rename, a public replacement) is handled here once.

What is relied on: a history item is a list of atoms; undo / redo moves a reversed
copy of the list between the two stacks, and the atoms themselves keep their
identity, so an item is found again by the ids of its first and last atom.

Without the attributes (a napari that removed them) the functions answer "no
history" and log it once: results are still written with undo steps, but undoing
them on the layer no longer rolls IPNet's memory back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

_UNDO, _REDO = "_undo_history", "_redo_history"
_missing_logged = False


def _stack(layer, name: str) -> Sequence[list]:
    global _missing_logged
    items = getattr(layer, name, None)
    if items is None:
        if not _missing_logged:
            _missing_logged = True
            log.warning(
                "napari-ipnet: this napari has no Labels.%s; undoing IPNet results on the "
                "layer will not roll IPNet's memory back (napari_ipnet/annotation/history.py)", name
            )
        return ()
    return items


def undo_items(layer) -> Sequence[list]:
    """History items ``layer.undo()`` would take back, oldest first (empty if unknown)."""
    return _stack(layer, _UNDO)


def redo_items(layer) -> Sequence[list]:
    """History items ``layer.redo()`` would bring back, oldest first (empty if unknown)."""
    return _stack(layer, _REDO)


def last_undo_item(layer) -> list | None:
    """The history item written last (the next one ``layer.undo()`` takes back), or None."""
    items = undo_items(layer)
    return items[-1] if len(items) else None


def item_ends(items: Iterable[Sequence[Any]]) -> set[int]:
    """ids of the first and last atom of each history item (identity survives undo / redo)."""
    ids: set[int] = set()
    for item in items:
        if item:
            ids.add(id(item[0]))
            ids.add(id(item[-1]))
    return ids
