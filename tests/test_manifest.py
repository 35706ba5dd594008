"""The npe2 manifest: valid, discovered, its commands importable, no torch at discovery."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

npe2 = pytest.importorskip("npe2")

ROOT = Path(__file__).resolve().parents[1]
NPE2 = Path(sys.executable).with_name("npe2")


def _npe2(*args):
    cmd = [str(NPE2), *args] if NPE2.exists() else [sys.executable, "-m", "npe2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_npe2_validate():
    res = _npe2("validate", "napari-ipnet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_listed_by_npe2():
    res = _npe2("list", "--fields", "name,contributions", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert "napari-ipnet" in res.stdout


@pytest.fixture(scope="module")
def manifest():
    pm = npe2.PluginManager.instance()
    pm.discover()
    return pm.get_manifest("napari-ipnet")


def test_single_source_shipped_in_the_package(manifest):
    shipped = resources.files("napari_ipnet") / "napari.yaml"
    assert shipped.is_file()
    assert Path(str(shipped)).resolve() == (ROOT / "napari.yaml").resolve()
    assert manifest.name == "napari-ipnet"
    assert npe2.PluginManifest.from_file(ROOT / "napari.yaml").name == "napari-ipnet"


def test_contributions(manifest):
    c = manifest.contributions
    assert [w.display_name for w in c.widgets] == ["IPNet interactive segmentation"]
    assert {s.key for s in c.sample_data} == {"colour-sequence", "cell-timelapse", "nuclei-zstack"}
    (reader,) = c.readers
    assert reader.accepts_directories and {"*.mp4", "*.avi", "*.mov"} <= set(reader.filename_patterns)
    assert {w.command for w in c.writers} == {"napari-ipnet.write_labels_tiff", "napari-ipnet.write_labels_davis"}
    assert all(w.layer_types == ["labels"] for w in c.writers)


def test_every_command_resolves(manifest):
    for cmd in manifest.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), cmd.python_name


def test_discovery_imports_no_torch():
    code = (
        "import sys, napari_ipnet, napari_ipnet._reader, napari_ipnet._writer, "
        "napari_ipnet._sample_data, napari_ipnet._qt.widget, napari_ipnet.demo\n"
        "print('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
