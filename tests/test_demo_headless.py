"""``napari-ipnet demo --headless OUTDIR``: scribble -> interaction -> propagation, no display."""

from __future__ import annotations

import json

import numpy as np
import pytest
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
    assert summary["objects_may_end"] is True  # the sample's axis is z
    # the bundled weights, with objects that may end along z: measured 0.94 after round 2
    j = summary["rounds"][-1]["J"]
    assert len(j) == 5 and np.mean(list(j.values())) > 0.75, j
    # the rounds are the evaluation protocol's: round 1 on the frame with the largest
    # total foreground (the demo's own loop took the frame where the smallest nucleus is
    # largest: plane 8), round 2 on the worst other frame of round 1's masks
    from napari_ipnet.demo_headless import sample_data
    from napari_ipnet.evaluation.metrics import jaccard

    _, gt, _ = sample_data("nuclei-zstack")
    area = (gt > 0).reshape(len(gt), -1).sum(1)
    assert summary["rounds"][0]["frame"] == int(np.argmax(area)) == 7
    assert summary["rounds"][0]["source"] == "robot" and summary["rounds"][0]["strokes"] > 0
    assert summary["rounds"][1]["frame"] != 7
    # the summary's J is that of the masks written
    for k, v in j.items():
        assert np.mean(jaccard(gt == int(k), labels == int(k))) == pytest.approx(v, abs=1e-6), k
    assert summary["J"][-1] == pytest.approx(np.mean(list(j.values())))


def test_the_headless_demo_never_imports_the_windowed_demo():
    """``demo`` imports ``demo_headless`` and not the reverse (nor napari, nor Qt)."""
    import ast
    import inspect

    from napari_ipnet import demo_headless

    tree = ast.parse(inspect.getsource(demo_headless))
    imported = set()  # every module an import statement names, lazy ones included
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            imported.add(base)
            if node.module is None:  # from . import x
                imported.update(base + a.name for a in node.names)
            elif node.level == 0:  # from package import module
                imported.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    for name in imported:
        assert name not in (".demo", "napari_ipnet.demo"), name
        assert name.split(".")[0] not in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6"), name
    assert ".session" in imported and ".evaluation.protocol" in imported


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
