"""The host's configuration as libvirt gives it: every pool, volume, network and domain as XML,
how to compare two of them, and how to define one again. Backup, restore and diff stand on this.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import libvirt
from lxml import etree

from virtops.daemon import lookups, owned
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.values import BUILT_AS_DIRECTORY
from virtops.xmlmodels.pool import PoolXml
from virtops.xmlmodels.volume import VolumeXml
from virtops.base.errors import VirtopsError

# Restore order: what an object refers to exists before it.
KIND_ORDER = ("pool", "volume", "network", "domain")


@dataclass
class HostObject:
    kind: str  # pool | volume | network | domain
    name: str  # volumes: "POOL/VOLUME"
    xml: str  # exactly what libvirt gives (inactive definition)
    uuid: str | None = None
    autostart: bool = False
    active: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


def read_all(conn: libvirt.virConnect) -> list[HostObject]:
    """Every persistent object of the host, in restore order."""
    objects: list[HostObject] = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT):
        objects.append(HostObject("pool", pool.name(), _well_formed("pool", pool.name(),
                                                                    pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE)),
                                  pool.UUIDString(), bool(pool.autostart()), bool(pool.isActive())))
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        objects.extend(_volumes(pool))
    for net in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_PERSISTENT):
        objects.append(HostObject("network", net.name(), _well_formed("network", net.name(),
                                                                      lookups.network_definition(net)),
                                  net.UUIDString(), bool(net.autostart()), bool(net.isActive())))
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT):
        text = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        objects.append(HostObject("domain", dom.name(), _well_formed("domain", dom.name(), text),
                                  dom.UUIDString(), bool(dom.autostart()), bool(dom.isActive())))
    return objects


def _well_formed(kind: str, name: str, text: str) -> str:
    """libvirt's XML, well-formed so that a backup's file reads back (and `virsh define` takes it):
    what libvirt wrote malformed (9.0 leaves a '<' in a network's domain name unescaped) is
    written again from the recovering parse, which keeps every value."""
    try:
        X.parse_strict(text)
        return text
    except etree.XMLSyntaxError:
        pass
    try:
        return X.to_string(X.parse(text))
    except X.UnreadableXML as err:
        raise VirtopsError(f"{kind} {name}: {err}; it cannot be backed up until it is redefined.") from None


def _volumes(pool: libvirt.virStoragePool) -> list[HostObject]:
    pool.refresh(0)
    found = [HostObject("volume", f"{pool.name()}/{vol.name()}", _well_formed("volume", vol.name(), vol.XMLDesc(0)))
             for vol in pool.listAllVolumes()]
    return order_backing_first(found)


def order_backing_first(volumes: list[HostObject]) -> list[HostObject]:
    """A volume's backing volume has to exist before it: each chain base first."""
    from virtops.ops.volume import backing_first

    parsed = {v.name: VolumeXml(X.parse(v.xml)) for v in volumes}
    return backing_first(sorted(volumes, key=lambda v: v.name),
                         key=lambda v: parsed[v.name].path,
                         backing=lambda v: parsed[v.name].backing_path)


# -- comparing ------------------------------------------------------------------------
# Fields libvirt reports that describe the moment, not the configuration.
VOLATILE = {
    "pool": ["capacity", "allocation", "available"],
    "volume": ["key", "allocation", "physical", "target/timestamps", "target/path", "backingStore/timestamps"],
    "network": [],
    "domain": [],
}


def comparable(obj: HostObject) -> str:
    """Canonical XML without volatile fields, and the autostart mark: equal strings mean the same configuration."""
    return definition(obj) + f"autostart={obj.autostart}\n"


def definition(obj: HostObject) -> str:
    """Canonical XML without volatile fields: what defining the object from its XML gives."""
    root = copy.deepcopy(X.parse(obj.xml))
    for path in VOLATILE[obj.kind]:
        for node in root.findall(path):
            node.getparent().remove(node)
    text = etree.tostring(root, method="c14n").decode()
    return X.to_string(X.parse(text))


# -- defining -------------------------------------------------------------------------
def exists(conn: libvirt.virConnect, kind: str, name: str) -> bool:
    try:
        lookup(conn, kind, name)
        return True
    except libvirt.libvirtError:
        return False


def lookup(conn: libvirt.virConnect, kind: str, name: str):
    if kind == "pool":
        return conn.storagePoolLookupByName(name)
    if kind == "network":
        return conn.networkLookupByName(name)
    if kind == "domain":
        return conn.lookupByName(name)
    pool_name, vol_name = name.split("/", 1)
    return conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name)


def define(conn: libvirt.virConnect, obj: HostObject, finish: bool = False) -> None:
    """Define the object from its XML and restore its autostart and active state. With `finish`,
    the object is there half-made (a killed restore's): each step already done is skipped."""
    if obj.kind == "pool":
        pool = (finish and _by_uuid(conn, obj)) or conn.storagePoolDefineXML(obj.xml, 0)
        if obj.active and not pool.isActive():
            if _builds_a_directory(pool):
                pool.build(0)  # recreates the target directory with its permissions
            pool.create(0)
        pool.setAutostart(int(obj.autostart))
    elif obj.kind == "volume":
        pool_name, vol_name = obj.name.split("/", 1)
        pool = conn.storagePoolLookupByName(pool_name)
        lookups.when_pool_free(lambda: pool.refresh(0))  # a volume a killed run asked for may be in the making
        if not (finish and vol_name in pool.listVolumes()):
            pool.createXML(X.to_string(volume_create_element(obj)), 0)
    elif obj.kind == "network":
        net = (finish and _by_uuid(conn, obj)) or conn.networkDefineXML(obj.xml)
        net.setAutostart(int(obj.autostart))
        if obj.active and not net.isActive():
            net.create()
    elif obj.kind == "domain":
        dom = (finish and _by_uuid(conn, obj)) or conn.defineXML(obj.xml)
        dom.setAutostart(int(obj.autostart))
    else:
        raise VirtopsError(f"unknown object kind {obj.kind!r}.")


def _by_uuid(conn: libvirt.virConnect, obj: HostObject):
    """The object defined from this backup's XML (its UUID), if it is there."""
    return owned.own(conn, obj.kind, obj.uuid) if obj.uuid else None


def undefine(conn: libvirt.virConnect, kind: str, name: str) -> None:
    """Remove an object's definition so that a backup's can take its place (--replace).
    Volumes are never deleted here: their data is the user's."""
    obj = lookup(conn, kind, name)
    if kind == "pool":
        if obj.isActive():
            obj.destroy()
        obj.undefine()
    elif kind == "network":
        if obj.isActive():
            obj.destroy()
        obj.undefine()
    elif kind == "domain":
        obj.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
    else:
        raise VirtopsError(f"volume {name}: an existing volume is never replaced by a backup; delete it first if you mean to.")


def _builds_a_directory(pool: libvirt.virStoragePool) -> bool:
    """Building a dir or netfs pool only makes its directory; building an fs pool would format a device."""
    return PoolXml(X.parse(pool.XMLDesc(0))).type in BUILT_AS_DIRECTORY


def volume_create_element(obj: HostObject) -> etree._Element:
    """The volume's XML as storageVolCreateXML takes it: name, capacity, format, backing store.
    Sparse unless the volume was fully allocated, so a restore never eats more space than before."""
    root = copy.deepcopy(X.parse(obj.xml))
    for path in ("key", "physical", "target/path", "target/timestamps", "backingStore/timestamps"):
        for node in root.findall(path):
            node.getparent().remove(node)
    vol = VolumeXml(root)
    if vol.allocation is not None and vol.allocation < (vol.capacity or 0):
        vol.allocation = 0
    return root
