"""Rules for names that several layers check: one place for each, so every face refuses alike."""
from __future__ import annotations

import re

from virtops.base.errors import InvalidInput

LAB_PREFIX = "lab:"
# A lab host's name is a directory and part of network-namespace and bridge names (labhost.py),
# hence short and plain.
LAB_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
LAB_NAME_RULE = "1-20 lowercase letters, digits or '-', starting with a letter"


def check_lab_name(name: str, field: str = "lab name") -> str:
    """A lab host's bare name (NAME of lab:NAME)."""
    if not LAB_NAME_PATTERN.match(name):
        raise InvalidInput(field, f"{name!r} is not accepted; use {LAB_NAME_RULE}.")
    return name


def check_lab_term(term: str, field: str) -> str:
    """lab:NAME as a user writes it (-c, -H, a registered URI)."""
    if not LAB_NAME_PATTERN.match(term.removeprefix(LAB_PREFIX)):
        raise InvalidInput(field, f"{term!r}: a lab host is lab:NAME with {LAB_NAME_RULE}.")
    return term
