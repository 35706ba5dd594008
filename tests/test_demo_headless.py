"""``napari-ipnet demo --headless OUTDIR``: scribble -> interaction -> propagation, no display."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from PIL import Image

from napari_ipnet import cli


def test_headless_demo_writes_masks_overlay_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--headless", str(out), "--sample", "nuclei-zstack", "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    labels = tifffile.imread(out / "labels.tif")
    assert labels.shape == (16, 128, 160) and set(np.unique(labels)) <= set(range(6))
    assert len(list((out / "masks").glob("*.png"))) == 16
    with Image.open(out / "overlay.png") as im:
        assert im.size[0] > 300
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sample"] == "nuclei-zstack" and len(summary["rounds"]) == 2
    # the bundled weights, with objects that may end along z: measured 0.88 after round 1
    j = summary["rounds"][-1]["J"]
    assert len(j) == 5 and np.mean(list(j.values())) > 0.75, j


def test_nuclei_zstack_sample_nuclei_end_inside_the_stack():
    from napari_ipnet import _sample_data as sd

    (frames, meta, kind), = sd.nuclei_zstack()
    assert kind == "image" and meta["axis_labels"] == ("z", "y", "x") and frames.dtype == np.uint16
    _, labels = sd.make_nuclei_zstack()
    assert frames.shape == labels.shape == sd.ZSTACK_SHAPE
    mid = len(labels) // 2
    ids = [k for k in np.unique(labels) if k]
    assert len(ids) == 5 and all((labels[mid] == k).any() for k in ids), "every nucleus is in the middle plane"
    for k in ids:
        present = (labels == k).reshape(len(labels), -1).any(1)
        assert not present[0] and not present[-1], f"nucleus {k} ends inside the stack"
    # out of the nuclei only a faint glow: nuclei are much brighter than the planes' background
    assert frames[mid][labels[mid] > 0].mean() > 3 * frames[0].mean()
