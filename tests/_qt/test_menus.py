"""What napari's menus show of the plugin: one short name, as the README gives it."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _titles(app, menu_id) -> list[str]:
    """Titles of a menu's entries (commands and submenus)."""
    out = []
    for item in app.menus.get_menu(menu_id):
        command = getattr(item, "command", None)
        out.append(command.title if command is not None else item.title)
    return out


def test_plugins_menu_and_open_sample_read_sensibly(make_napari_viewer):
    make_napari_viewer()
    from napari._app_model import get_app_model
    from napari._app_model.constants import MenuId

    app = get_app_model()
    plugins = _titles(app, MenuId.MENUBAR_PLUGINS)
    assert "Interactive segmentation (IPNet)" in plugins
    assert not [t for t in plugins if "IPNet interactive segmentation" in t], plugins
    assert "IPNet" in _titles(app, MenuId.FILE_SAMPLES)
    samples = _titles(app, f"{MenuId.FILE_SAMPLES}/napari-ipnet")
    assert samples == [
        "Colour sequence (moving objects)",
        "Cell time-lapse (moving, dividing cells)",
        "Nuclei z-stack (nuclei that end between planes)",
    ]
    readme = README.read_text()
    assert "*Plugins > Interactive segmentation (IPNet)*" in readme and "*File > Open Sample > IPNet*" in readme
