"""The base of the core's pydantic models. Their schemas are built when a model is first used,
not at import: a command imports several core modules and uses few of their models, and
building every schema up front costs tens of milliseconds of start-up."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
