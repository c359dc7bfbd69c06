"""The objects an operation made, found again by the UUID it gave them: multi-step operations
(and the next run after a killed one) undo their own work this way, never by name alone, so
an object of the same name that someone else made meanwhile is never touched. One primitive
for pools, networks and domains; each lookup is made again at each use, since a daemon that
restarted mid-call may have done a step without answering."""
from __future__ import annotations

import libvirt

# kind: (the connection's lookup by UUID, the error code of "there is none")
_BY_UUID = {
    "pool": ("storagePoolLookupByUUIDString", libvirt.VIR_ERR_NO_STORAGE_POOL),
    "network": ("networkLookupByUUIDString", libvirt.VIR_ERR_NO_NETWORK),
    "domain": ("lookupByUUIDString", libvirt.VIR_ERR_NO_DOMAIN),
}


def own(conn: libvirt.virConnect, kind: str, uuid: str):
    """The pool, network or domain with this UUID, or None when there is none (any other error goes up)."""
    lookup, missing = _BY_UUID[kind]
    try:
        return getattr(conn, lookup)(uuid)
    except libvirt.libvirtError as err:
        if err.get_error_code() == missing:
            return None
        raise


def stop_own(conn: libvirt.virConnect, kind: str, uuid: str) -> bool:
    """Stop it (destroy); False when it is not there or not running (the step was never done; see Undo.add)."""
    obj = own(conn, kind, uuid)
    if obj is None or not obj.isActive():
        return False
    obj.destroy()
    return True


def undefine_own(conn: libvirt.virConnect, kind: str, uuid: str) -> bool:
    """Stop it and remove its definition; False when it is not there."""
    obj = own(conn, kind, uuid)
    if obj is None:
        return False
    stop_own(conn, kind, uuid)
    if obj.isPersistent():
        undefine_domain(obj) if kind == "domain" else obj.undefine()
    return True


def undefine_domain(dom: libvirt.virDomain) -> None:
    """With its managed save image, snapshot metadata and NVRAM, which would otherwise block it."""
    flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
             | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as err:
        if err.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            raise
        dom.undefine()  # a driver without those flags (the test driver)
