"""Storage volume XML (<volume>): sizes with libvirt's units, format, backing store, permissions."""
from __future__ import annotations

from .fields import Child, Field, SizeField, XmlModel
from .storage import PermissionsXml


class VolumeXml(XmlModel):
    TAG = "volume"
    ORDER = {"": ("name", "key", "source", "capacity", "allocation", "physical", "target", "backingStore"),
             "target": ("path", "format", "permissions", "timestamps", "compat", "clusterSize", "nocow", "features"),
             "backingStore": ("path", "format", "permissions", "timestamps")}
    type = Field("@type")                                   # file, block, dir, network, netdir: libvirt's to say
    name = Field("name", carry="VolumeEntry.name")
    capacity = SizeField("capacity", default_unit="bytes", write_unit="bytes", carry="VolumeEntry.capacity")
    allocation = SizeField("allocation", default_unit="bytes", write_unit="bytes", carry="VolumeEntry.allocation")
    path = Field("target/path")
    format = Field("target/format/@type", carry="VolumeEntry.format")
    permissions = Child(PermissionsXml, "target/permissions")
    backing_path = Field("backingStore/path", carry="VolumeEntry.backing")
    backing_format = Field("backingStore/format/@type")
