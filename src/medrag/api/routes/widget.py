"""The embeddable chat widget and its demo page, served from the widget folder as they are."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ...errors import ConfigError
from ..deps import SettingsDep

router = APIRouter(include_in_schema=False)


def widget_file(folder: Path, name: str, media_type: str) -> FileResponse:
    path = folder / name
    if not path.is_file():
        raise ConfigError(
            f"{name} not found in {folder}; set MEDRAG_WIDGET_DIR to a folder with widget.js and demo.html"
        )
    # Short caching: pages pick up a new widget within minutes of a deploy.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=300"})


@router.get("/widget.js")
def widget_script(settings: SettingsDep) -> FileResponse:
    return widget_file(settings.widget_dir, "widget.js", "text/javascript; charset=utf-8")


@router.get("/")
def demo_page(settings: SettingsDep) -> FileResponse:
    return widget_file(settings.widget_dir, "demo.html", "text/html; charset=utf-8")
