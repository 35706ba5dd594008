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
    assert manifest.display_name == "IPNet"
    assert [w.display_name for w in c.widgets] == ["Interactive segmentation"]
    assert {s.key for s in c.sample_data} == {"colour-sequence", "cell-timelapse", "nuclei-zstack"}
    (reader,) = c.readers
    assert reader.accepts_directories and {"*.mp4", "*.avi", "*.mov"} <= set(reader.filename_patterns)
    assert [w.command for w in c.writers] == ["napari-ipnet.write_labels", "napari-ipnet.write_labels_davis"]
    assert all(w.layer_types == ["labels"] for w in c.writers)
    # napari adds the first suffix to a name without one: a TIFF stack
    assert c.writers[0].filename_extensions[0] == ".tif" and ".png" in c.writers[0].filename_extensions
    assert c.writers[1].filename_extensions == []  # the dialog's filter for a folder


def test_one_short_name_in_the_menus_and_the_readme(manifest):
    """napari titles a plugin's only widget "<widget> (<plugin>)" in the Plugins menu and
    puts several samples in a submenu named after the plugin: both read sensibly, and
    the README names them as the menus show them."""
    napari_plugins = pytest.importorskip("napari.plugins")
    c = manifest.contributions
    (widget,) = c.widgets
    menu_entry = napari_plugins.menu_item_template.format(manifest.display_name, widget.display_name)
    assert menu_entry == "Interactive segmentation (IPNet)"
    assert len(c.sample_data) > 1  # a submenu titled with the plugin's display name
    for sample in c.sample_data:
        assert not sample.display_name.startswith("IPNet"), "the submenu already says IPNet"
    readme = (ROOT / "README.md").read_text()
    assert f"*Plugins > {menu_entry}*" in readme
    assert f"*File > Open Sample > {manifest.display_name}*" in readme
    for old in ("IPNet interactive segmentation", "Open Sample > napari-ipnet"):
        assert old not in readme and old not in (ROOT / "napari.yaml").read_text(), old


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
