"""``napari-ipnet evaluate`` through :func:`napari_ipnet.cli.main`: with a stub session
(numbers checked) and with a random-weights model (plumbing only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import ShiftStub, rect, write_davis
from PIL import Image

from napari_ipnet import cli
from napari_ipnet.evaluation import cli as eval_cli
from napari_ipnet.evaluation.datasets import iter_davis
from napari_ipnet.evaluation.protocol import run_protocol

H, W = 64, 96


def _gt(T=3):
    return np.stack([rect((H, W), 20, 44, 30, 60 + 4 * t) for t in range(T)])


SHIFTS = [2, 5, 1]


@pytest.fixture
def root(tmp_path):
    write_davis(tmp_path / "davis", "tiny", _gt())
    return tmp_path / "davis"


def test_cli_with_stub_session(root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(eval_cli, "_session_factory_override", lambda args: lambda frames: ShiftStub(_gt(), SHIFTS))
    out, png = tmp_path / "s.json", tmp_path / "curve.png"
    rc = cli.main(["evaluate", str(root), "--rounds", "3", "--out", str(out), "--plot", str(png), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiny" in printed and "overall" in printed
    summary = json.loads(out.read_text())
    assert summary["protocol"]["rounds"] == 3
    assert summary["protocol"]["format"] == "davis"
    # same numbers as the library call (timings aside)
    direct = run_protocol(iter_davis(root), lambda frames: ShiftStub(_gt(), SHIFTS), rounds=3, progress=False)
    assert summary["overall"]["J"] == pytest.approx(direct["overall"]["J"])
    assert summary["overall"]["F"] == pytest.approx(direct["overall"]["F"])
    assert [r["frame"] for r in summary["sequences"]["tiny"]["rounds"]] == [2, 1, 0]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 400


def test_cli_random_model_plumbing(root, tmp_path):
    out, png = tmp_path / "s.json", tmp_path / "c.png"
    rc = cli.main(["evaluate", str(root), "--model", "random", "--device", "cpu", "--rounds", "2",
                   "--threads", "2", "--out", str(out), "--plot", str(png), "--quiet"])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["protocol"]["model"] == "random" and s["protocol"]["device"] == "cpu"
    assert s["protocol"]["encoder"] == "efficientnet_lite0"
    assert s["protocol"]["fuse_references"] is True  # the config's default
    rounds = s["sequences"]["tiny"]["rounds"]
    assert len(rounds) == 2
    assert all(0.0 <= r["J"] <= 1.0 and 0.0 <= r["F"] <= 1.0 for r in rounds)
    assert all(r["time_s"] > 0 and r["strokes"] > 0 for r in rounds)
    assert rounds[0]["frame"] == 2  # largest object
    assert png.stat().st_size > 1000


def test_cli_reference_fusion_override(root, tmp_path):
    out = tmp_path / "s.json"
    rc = cli.main(["evaluate", str(root), "--model", "random", "--device", "cpu", "--rounds", "2",
                   "--reference-fusion", "off", "--no-f", "--out", str(out), "--quiet"])
    assert rc == 0
    assert json.loads(out.read_text())["protocol"]["fuse_references"] is False


def test_cli_refine_switch_and_oracle(root, tmp_path):
    out = tmp_path / "s.json"
    rc = cli.main(["evaluate", str(root), "--model", "random", "--device", "cpu", "--rounds", "2",
                   "--refine", "off", "--calibrate", "off", "--no-f", "--out", str(out), "--quiet"])
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["protocol"]["refine"] is False and s["protocol"]["calibrate"] is False
    assert s["protocol"]["calibrate_corrections"] is False
    rounds = s["sequences"]["tiny"]["rounds"]
    assert all(r["frame_J_after"] is not None for r in rounds) and rounds[0]["frame_J_before"] == 0.0
    out, png = tmp_path / "o.json", tmp_path / "o.png"
    rc = cli.main(["evaluate", str(root), "--model", "random", "--device", "cpu", "--oracle", "2",
                   "--out", str(out), "--plot", str(png), "--quiet"])
    assert rc == 0
    o = json.loads(out.read_text())
    assert o["protocol"]["mode"] == "oracle" and o["protocol"]["margin"] == 2 and o["protocol"]["refine"] is True
    assert o["protocol"]["calibrate"] is True and o["protocol"]["calibrate_corrections"] is True
    unit = o["oracle"]["tiny"]
    assert unit["frame"] == 2 and 0 <= unit["J_frame"] <= 1 and 0 <= unit["J_propagated"] <= 1
    assert png.stat().st_size > 1000
    assert cli.main(["evaluate", str(root), "--model", "random", "--oracle", "-1", "--quiet"]) == 2


def _one_random_round(root, tmp_path, *options) -> dict:
    """The ``protocol`` of one round of ``evaluate`` on ``root`` with random weights and ``options``."""
    out = tmp_path / "one_round.json"
    rc = cli.main(["evaluate", str(root), "--model", "random", "--device", "cpu", "--rounds", "1",
                   *options, "--no-f", "--out", str(out), "--quiet"])
    assert rc == 0
    return json.loads(out.read_text())["protocol"]


def test_objects_may_end_auto_is_on_along_z_of_a_tiff_stack(root, tmp_path):
    import argparse

    stack = tmp_path / "cells.tif"
    stack.write_bytes(b"")  # only its being a file matters here
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    cases = [([str(stack), "--axis", "z"], True), ([str(stack), "--axis", "t"], False), ([str(root)], False),
             ([str(stack), "--axis", "z", "--objects-may-end", "off"], False),
             ([str(root), "--objects-may-end", "on"], True)]
    for argv, expected in cases:
        assert eval_cli.objects_may_end(parser.parse_args(argv)) is expected, argv
    protocol = _one_random_round(root, tmp_path, "--objects-may-end", "on")
    assert protocol["objects_may_end"] is True and protocol["model_uses_objects_may_end"] is False


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "/nonexistent/folder"], "does not exist"),
        (["evaluate", "{tif}"], "--labels"),
        (["evaluate", "{root}", "--labels", "{tif}"], "--labels is for TIFF"),
        (["evaluate", "{root}", "--objects", "1,2"], "--objects is for TIFF"),
        (["evaluate", "{root}", "--sequences", "nope"], "not found"),
        (["evaluate", "{root}", "--model", "/nonexistent/model.safetensors"], "not found"),
        (["evaluate", "{root}", "--rounds", "0"], "at least 1"),
    ],
)
def test_cli_errors(root, tmp_path, argv, message, capsys):
    tif = tmp_path / "x.tif"
    tif.write_bytes(b"")
    argv = [a.format(tif=tif, root=root) for a in argv]
    assert cli.main(argv + ["--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_cli_module_is_light():
    import subprocess
    import sys

    code = (
        "import sys, argparse; import napari_ipnet.evaluation.cli as c; "
        "p = argparse.ArgumentParser(); c.add_arguments(p); "
        "print('torch' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_package_exports_are_lazy_and_complete():
    import importlib

    ev = importlib.import_module("napari_ipnet.evaluation")
    for name in ev.__all__:
        assert callable(getattr(ev, name)), name
    with pytest.raises(AttributeError):
        ev.no_such_name  # noqa: B018


def test_cli_calibrate_first_round_only(root, tmp_path, monkeypatch):
    """``--calibrate first-round`` calibrates each object's first round and not the
    corrections (the rule before they were calibrated)."""
    from napari_ipnet.session import Session

    made = []
    init = Session.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Session, "__init__", spy)
    p = _one_random_round(root, tmp_path, "--calibrate", "first-round")
    assert p["calibrate"] is True and p["calibrate_corrections"] is False
    assert made and all(s.calibrate_propagation and not s.calibrate_correction_rounds for s in made)
