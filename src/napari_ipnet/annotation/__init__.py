"""The Qt-free annotation core of the dock widget (no Qt, no napari import).

- :mod:`.controller`: :class:`AnnotationController`, one annotation job in napari
  terms (objects, the open round's strokes, typed jobs, the undo link, events);
- :mod:`.files`: :class:`SessionFiles`, save / open / autosave of its sessions;
- helpers: :mod:`.sequence` (which frames of an image layer a session works on),
  :mod:`.results` (writing results into a Labels layer through its undo history),
  :mod:`.history` (reading that history), :mod:`.strokes` (shapes, clicks and paint
  to stroke maps), :mod:`.device` (moving a model and its sessions).

The dock widget in :mod:`napari_ipnet._qt` builds the controls and wires them to these.
"""

from .controller import (
    MAX_OBJECTS,
    STROKE_FEATURE,
    STROKE_STAYS,
    AnnotationController,
    Failure,
    InteractJob,
    Job,
    PropagateJob,
    Record,
    Round,
    Stroke,
    UndoStep,
    WithdrawJob,
    merge_strokes,
    next_frame_to_check,
    remove_history_hooks,
    restore,
    run_directly,
)
from .files import AUTOSAVE_ENV, OpenJob, SessionFiles, autosave_dir

__all__ = [
    "AUTOSAVE_ENV",
    "MAX_OBJECTS",
    "STROKE_FEATURE",
    "STROKE_STAYS",
    "AnnotationController",
    "Failure",
    "InteractJob",
    "Job",
    "OpenJob",
    "PropagateJob",
    "Record",
    "Round",
    "SessionFiles",
    "Stroke",
    "UndoStep",
    "WithdrawJob",
    "autosave_dir",
    "merge_strokes",
    "next_frame_to_check",
    "remove_history_hooks",
    "restore",
    "run_directly",
]
