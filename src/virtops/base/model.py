"""The base of the core's pydantic models. Their schemas are built when a model is first used,
not at import: a command imports several core modules and uses few of their models, and
building every schema up front costs tens of milliseconds of start-up."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, WithJsonSchema


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


def one_of(values: tuple[str, ...], description: str = ""):
    """A text field whose schema lists `values` (for the JSON Schema, the REST API's documentation
    and shell completion) while any text passes validation: the core refuses a value outside them
    with its own sentence, the same in every face, rather than pydantic's."""
    schema = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return Annotated[str, WithJsonSchema(schema)]
