"""Rules for names that several layers check: one place for each, so every face refuses alike."""
from __future__ import annotations

from virtops.base.errors import InvalidInput

LAB_PREFIX = "lab:"
# A lab host's name is a directory and part of network-namespace and bridge names (labhost.py),
# hence short and plain.
# Checked without re: re, with enum, is 3 ms of `-c lab:NAME vm list`, which needs it for nothing else.
LAB_NAME_FIRST = "abcdefghijklmnopqrstuvwxyz"
LAB_NAME_CHARS = LAB_NAME_FIRST + "0123456789-"
LAB_NAME_LENGTH = 20
LAB_NAME_RULE = "1-20 lowercase letters, digits or '-', starting with a letter"


def is_lab_name(name: str) -> bool:
    return 0 < len(name) <= LAB_NAME_LENGTH and name[0] in LAB_NAME_FIRST and all(c in LAB_NAME_CHARS for c in name)


def check_lab_name(name: str, field: str = "lab name") -> str:
    """A lab host's bare name (NAME of lab:NAME)."""
    if not is_lab_name(name):
        raise InvalidInput(field, f"{name!r} is not accepted; use {LAB_NAME_RULE}.")
    return name


def check_lab_term(term: str, field: str) -> str:
    """lab:NAME as a user writes it (-c, -H, a registered URI)."""
    if not is_lab_name(term.removeprefix(LAB_PREFIX)):
        raise InvalidInput(field, f"{term!r}: a lab host is lab:NAME with {LAB_NAME_RULE}.")
    return term
