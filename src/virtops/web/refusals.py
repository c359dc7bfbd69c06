"""Requests the API cannot read, in the core's words: one sentence naming the field and what
would be accepted, never pydantic's or Starlette's wording. A translation only: the rules are the
body models' (api.py) and the core's."""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

# What a value of each pydantic error type should have been, as a sentence ends: "give ...".
EXPECTED = {
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "a list",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "none_required": "null", "string_unicode": "text", "int_parsing_size": "a smaller whole number",
}
BOUNDS = {"greater_than": "a number greater than {gt}", "greater_than_equal": "a number of at least {ge}",
          "less_than": "a number less than {lt}", "less_than_equal": "a number of at most {le}",
          "string_too_long": "at most {max_length} characters", "string_too_short": "at least {min_length} characters",
          "too_long": "at most {max_length} items", "too_short": "at least {min_length} items"}
SOURCES = {"body", "query", "path", "header", "cookie"}


def validation_refusal(errors: list[dict], body: Any, model: type[BaseModel] | None) -> tuple[str | None, str]:
    """(field, sentence) for the first problem of a request; union alternatives are merged. An
    unknown field goes first: it is the typo that explains the rest."""
    errors = sorted(errors, key=lambda error: error["type"] != "extra_forbidden")
    first = errors[0]
    source, *loc = first.get("loc", ()) or ("body",)
    if first["type"] == "json_invalid":
        where = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
        return None, f"body: not valid JSON{where}; send a JSON object."
    if source == "body" and isinstance(first.get("input"), bytes):
        return None, "body: not a JSON object; send one, with Content-Type: application/json."
    path = _data_path(source, loc, body, missing=first["type"] == "missing")
    field = ".".join(str(part) for part in path) or None
    name = field or "body"
    if first["type"] == "extra_forbidden":
        accepted = _fields_at(model, path[:-1]) if source == "body" else []
        return field, f"{name}: unknown field; accepted fields are {', '.join(accepted) or 'none'}."
    if first["type"] == "missing":
        return field, f"{name}: is required."
    alternatives = [error for error in errors if _data_path(source, error.get("loc", ())[1:], body) == path]
    expected = _expected(alternatives)
    got = _shown(first.get("input"))
    if first["type"] == "value_error":  # a validator of the model: its own sentence
        reason = str(first.get("ctx", {}).get("error", "")).rstrip(".")
        if reason.startswith(got):  # the core's sentence names the value already (a size: 'lots' is not a size)
            return field, f"{name}: {reason}."
        return field, f"{name}: {got} is not accepted: {reason}." if reason else f"{name}: {got} is not accepted."
    return field, f"{name}: {got} is not accepted; give {expected}." if expected else f"{name}: {got} is not accepted."


def _expected(errors: list[dict]) -> str:
    words: list[str] = []
    for error in errors:
        kind, ctx = error["type"], error.get("ctx", {})
        if kind in ("literal_error", "enum"):
            word = "one of " + str(ctx.get("expected", "")).replace("'", "")
        elif kind in BOUNDS:
            word = BOUNDS[kind].format(**ctx)
        else:
            word = EXPECTED.get(kind, "")
        if word and word not in words:
            words.append(word)
    return " or ".join(words)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _data_path(source: str, loc: typing.Sequence, body: Any, missing: bool = False) -> tuple:
    """pydantic's location without its union and validator tags: the keys and indexes of the
    request's own data (a query or path parameter is its name)."""
    if source != "body":
        return tuple(loc[:1])
    path: list = []
    current = body
    for i, part in enumerate(loc):
        if isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        elif missing and i == len(loc) - 1 and isinstance(current, dict):
            current = None
        else:
            continue
        path.append(part)
    return tuple(path)


def _fields_at(model: type[BaseModel] | None, path: tuple) -> list[str]:
    """The fields the body model accepts at a place in the data (a nested list of models too)."""
    for part in path:
        if model is None:
            return []
        if isinstance(part, str):
            info = model.model_fields.get(part)
            model = _model_in(info.annotation) if info else None
    return list(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: Model, Model | None, list[Model]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for argument in typing.get_args(annotation):
            if found := _model_in(argument):
                return found
    return None


def body_model(route: Any) -> type[BaseModel] | None:
    """The body model of a FastAPI route, if it has one."""
    params = getattr(getattr(route, "dependant", None), "body_params", None) or []
    annotation = getattr(getattr(params[0], "field_info", None), "annotation", None) if params else None
    return _model_in(annotation)


def http_refusal(status: int, method: str, path: str, allow: str | None) -> str:
    """Starlette's 404 and 405 and the like, as sentences."""
    shown = _shown(path)
    if status == 404:
        return f"{shown}: no such page or API route; the API's routes are listed in /openapi.json."
    if status == 405:
        return f"{shown}: {method} is not accepted here; use {allow or 'another method'}."
    return f"{shown}: refused with HTTP status {status}."
