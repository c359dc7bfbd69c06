"""Paths and names on a host that users give (pool targets, devices, kernels, the objects a request
refers to): one rule for every face."""
from __future__ import annotations

import unicodedata

from virtops.base.errors import InvalidInput


def refuse_control_characters(field: str, path: str) -> str:
    """A newline, form feed, tab or other control character in a path is almost always a paste
    accident, makes a directory nobody can type, and breaks the XML libvirt writes back."""
    for offset, char in enumerate(path):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidInput(field, f"{path!r} holds the control character {char!r} at position {offset}; "
                                      "give it in printable characters only.")
    return path


def refuse_control_characters_in(request: object, location: tuple = ()) -> None:
    """Every text of a request (a pydantic model, and the models and lists in it): a name with a
    control character names no libvirt object, and a NUL byte cannot even be passed to libvirt."""
    from virtops.base.errors import located

    is_model = hasattr(type(request), "model_fields")
    items = request.__dict__.items() if is_model else enumerate(request) if isinstance(request, list) else ()
    for key, value in items:
        if isinstance(value, str):
            with located(*location):
                refuse_control_characters(str(key), value)
        elif isinstance(value, list) or hasattr(type(value), "model_fields"):
            refuse_control_characters_in(value, (*location, key))
