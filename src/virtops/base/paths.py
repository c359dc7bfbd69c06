"""Paths on a host that users name (pool targets, devices, kernels): one rule for every face."""
from __future__ import annotations

import unicodedata

from virtops.base.errors import InvalidInput


def refuse_control_characters(field: str, path: str) -> str:
    """A newline, form feed, tab or other control character in a path is almost always a paste
    accident, makes a directory nobody can type, and breaks the XML libvirt writes back."""
    for offset, char in enumerate(path):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidInput(field, f"{path!r} holds the control character {char!r} at position {offset}; "
                                      "give a path of printable characters.")
    return path
