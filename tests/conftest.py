"""Shared fixtures of the core tests (CPU only, no network, no ../shared)."""

from __future__ import annotations

import ast
import contextlib
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
PAPER_TSV = {
    "interaction": DATA / "ipnet_paper_keys_interaction.tsv",
    "propagation": DATA / "ipnet_paper_keys_propagation.tsv",
}


def read_key_tsv(path: Path) -> dict[str, tuple[int, ...]]:
    """``key<TAB>[shape]`` lines -> {key: shape}."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            out[key] = tuple(ast.literal_eval(shape))
    return out


# ------------------------------------------------------------------ stub networks
def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


class StubNet:
    """Stands in for a network: returns a known foreground probability.

    ``value`` is either a number (constant probability over the ROI) or a callable
    ``(rgb, *maps) -> (1, 1, S, S) tensor of probabilities``. Every call is recorded
    (inputs cloned) in ``calls``.
    """

    def __init__(self, value=0.5, feature_value: float = 0.0) -> None:
        self.value = value
        self.feature_value = feature_value
        self.calls: list[dict] = []

    def __call__(self, rgb, *args):
        import torch

        maps, extra = args, ()
        if hasattr(self, "SEFA"):  # propagation: last argument is the reference
            maps, extra = args[:-1], args[-1:]
        self.calls.append(
            {"rgb": rgb.clone(), "maps": [m.clone() for m in maps], "reference": [e.clone() for e in extra]}
        )
        s = rgb.shape[-2:]
        b = rgb.shape[0]  # the session batches the objects of a frame
        if callable(self.value):
            p = torch.cat([
                self.value(rgb[i : i + 1], *(m[i : i + 1] for m in maps)) for i in range(b)
            ]).double().clamp(1e-7, 1 - 1e-7)
            fg = torch.log(p / (1 - p)).float()
        else:
            fg = torch.full((b, 1, *s), _logit(self.value))
        logits = torch.cat([torch.zeros_like(fg), fg], dim=1)
        feature = torch.full((b, 4, 2, 2), float(self.feature_value))
        return SimpleNamespace(logits=logits, aux=[], feature=feature)


class StubFusion:
    """SEFA stand-in: mean of the two references (records its calls)."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, current, previous):
        self.calls.append((current, previous))
        return current if previous is None else (current + previous) / 2


class StubModel:
    """The attributes of IPNetModel that Session uses."""

    def __init__(self, interaction=1.0, propagation=0.5) -> None:
        import torch

        self.interaction = StubNet(interaction)
        self.propagation = StubNet(propagation)
        self.propagation.SEFA = StubFusion()
        self.device = torch.device("cpu")
        from napari_ipnet.model.networks import ModelConfig

        self.config = ModelConfig()

    uses_objects_may_end = False

    def eval(self):
        return self

    def autocast(self):
        return contextlib.nullcontext()

    def propagation_for(self, may_end: bool):
        return self.propagation

    def image_features(self, rgb):
        """The colour of each 8 x 8 cell plus a constant, scaled to unit length."""
        import torch
        import torch.nn.functional as F

        cells = F.avg_pool2d(rgb, 8)
        return F.normalize(torch.cat([cells, torch.full_like(cells[:, :1], 0.1)], dim=1), dim=1)


@pytest.fixture
def stub_model(monkeypatch):
    """Factory: ``stub_model(interaction=..., propagation=...)``.

    Tests with stub networks check the engine's plumbing against the stubs' exact
    outputs, so their sessions keep the networks' output unrefined, uncalibrated and
    without the memory readout (the scribble refinement, the propagation's
    calibration and the memory have tests of their own, tests/test_refine.py,
    tests/test_calibration.py and tests/test_memory.py).
    """
    from napari_ipnet.session import Session

    monkeypatch.setattr(Session, "default_refine", None)
    monkeypatch.setattr(Session, "calibrate_propagation", False)
    monkeypatch.setattr(Session, "default_memory", None)
    return StubModel


@pytest.fixture(autouse=True)
def autosave_in_tmp(tmp_path, monkeypatch):
    """Widgets and controllers autosave into the test's tmp_path, never the user's home."""
    folder = tmp_path / "autosave"
    monkeypatch.setenv("NAPARI_IPNET_AUTOSAVE_DIR", str(folder))
    return folder


# ------------------------------------------------------------------ data
class CountingFrames:
    """An array-like that counts reads and refuses to be converted as a whole."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.keys: list = []

    def __getitem__(self, key):
        self.keys.append(key)
        if not isinstance(key, (int, np.integer)):
            raise AssertionError(f"frames read with a non-integer key {key!r}")
        return self._data[key]

    def __len__(self):
        return self.shape[0]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole frame stack was converted to an array")


@pytest.fixture
def counting_frames():
    """Factory: ``counting_frames(array)`` -> a lazy array-like that records its reads."""
    return CountingFrames


@pytest.fixture
def small_frames():
    """8 RGB uint8 frames of 48x64 with a moving bright square."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (8, 48, 64, 3), dtype=np.uint8)
    for t in range(8):
        frames[t, 14:30, 10 + 3 * t : 26 + 3 * t] = 220
    return frames


@pytest.fixture(scope="session")
def lite_model():
    """The default architecture (EfficientNet-Lite0) with seeded random weights."""
    import torch

    from napari_ipnet.model.networks import build_model

    torch.manual_seed(0)
    model = build_model()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="session")
def paper_key_shapes():
    """{"interaction" | "propagation": {key: shape}} of the original checkpoints."""
    return {part: read_key_tsv(path) for part, path in PAPER_TSV.items()}


@pytest.fixture(scope="session")
def paper_checkpoints(tmp_path_factory, paper_key_shapes):
    """Random I_e290.pth / P_e290.pth in the original layout (legacy format).

    Built from the key/shape lists: ``module.`` prefix, no ``num_batches_tracked``,
    saved with ``_use_new_zipfile_serialization=False`` like PyTorch 0.3.1 files.
    Gives ``(folder, {"interaction": state, "propagation": state})``. About 760 MB
    on disk and in memory; created once per test session, deleted at its end.
    """
    import torch

    folder = tmp_path_factory.mktemp("ipnet-paper")
    gen = torch.Generator().manual_seed(1234)
    states = {}
    for part, fname in (("interaction", "I_e290.pth"), ("propagation", "P_e290.pth")):
        shapes = paper_key_shapes[part]
        state = {}
        for key, shape in shapes.items():
            if key.endswith(("running_var", ".std")):
                state[key] = torch.rand(shape, generator=gen) + 0.5  # positive, like the real ones
            elif len(shape) >= 2 and not key.endswith(".mean"):
                # scaled so that activations stay finite through the 50 layers
                fan_in = max(1, math.prod(shape[1:]))
                state[key] = torch.randn(shape, generator=gen) * (0.5 / math.sqrt(fan_in))
            else:
                state[key] = torch.randn(shape, generator=gen) * 0.1
        torch.save(state, folder / fname, _use_new_zipfile_serialization=False)
        states[part] = state
    yield folder, states
    for fname in ("I_e290.pth", "P_e290.pth"):  # pytest keeps old temp folders: free the space
        (folder / fname).unlink(missing_ok=True)
