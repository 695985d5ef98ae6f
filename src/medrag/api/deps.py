"""Dependencies shared by the routes."""

from typing import Annotated

from fastapi import Depends, Request

from ..pipeline import Pipeline
from ..settings import Settings


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
