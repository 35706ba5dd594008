"""The memory readout: propagation also reads the annotated frames (napari_ipnet.memory)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_ipnet.memory import MemoryFrame, MemorySettings, ObjectMemory, fuse, label_cells, object_weight, readout
from napari_ipnet.session import Session


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=0)


def test_readout_gives_each_query_cell_the_label_of_the_cells_it_resembles():
    # memory: left half looks like "a" (label 1), right half like "b" (label 0)
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    feat = torch.zeros(3, 4, 4)
    feat[:, :, :2] = a[:, None, None]
    feat[:, :, 2:] = b[:, None, None]
    label = torch.zeros(4, 4)
    label[:, :2] = 1.0
    # the query is the memory mirrored: the object moved to the right half
    query = torch.flip(feat, dims=[2])
    p = readout(query, [MemoryFrame(feat, label)], MemorySettings(top_k=4))
    assert p.shape == (4, 4)
    assert torch.all(p[:, 2:] > 0.99) and torch.all(p[:, :2] < 0.01)


def test_readout_weighs_the_most_similar_cells_most():
    mem = torch.stack([_unit(torch.tensor([1.0, 0.0])), _unit(torch.tensor([0.6, 0.8]))], dim=1)[:, :, None]  # (2, 2, 1)
    label = torch.tensor([[1.0], [0.0]])
    query = _unit(torch.tensor([0.95, 0.3]))[:, None, None]  # nearer the first
    sharp = readout(query, [MemoryFrame(mem, label)], MemorySettings(top_k=2, temperature=0.01)).item()
    soft = readout(query, [MemoryFrame(mem, label)], MemorySettings(top_k=2, temperature=10.0)).item()
    assert sharp > 0.9 and 0.4 < soft < 0.6
    only_nearest = readout(query, [MemoryFrame(mem, label)], MemorySettings(top_k=1)).item()
    assert only_nearest == 1.0


def test_readout_refuses_an_empty_memory():
    with pytest.raises(ValueError, match="empty"):
        readout(torch.zeros(3, 2, 2), [], MemorySettings())


@pytest.mark.parametrize("kwargs", [{"weight": 1.5}, {"weight": -0.1}, {"top_k": 0}, {"temperature": 0.0}])
def test_settings_are_checked(kwargs):
    with pytest.raises(ValueError):
        MemorySettings(**kwargs)


def test_label_cells_and_fuse():
    m = torch.zeros(1, 1, 16, 16)
    m[..., :8, :] = 1.0
    cells = label_cells(m, 4)
    assert torch.equal(cells, torch.tensor([[1.0] * 4] * 2 + [[0.0] * 4] * 2))
    out = fuse(np.full((2, 2), 0.2), np.full((2, 2), 1.0), 0.25)
    assert out.dtype == np.float32 and np.allclose(out, 0.4)


def test_session_memory_argument(stub_model, small_frames):
    assert Session(small_frames, stub_model()).memory is None  # the stub fixture turns it off
    assert Session(small_frames, stub_model(), memory=True).memory == MemorySettings()
    custom = MemorySettings(weight=0.3)
    assert Session(small_frames, stub_model(), memory=custom).memory is custom
    assert Session(small_frames, stub_model(), memory=False).memory is None
    with pytest.raises(TypeError, match="MemorySettings"):
        Session(small_frames, stub_model(), memory=0.5)


def _red_square_frames(n=6, size=64):
    """A red square on grey that moves 4 px right per frame, and its masks."""
    frames = np.full((n, size, size, 3), 90, np.uint8)
    masks = np.zeros((n, size, size), bool)
    for t in range(n):
        x = 8 + 4 * t
        frames[t, 20:40, x : x + 20] = (230, 20, 20)
        masks[t, 20:40, x : x + 20] = True
    return frames, masks


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_memory_finds_the_object_where_the_network_does_not(stub_model):
    """A propagation network that finds nothing (p = 0.3 everywhere): without the
    memory the object is lost after its annotated frame; with it, every frame finds
    the red square by its colour (the stub's image features are the colour of each
    8 x 8 cell), where it has moved."""
    frames, masks = _red_square_frames()
    runs = {}
    for memory in (False, MemorySettings(weight=0.7, previous_frame=False)):
        s = Session(frames, stub_model(interaction=lambda rgb, *m: (m[1] > 0).float(), propagation=0.3), memory=memory)
        s.interact(0, masks[0], np.zeros_like(masks[0]), object_id=1)
        list(s.propagate())
        runs[bool(memory)] = [_iou(s.labels[t] == 1, masks[t]) for t in range(1, len(frames))]
    assert max(runs[False]) == 0.0
    assert min(runs[True]) > 0.6


def test_memory_holds_every_annotated_frame_and_the_previous_frame(stub_model):
    frames, masks = _red_square_frames()
    s = Session(frames, stub_model(interaction=lambda rgb, *m: (m[1] > 0).float(), propagation=0.3), memory=True)
    s.interact(0, masks[0], np.zeros_like(masks[0]), object_id=1)
    assert len(s._memories(0, [1], MemorySettings())[1].annotated) == 1
    list(s.propagate())
    s.interact(5, masks[5], np.zeros_like(masks[5]), object_id=1)
    memories = s._memories(5, [1], MemorySettings())
    assert len(memories[1].annotated) == 2  # the first round's frame and this one
    # the object's label in each memory frame: the square covers part of the cells
    assert all(0.0 < float(m.label.max()) <= 1.0 for m in memories[1].annotated)
    # propagating reads the previous frame too: the memory keeps the last frame read
    gen = s.propagate()
    f = next(gen)
    gen.close()
    assert f == 4  # backward only (frame 5 is the last)


def test_memory_is_recorded_in_the_session_file_and_replayed(stub_model, tmp_path):
    frames, masks = _red_square_frames()
    model = stub_model(interaction=lambda rgb, *m: (m[1] > 0).float(), propagation=0.3)
    s = Session(frames, model, memory=MemorySettings(weight=0.7))
    s.interact(0, masks[0], np.zeros_like(masks[0]), object_id=1)
    list(s.propagate())
    path = s.save(tmp_path / "run.ipnet")
    back = Session.load(path, frames, model)
    assert back.memory == MemorySettings(weight=0.7)
    assert np.array_equal(back.labels, s.labels)
    # the same log replayed without the memory gives other labels: the setting matters
    off = Session(frames, model, memory=False)
    off.interact(0, masks[0], np.zeros_like(masks[0]), object_id=1)
    list(off.propagate())
    assert not np.array_equal(off.labels, s.labels)


def test_real_model_image_features_are_unit_vectors_at_stride_8(lite_model):
    rgb = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        f = lite_model.image_features(rgb)
    assert f.shape == (2, 40 + 112, 8, 8)
    assert torch.allclose(f.norm(dim=1), torch.ones(2, 8, 8), atol=1e-5)


def test_object_memory_starts_empty():
    m = ObjectMemory()
    assert m.annotated == [] and m.last_frame is None and m.last_feature is None


@pytest.mark.parametrize("encoder", ["efficientnet_lite0", "resnet50"])
def test_encoders_stop_at_r4_with_the_same_features(encoder):
    from napari_ipnet.model.backbones import ENCODERS

    torch.manual_seed(0)
    enc = ENCODERS[encoder]([("conv1_m", True)]).eval()
    rgb, m = torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        full = enc(rgb, m)
        short = enc(rgb, m, stop_at_r4=True)
    assert short[0] is None and full[0] is not None
    for a, b in zip(full[1:], short[1:]):
        assert torch.equal(a, b)


def test_small_objects_get_less_of_the_memory():
    big = MemoryFrame(torch.zeros(3, 4, 4), torch.ones(4, 4))  # 16 cells
    small = MemoryFrame(torch.zeros(3, 4, 4), torch.zeros(4, 4))
    small.label[0, :2] = 1.0  # 2 cells
    settings = MemorySettings(weight=0.5, min_cells=8.0)
    assert object_weight([big], settings) == 0.5
    assert object_weight([small], settings) == pytest.approx(0.5 * 2 / 8)
    assert object_weight([big, small], settings) == 0.5  # mean area 9 cells
    assert object_weight([small], MemorySettings(weight=0.5, min_cells=0.0)) == 0.5
