"""Each enumeration of libvirt values virtops offers is declared once, in xmlmodels/values.py:
no other Python module of the package spells one out again (it would drift, as the REST API's
disk buses once did)."""
from __future__ import annotations

import re
from pathlib import Path

from virtops.xmlmodels import values

PACKAGE = Path(values.__file__).resolve().parents[1]
ENUMERATIONS = {name: value for name, value in vars(values).items()
                if name.isupper() and isinstance(value, tuple) and len(value) >= 2}


def _spelled_out(enumeration: tuple[str, ...]) -> re.Pattern:
    """The first two items quoted and side by side, as a tuple, list or Literal would write them."""
    first, second = (re.escape(item) for item in enumeration[:2])
    return re.compile(rf"""["']{first}["']\s*,\s*["']{second}["']""")


def test_enumerations_are_declared_only_in_values():
    assert {"NETWORK_MODES", "DISK_BUSES", "CACHE_MODES", "NIC_MODELS", "VOLUME_FORMATS", "POOL_TYPES"} <= set(ENUMERATIONS)
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "values.py":
            continue
        text = path.read_text()
        found += [f"{path.relative_to(PACKAGE)}: {name}" for name, enumeration in ENUMERATIONS.items()
                  if _spelled_out(enumeration).search(text)]
    assert found == []


def test_the_guard_sees_a_spelled_out_enumeration():
    assert _spelled_out(values.DISK_BUSES).search('bus: Literal["virtio", "scsi", "sata"] = "virtio"')
