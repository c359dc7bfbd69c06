"""The base of the core's pydantic models. Their schemas are built when a model is first used,
not at import: a command imports several core modules and uses few of their models, and
building every schema up front costs tens of milliseconds of start-up.

Also the field types the core's request models share (ops/: DiskRequest, VolumeRequest,
PoolSpec, NetworkRequest, CreateRequest...), so every face that takes those classes (the CLI's
options, the REST API's bodies, the spec's entries and its JSON Schema) reads them alike."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema, create_model

from virtops.base.errors import InvalidInput
from virtops.base.units import parse_size, size_text


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


# A request model refuses a field it does not know in every face: a typo must not fall back to a
# default.
STRICT = ConfigDict(defer_build=True, extra="forbid")


def one_of(values: tuple[str, ...], description: str = ""):
    """A text field whose schema lists `values` (for the JSON Schema, the REST API's documentation
    and shell completion) while any text passes validation: the core refuses a value outside them
    with its own sentence, the same in every face, rather than pydantic's."""
    schema = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return Annotated[str, WithJsonSchema(schema)]


def changes_model(model: type[BaseModel], names: tuple[str, ...], name: str, doc: str) -> type[BaseModel]:
    """The model of an edit of `model`'s fields `names`: each optional, None meaning "as it is",
    with its type, checks and description taken from `model`, so no field is declared again."""
    fields = {}
    for field_name in names:
        info = model.model_fields[field_name]
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[field_name] = (annotation | None, Field(None, description=info.description))
    return create_model(name, __doc__=doc, __config__=STRICT, __module__=model.__module__, **fields)


# -- sizes: virsh units in, the shortest exact virsh unit out -------------------------------------
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*[a-zA-Z]*\s*$"


def _parse_size_value(value: Any) -> int:
    """Bytes of a size as a face gives it; a ValueError (pydantic places it at its field, in every
    face) with parse_size's sentence otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("is not a size; give bytes or a number with a unit such as 1000M, 5G or 512MiB")
    try:
        return parse_size(value, "size")
    except InvalidInput as err:
        raise ValueError(err.message.split(": ", 1)[-1].rstrip(".")) from None


Size = Annotated[
    int,
    BeforeValidator(_parse_size_value),
    PlainSerializer(size_text, when_used="json"),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}],
                    "description": "Bytes, or virsh units: 1000M, 5G, 512MiB (binary), 10GB (decimal).",
                    "examples": ["1000M", "5G"]}),
]
