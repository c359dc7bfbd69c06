"""Storage pool XML (<pool>), for the pool types virtops creates (dir, netfs, fs, logical, disk) and reads."""
from __future__ import annotations

from .fields import Child, Children, Field, XmlModel
from .storage import PermissionsXml


class PoolSourceXml(XmlModel):
    """<source> of a pool, and each <source> libvirt answers a find-pool-sources query with."""

    TAG = "source"
    ORDER = {"": ("host", "device", "dir", "adapter", "name", "format", "auth", "vendor", "product")}
    host = Field("host/@name", carry="PoolEntry.host")        # netfs: the file server
    device = Field("device/@path", carry="PoolEntry.device")    # fs: the block device
    dir = Field("dir/@path", carry="PoolEntry.source_path")          # netfs: the exported directory
    name = Field("name", carry="PoolEntry.source_name")          # logical: the volume group
    format = Field("format/@type", carry="PoolEntry.format")    # netfs: nfs, cifs...; fs: ext4...; disk: gpt, dos...


class PoolXml(XmlModel):
    TAG = "pool"
    ORDER = {"": ("name", "uuid", "capacity", "allocation", "available", "features", "source", "target"),
             "target": ("path", "permissions", "timestamps")}
    type = Field("@type", carry="PoolEntry.type")
    name = Field("name", carry="PoolEntry.name")
    uuid = Field("uuid")
    source = Child(PoolSourceXml, "source")
    target = Field("target/path", carry="PoolEntry.target")
    permissions = Child(PermissionsXml, "target/permissions")


class PoolSourcesXml(XmlModel):
    """libvirt's answer to find-storage-pool-sources: <sources><source>...</source>...</sources>."""

    TAG = "sources"
    sources = Children(PoolSourceXml, "source")
