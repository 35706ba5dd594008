"""Autosaves written off the controller's thread: snapshots, order, no overlap, closing (Qt-free)."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

napari_layers = pytest.importorskip("napari.layers")

from napari_ipnet import session_file as sf
from napari_ipnet.annotation import AnnotationController, Stroke
from napari_ipnet.annotation import files as files_mod
from napari_ipnet.annotation.files import AutosaveWriter, SessionFiles
from napari_ipnet.session import Session


class ThreadRunner:
    """A runner whose tasks work in their own thread; their ``on_return`` waits for :meth:`pump`.

    As with napari workers: the work runs elsewhere, the callback in "the GUI thread"
    (here the test's, when it pumps).
    """

    def __init__(self) -> None:
        self.returns: queue.Queue = queue.Queue()

    def __call__(self, work, generator=False, on_yield=None, on_return=None, on_finish=None):
        returns = self.returns

        class Task:
            def start(self) -> None:
                threading.Thread(target=lambda: returns.put((on_return, work())), daemon=True).start()

        return Task()

    def pump(self, timeout: float = 10.0) -> None:
        """Run the next ``on_return`` here (waits for its task to end)."""
        callback, value = self.returns.get(timeout=timeout)
        callback(value)


class FakeWrites:
    """Stands in for ``write_session``: records the writes and how many ran at once."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.written: list[tuple] = []
        self.active = 0
        self.most_at_once = 0
        self.gates: dict = {}  # data -> Event the write of that data waits for
        self._lock = threading.Lock()

    def __call__(self, data, path):
        with self._lock:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        try:
            if data in self.gates:
                self.gates[data].wait(10)
            time.sleep(self.delay)
            self.written.append((path.name, data))
        finally:
            with self._lock:
                self.active -= 1
        return path


@pytest.fixture
def fake_writes(monkeypatch):
    fake = FakeWrites()
    monkeypatch.setattr(files_mod, "write_session", fake)
    return fake


def test_writes_one_at_a_time_in_order_and_newer_replaces_queued(tmp_path, fake_writes):
    runner = ThreadRunner()
    writer = AutosaveWriter(runner)
    a, b = tmp_path / "a.ipnet", tmp_path / "b.ipnet"
    done = []
    for path, data in ((a, 1), (a, 2), (b, 3), (a, 4)):  # 2 waits when 4 comes: 4 replaces it
        writer(path, data, lambda err, data=data: done.append((data, err)))
    assert writer.busy
    while writer.busy:
        runner.pump()
    assert fake_writes.written == [("a.ipnet", 1), ("b.ipnet", 3), ("a.ipnet", 4)]
    assert fake_writes.most_at_once == 1
    assert done == [(1, None), (3, None), (4, None)]


def test_close_waits_for_the_write_in_progress_then_writes_the_queue(tmp_path, fake_writes):
    runner = ThreadRunner()
    writer = AutosaveWriter(runner)
    a = tmp_path / "a.ipnet"
    fake_writes.gates[1] = gate = threading.Event()
    done = []
    writer(a, 1, lambda err: done.append((1, err)))
    writer(a, 2, lambda err: done.append((2, err)))
    threading.Timer(0.2, gate.set).start()
    assert writer.close()
    assert fake_writes.written == [("a.ipnet", 1), ("a.ipnet", 2)] and fake_writes.most_at_once == 1
    writer(a, 3, lambda err: done.append((3, err)))  # after closing: written at once
    assert fake_writes.written[-1] == ("a.ipnet", 3)
    runner.pump()  # the worker's return arrives late: it starts nothing
    assert not writer.busy and sorted(done) == [(1, None), (2, None), (3, None)]


def test_close_gives_up_on_a_hung_write_without_writing_older_states_after(tmp_path, fake_writes):
    runner = ThreadRunner()
    writer = AutosaveWriter(runner, close_timeout=0.2)
    a = tmp_path / "a.ipnet"
    fake_writes.gates[1] = gate = threading.Event()
    writer(a, 1, lambda err: None)
    writer(a, 2, lambda err: None)
    assert not writer.close()  # 1 still being written: 2 is dropped, never written after it
    gate.set()
    runner.pump()
    assert fake_writes.written == [("a.ipnet", 1)]


def test_close_takes_back_a_save_whose_task_has_not_begun(tmp_path, fake_writes):
    """napari starts its workers from the event loop: a task may begin only after closing."""

    class Task:
        def __init__(self, work, on_return) -> None:
            self.work, self.on_return = work, on_return

        def start(self) -> None:
            tasks.append(self)  # begins when the test says so

    tasks: list[Task] = []
    writer = AutosaveWriter(lambda work, generator, on_yield, on_return, on_finish: Task(work, on_return))
    done = []
    writer(tmp_path / "a.ipnet", 1, done.append)
    assert writer.busy and not fake_writes.written
    assert writer.close()  # does not wait for the task: writes the save here
    assert fake_writes.written == [("a.ipnet", 1)] and done == [None] and not writer.busy
    (task,) = tasks
    task.on_return(task.work())  # the task begins late: it writes nothing, says nothing
    assert fake_writes.written == [("a.ipnet", 1)] and done == [None] and not writer.busy


def test_write_errors_come_back_as_values(tmp_path, monkeypatch):
    def boom(data, path):
        raise OSError("No space left on device")

    monkeypatch.setattr(files_mod, "write_session", boom)
    runner = ThreadRunner()
    writer = AutosaveWriter(runner)
    got = []
    writer(tmp_path / "a.ipnet", 1, got.append)
    runner.pump()
    assert isinstance(got[0], OSError) and not writer.busy


def _dot(shape, y, x):
    m = np.zeros(shape, bool)
    m[y, x : x + 3] = True
    return m


def test_autosaver_takes_the_session_when_saving_and_writes_it_later(tmp_path, stub_model, small_frames):
    s = Session(small_frames, stub_model(interaction=0.9, propagation=0.8))
    hw = small_frames.shape[1:3]
    s.interact(2, _dot(hw, 20, 15), object_id=1)
    handed = []
    saver = sf.Autosaver(s, tmp_path / "auto.ipnet", min_interval=0.0,
                         writer=lambda path, data, done: handed.append((path, data, done)))
    assert saver.notify() and not saver.dirty and saver.saves == 0
    assert not (tmp_path / "auto.ipnet").exists()
    s.interact(5, _dot(hw, 30, 30), object_id=2)  # the annotation goes on before the file is written
    path, data, done = handed.pop()
    sf.write_session(data, path)
    done(None)
    assert saver.saves == 1 and saver.last_error is None
    saved = sf.read_session(path)
    assert len(saved.log) == 1 and set(saved.header["objects"]) == {"1"}
    # a write that fails: what it held is to be saved again
    assert saver.notify()
    path, data, done = handed.pop()
    done(OSError("No space left on device"))
    assert saver.dirty and isinstance(saver.last_error, OSError) and saver.saves == 1
    assert saver.flush()
    path, data, done = handed.pop()
    sf.write_session(data, path)
    done(None)
    assert not saver.dirty and saver.last_error is None and len(sf.read_session(path).log) == 2
    loaded = Session.load(path, small_frames, s.model)
    np.testing.assert_array_equal(loaded.labels, s.labels)


def test_session_files_autosave_in_the_background(stub_model, small_frames, autosave_in_tmp, monkeypatch):
    from napari_ipnet.annotation.sequence import make_spec

    image = napari_layers.Image(small_frames, rgb=True, name="cells")
    out = napari_layers.Labels(np.zeros(small_frames.shape[:3], np.uint8))
    ctrl = AnnotationController(output_for=lambda rec: out, current_output=lambda: out)
    ctrl.set_model(stub_model(interaction=0.9, propagation=0.8), "stub")
    messages = []
    ctrl.message.connect(lambda level, text: messages.append((level, text)))
    now = [0.0]
    files = SessionFiles(ctrl, min_interval=10.0, clock=lambda: now[0])
    runner = ThreadRunner()
    files.writer = AutosaveWriter(runner)
    spec = make_spec(image, 0, np.zeros(3), None)
    ctrl.submit_interaction(image, spec, 2, [Stroke(None, -1, 1, True, _dot(small_frames.shape[1:3], 20, 14))])
    path = autosave_in_tmp / "cells-axis0.ipnet"
    assert files.writing and "Autosaving" not in ctrl.status_text
    runner.pump()
    assert not files.writing and sf.read_session(path).header["pending_frame"] == 2
    assert ctrl.status_text.endswith(f"Autosaving to {path}.")  # once it is written

    now[0] = 3.0
    ctrl.propagate()  # within the interval: only marked dirty
    real = files_mod.write_session

    def boom(data, p):
        raise OSError("No space left on device")

    monkeypatch.setattr(files_mod, "write_session", boom)
    now[0] = 20.0
    assert files.flush() == 1 and not messages
    runner.pump()
    assert [level for level, _t in messages] == ["warning"] and "cannot autosave" in messages[0][1]
    assert sf.read_session(path).header["pending_frame"] == 2  # the last good file
    monkeypatch.setattr(files_mod, "write_session", real)
    files.close()  # the changes the failed write held are written before it returns
    assert sf.read_session(path).header["pending_frame"] is None
    assert not list(autosave_in_tmp.glob("*.part"))
