"""How the controller's jobs run in napari: worker threads, warnings, errors, progress.

:func:`napari_runner` is the runner the dock widget gives its
:class:`~napari_ipnet.annotation.AnnotationController`: each job becomes a napari
worker (a QThread), its callbacks run in the main thread.
"""

from __future__ import annotations

import logging

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from napari.utils.progress import cancelable_progress

from ..annotation.sequence import UnsupportedLayerError

log = logging.getLogger(__name__)

_LOGGED_WARNINGS: set[tuple] = set()  # (category, file, line) of worker warnings logged


def _relay_warning(args: tuple) -> None:
    """Report a warning caught in a worker thread (superqt's ``warned`` signal).

    superqt catches the warnings of its workers and emits them with ``warned``; napari
    0.9 does not show them, so a deprecation met in a worker went unseen. FutureWarnings
    (the deprecations meant for users) become napari warning notifications, as in the
    main thread; other warnings go to the log, once per place (superqt shows every one).
    """
    message, category, filename, lineno = args[:4]
    if isinstance(category, type) and issubclass(category, FutureWarning):
        from napari.utils.notifications import notification_manager

        notification_manager.receive_warning(*args)  # shown once per place
        return
    where = (category, str(filename), lineno)
    if where not in _LOGGED_WARNINGS:
        _LOGGED_WARNINGS.add(where)
        log.warning("%s:%s: %s: %s", filename, lineno, getattr(category, "__name__", category), message)


def napari_runner(work, generator: bool = False, on_yield=None, on_return=None, on_finish=None):
    """A napari worker running ``work`` with the callbacks connected, not started.

    ``work`` already returns its exceptions as values (superqt drops RuntimeErrors
    raised inside generator workers, e.g. CUDA out-of-memory, without emitting
    ``errored`` or ``finished``); warnings go through :func:`_relay_warning`.
    """
    worker = create_worker(work, _start_thread=False, _ignore_errors=True)
    worker.warned.connect(_relay_warning)
    if on_yield is not None:
        worker.yielded.connect(on_yield)
    if on_return is not None:
        worker.returned.connect(on_return)
    if on_finish is not None:
        worker.finished.connect(on_finish)
    return worker


class CancelProgress(cancelable_progress):
    """A napari progress bar whose Cancel button calls back at once."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


def short(err: BaseException) -> str:
    """The message of ``err`` (its type name when it has none)."""
    return str(err).strip() or type(err).__name__


def _is_oom(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return "out of memory" in text or "outofmemory" in text


def show_message(level: str, text: str) -> None:
    """A napari notification of the controller's ``message``: level "info", "warning" or "error"."""
    {"info": show_info, "warning": show_warning}.get(level, show_error)(text)


def show_job_error(err: BaseException, what: str) -> None:
    """A notification for a failed job, with what to do about it."""
    log.debug("IPNet %s failed", what, exc_info=err)
    from ..weights import WeightsError

    if isinstance(err, WeightsError):
        show_error(
            f"IPNet: no usable weights: {short(err)}. In the IPNet widget choose "
            "'Original IPNet' (downloads the published weights) or 'Checkpoint file...'."
        )
    elif any(c.__name__ == "FetchError" for c in type(err).__mro__) or isinstance(err, OSError):
        show_error(
            f"IPNet: {what} failed: {short(err)}. Check the network connection, or download "
            "the weights elsewhere with `napari-ipnet fetch-weights ipnet-paper` and copy them "
            "into the napari-ipnet cache folder."
        )
    elif _is_oom(err):
        show_error(
            f"IPNet: out of GPU memory while {what}. Choose device 'cpu' in the IPNet widget, "
            "close other programs using the GPU, or work on a cropped / downscaled stack."
        )
    elif isinstance(err, (ValueError, IndexError, KeyError, UnsupportedLayerError)):
        show_error(f"IPNet: {what} failed: {short(err)}")
    else:
        # unexpected: an error notification whose "View traceback" shows where it failed
        from napari.utils.notifications import Notification, notification_manager

        msg = f"IPNet: {what} failed ({type(err).__name__}: {short(err)})"
        wrapped = RuntimeError(msg).with_traceback(err.__traceback__)
        notification_manager.dispatch(Notification.from_exception(wrapped))
