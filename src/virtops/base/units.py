"""Sizes in virsh's units: plain bytes, 1000M, 5G, 512MiB, 1.5GiB, 10KB (decimal with B, binary otherwise)."""
from __future__ import annotations

from virtops.base.errors import InvalidInput

_SIZE = r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$"
_BINARY = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5, "e": 1024**6}
_DECIMAL = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "pb": 1000**5, "eb": 1000**6}
# QEMU and libvirt keep sizes in signed 64-bit integers; anything larger overflows on the way down.
MAX_SIZE = 2**63 - 1
_LONGEST_NUMBER = 40  # digits: more than any size up to MAX_SIZE in any unit needs


def parse_size(text: str | int, field: str = "size") -> int:
    """Bytes for a virsh-style size. virsh treats K, M, KiB, MiB as powers of 1024 and KB, MB as powers of 1000."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidInput(field, f"{text} is negative; give a size such as 1000M, 5G or 512MiB.")
        return _at_most_max(text, text, field)
    if len(str(text)) > _LONGEST_NUMBER + 8:
        raise InvalidInput(field, f"{str(text)[:20]!r}... is too long to be a size; give at most {MAX_SIZE} bytes (8 EiB).")
    import re  # here: a listing prints sizes without importing re (and enum), 3 ms of its start-up

    match = re.match(_SIZE, str(text))
    if not match:
        raise InvalidInput(field, f"{text!r} is not a size; give bytes or a number with a unit such as 1000M, 5G, 512MiB or 10GB.")
    number, unit = match.groups()
    unit = unit.lower()
    factor = _DECIMAL.get(unit) or _BINARY.get(unit.removesuffix("ib") if unit.endswith("ib") else unit)
    if factor is None:
        raise InvalidInput(field, f"unit {match.group(2)!r} is not known; use B, K/KiB, M/MiB, G/GiB, T/TiB or KB, MB, GB, TB.")
    # Exact, in integers: a float loses bytes above 2**53 (and fractions, the other way, costs
    # every listing that prints a size 3 ms of start-up).
    whole, _, decimals = number.partition(".")
    scaled, divisor = int(whole + decimals) * factor, 10 ** len(decimals)
    if scaled % divisor:
        raise InvalidInput(field, f"{text!r} is not a whole number of bytes.")
    return _at_most_max(scaled // divisor, text, field)


def _at_most_max(size: int, text: str | int, field: str) -> int:
    if size > MAX_SIZE:
        raise InvalidInput(field, f"{text!r} is more than the largest size; give at most {MAX_SIZE} bytes (8 EiB).")
    return size


BINARY_UNITS = (("KiB", 1024), ("MiB", 1024**2), ("GiB", 1024**3), ("TiB", 1024**4))


def format_size(size: int | None) -> str:
    """Human size in binary units, as virsh prints them (1000.00 MiB). The unit is chosen after
    rounding, so 1048571 bytes reads 1.00 MiB, not 1024.00 KiB."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    for unit, factor in BINARY_UNITS[:-1]:
        text = f"{size / factor:.2f}"
        if float(text) < 1024:
            return f"{text} {unit}"
    unit, factor = BINARY_UNITS[-1]
    return f"{size / factor:.2f} {unit}"


def size_text(size: int) -> str | int:
    """1073741824 -> '1G': the shortest exact virsh unit (the spec writes sizes so); sizes that are
    no whole number of KiB stay bytes."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return size
