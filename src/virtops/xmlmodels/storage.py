"""What pools and volumes share: the <permissions> of a target (and of a backing store)."""
from __future__ import annotations

from .fields import INT, Field, XmlModel


class PermissionsXml(XmlModel):
    """<permissions>: mode (octal text, kept as written), numeric owner and group, SELinux label."""

    TAG = "permissions"
    mode = Field("mode", carry="PoolEntry.mode")
    owner = Field("owner", INT, carry="PoolEntry.owner")   # libvirt writes -1 for "leave as it is"
    group = Field("group", INT, carry="PoolEntry.group")
    label = Field("label", carry="PoolEntry.label")
