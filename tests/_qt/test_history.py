"""The undo-history adapter (napari_ipnet.annotation.history) and the FutureWarning guard of tests/_qt."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Labels

from napari_ipnet.annotation import history as _history
from napari_ipnet.annotation.history import item_ends, last_undo_item, redo_items, undo_items
from napari_ipnet.annotation.results import apply_with_history

PACKAGE = Path(_history.__file__).resolve().parents[1]


def _write(layer, frame: int, value: int) -> None:
    idx = (np.array([frame, frame]), np.array([0, 1]), np.array([0, 0]))
    apply_with_history(layer, [(idx, np.zeros(2, np.uint8), np.full(2, value, np.uint8))])


def test_history_items_follow_undo_and_redo_by_their_atoms():
    layer = Labels(np.zeros((3, 4, 5), np.uint8))
    assert last_undo_item(layer) is None and not undo_items(layer) and not redo_items(layer)
    _write(layer, 0, 1)
    first = last_undo_item(layer)
    _write(layer, 1, 2)
    second = last_undo_item(layer)
    assert first is not None and second is not first
    ends = item_ends([first]), item_ends([second])
    assert ends[0] <= item_ends(undo_items(layer)) and ends[1] <= item_ends(undo_items(layer))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # today's napari: reading the history warns of nothing
        layer.undo()
        assert ends[1] <= item_ends(redo_items(layer))
        assert not ends[1] & item_ends(undo_items(layer))
        assert ends[0] <= item_ends(undo_items(layer))
        layer.redo()
        assert ends[1] <= item_ends(undo_items(layer)) and not redo_items(layer)
    assert item_ends([[], [7]]) == {id(7)}


def test_without_napari_history_nothing_is_found_and_it_is_logged_once(monkeypatch, caplog):
    class NoHistory:
        pass

    monkeypatch.setattr(_history, "_missing_logged", False)
    with caplog.at_level(logging.WARNING, logger=_history.__name__):
        assert last_undo_item(NoHistory()) is None
        assert undo_items(NoHistory()) == () and redo_items(NoHistory()) == ()
    assert len(caplog.records) == 1 and "_undo_history" in caplog.records[0].getMessage()


def test_private_history_is_read_in_one_place():
    users = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "_undo_history" in p.read_text() or "_redo_history" in p.read_text()
    )
    assert users == [str(Path("annotation") / "history.py")]


def _warn_from(module: str, message: str = "deprecated since 0.9, removed in 0.10") -> None:
    """A FutureWarning attributed to ``module``, as ``stacklevel`` attributes napari's."""
    filename = f"{module.replace('.', '/')}.py"
    warnings.warn_explicit(message, FutureWarning, filename, 1, module=module)


def test_napari_future_warnings_fail_the_viewer_tests():
    """tests/_qt/conftest.py makes them errors: raised in napari, or in our code calling napari."""
    for module in ("napari.layers.labels.labels", "napari_ipnet._qt.widget"):
        with pytest.raises(FutureWarning):
            _warn_from(module)
    with warnings.catch_warnings(record=True) as caught:  # the filters of this test, recording
        _warn_from("vispy.scene")  # another library's: not ours to fix, not an error
    raised = []

    def in_thread():
        try:
            _warn_from("napari.utils.events")
        except FutureWarning as err:
            raised.append(err)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert len(raised) == 1 and len(caught) == 1
