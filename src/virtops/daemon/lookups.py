"""Finding a host's objects by name, with the one sentence a missing one gets. Light (no
pydantic): the listings use it as the operations do."""
from __future__ import annotations

from virtops.base.binding import libvirt
from virtops.base.errors import InvalidInput, NotFound, command, from_libvirt, term


def pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise NotFound(f"pool: no storage pool named {name!r} on this host"
                           f"{command('pool list', term('all', True), wrap='; {} lists them', elsewhere='')}.") from None
        raise from_libvirt(err, f"looking up pool {name}") from err


def active_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    """An existing, running pool (volumes of an inactive pool cannot be seen or changed)."""
    found = pool(conn, name)
    if not found.isActive():
        raise InvalidInput("pool", f"pool {name} is not running; start it"
                                   f"{command(f'pool start {name}', wrap=' with {}', elsewhere='')}.")
    return found


def network(conn: libvirt.virConnect, name: str) -> libvirt.virNetwork:
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            raise NotFound(f"network: there is no network named {name!r} on this host"
                           f"{command('net list', term('all', True), wrap='; {} shows them', elsewhere='')}.") from None
        raise from_libvirt(err, f"looking up network {name}") from err


def domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as err:
        raise NotFound(f"vm: no domain named {name!r} on this host"
                       f"{command('vm list', term('all', True), wrap='; {} lists them', elsewhere='')}.") from err


def split_volume_ref(ref: str, field: str = "volume") -> tuple[str, str]:
    pool_name, sep, name = (ref or "").partition("/")
    if not sep or not pool_name or not name or "/" in name:
        raise InvalidInput(field, f"{ref!r} is not POOL/VOLUME; give one such as test/test.")
    return pool_name, name


def volume(conn: libvirt.virConnect, ref: str) -> tuple[libvirt.virStoragePool, libvirt.virStorageVol]:
    """POOL/VOLUME in a running pool."""
    pool_name, name = split_volume_ref(ref)
    found = active_pool(conn, pool_name)
    try:
        return found, found.storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise NotFound(f"volume: no volume named {name!r} in pool {pool_name}"
                           f"{command(f'vol list {pool_name}', wrap='; {} lists them', elsewhere='')}.") from None
        raise from_libvirt(err, f"looking up volume {ref}") from err


def network_definition(net: libvirt.virNetwork) -> str:
    """A network's persistent definition, or its live XML when it has none apart: a transient
    network, or a driver that keeps no separate definition (libvirt's test driver refuses the
    INACTIVE flag)."""
    return _definition(net, libvirt.VIR_NETWORK_XML_INACTIVE)


def pool_definition(pool: libvirt.virStoragePool) -> str:
    """A pool's persistent definition, as network_definition gives a network's."""
    return _definition(pool, libvirt.VIR_STORAGE_XML_INACTIVE)


def _definition(obj, inactive_flag: int) -> str:
    if obj.isPersistent():
        try:
            return obj.XMLDesc(inactive_flag)
        except libvirt.libvirtError as err:
            if err.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
    return obj.XMLDesc(0)


# The errors of an object that is gone: undefined (by another client) between listing it and reading it.
GONE = (libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_STORAGE_VOL)


def still_there(objects, read) -> list:
    """read(obj) for each listed object that is still there when it is read: one removed meanwhile
    (by another client) is skipped, so a listing or a check never fails on what is gone."""
    results = []
    for obj in objects:
        try:
            results.append(read(obj))
        except libvirt.libvirtError as err:
            if err.get_error_code() not in GONE:
                raise
    return results


POOL_BUSY_WAIT_S = 120


def pool_busy(err: libvirt.libvirtError) -> bool:
    """libvirt refuses to refresh a pool, or to make or delete a volume in it, while it builds a
    volume for someone else (a clone, a copy, a qcow2 that a killed client asked for): a wait, not
    a failure. libvirt gives this case no error code of its own, only its sentence."""
    return "asynchronous jobs running" in (err.get_error_message() or "")


def when_pool_free(call, timeout_s: float = POOL_BUSY_WAIT_S):
    """`call()`, tried again while the pool is busy with another job (up to timeout_s)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except libvirt.libvirtError as err:
            if not pool_busy(err) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
