"""The model interface a :class:`~napari_ipnet.session.Session` relies on.

:class:`~napari_ipnet.model.networks.IPNetModel` implements it; so do the stub
models of the tests and of ``benchmarks/memory.py``, which check the engine's
plumbing without trained weights. Written down here so that all of them follow one
definition (``isinstance(model, SegmentationModel)`` checks the members are there).

The two networks are called on a batch of B regions of interest (the objects of one
frame), all tensors (B, ., S, S):

- ``interaction(rgb, previous_mask, positive, negative)``
- ``propagation(rgb, previous_round_mask, neighbour_mask, reference)``

and return an object with ``logits`` (B, 2, S, S: background, foreground) and
``feature`` (B, C, s, s: the interaction's becomes the object's reference). The
propagation network also has ``SEFA(current, previous)``, the reference fusion.
``image_features(rgb)`` gives the features the memory readout compares.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SegmentationModel(Protocol):
    """What a Session needs of a model (see the module docstring for the networks)."""

    #: segments one frame from (rgb, previous mask, positive, negative)
    interaction: Callable[..., Any]
    #: carries a mask to the next frame; has ``SEFA`` (reference fusion)
    propagation: Callable[..., Any]
    #: the architecture (:class:`~napari_ipnet.model.networks.ModelConfig`): the
    #: session reads ``roi_size`` and ``fuse_references``
    config: Any

    @property
    def device(self) -> Any:
        """The torch device the networks run on."""

    @property
    def uses_objects_may_end(self) -> bool:
        """Whether the model acts on a session's ``objects_may_end``."""

    def eval(self) -> Any:
        """The model in inference mode (returns itself)."""

    def autocast(self) -> AbstractContextManager:
        """The mixed-precision context the networks run in (a no-op where off)."""

    def propagation_for(self, may_end: bool) -> Callable[..., Any]:
        """The propagation network for objects that may end (``may_end``) or persist."""

    def image_features(self, rgb: Any) -> Any:
        """Unit-length image features (B, C, s, s) of ROI crops ``rgb`` (B, 3, S, S),
        read by the memory (:mod:`napari_ipnet.memory`)."""
