"""Finding a host's objects by name, with the one sentence a missing one gets. Light (no
pydantic): the listings use it as the operations do."""
from __future__ import annotations

import libvirt

from virtops.base.errors import InvalidInput, NotFound, from_libvirt


def pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise NotFound(f"pool: no storage pool named {name!r} on this host; `virtops pool list --all` lists them.") from None
        raise from_libvirt(err, f"looking up pool {name}") from err


def active_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    """An existing, running pool (volumes of an inactive pool cannot be seen or changed)."""
    found = pool(conn, name)
    if not found.isActive():
        raise InvalidInput("pool", f"pool {name} is not running; start it with `virtops pool start {name}`.")
    return found
