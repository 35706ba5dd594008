"""One model interface (model/interface.py) for the real model and every stub."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from napari_ipnet.model.interface import SegmentationModel
from napari_ipnet.model.networks import build_model


def _memory_benchmark_stub():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
    spec = importlib.util.spec_from_file_location("memory_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stub_model()


def test_the_real_model_and_the_stubs_have_the_interface(stub_model):
    assert isinstance(build_model(), SegmentationModel)
    assert isinstance(stub_model(), SegmentationModel)
    assert isinstance(_memory_benchmark_stub(), SegmentationModel)


def test_something_else_does_not():
    class Half:
        interaction = propagation = config = None

        def eval(self):
            return self

    assert not isinstance(Half(), SegmentationModel)
    assert not isinstance(object(), SegmentationModel)
    # every member the protocol names exists on the real class
    for name in ("interaction", "propagation", "config", "device", "uses_objects_may_end", "eval", "autocast",
                 "propagation_for", "image_features"):
        assert hasattr(build_model(), name), name
