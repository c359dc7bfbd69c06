"""The methods of libvirt-python that the listing and info commands call, over its C extension
`libvirtmod`, as libvirt.py defines them: the same C call, the same failure test (None, or -1),
the same objects made of the pointers it returns, the same libvirtError. The process of a listing
uses these instead of libvirt.py, which costs it 12 ms to import (base/binding.py says when).

Only what the listings' path calls is here (ops/rows.py, ops/vmrows.py, daemon/lookups.py,
daemon/connection.py, daemon/facts.py, base/errors.py, cli/output.py):
tests/unit/test_light_libvirt.py checks that every name here is libvirt.py's, with its value, and
that each method answers as libvirt.py's does. A name missing here is an AttributeError in that
one process, which tests/unit/test_quick_cli.py runs for every listing."""
from __future__ import annotations

import libvirtmod

# -- constants, as libvirt.py has them -------------------------------------------------------------
VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE = 1
VIR_CONNECT_LIST_DOMAINS_AUTOSTART = 1024
VIR_CONNECT_LIST_DOMAINS_TRANSIENT = 8
VIR_CONNECT_LIST_NETWORKS_ACTIVE = 2
VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE = 2
VIR_CRED_AUTHNAME = 2
VIR_CRED_PASSPHRASE = 5
VIR_DOMAIN_BLOCKED = 2
VIR_DOMAIN_CRASHED = 6
VIR_DOMAIN_NOSTATE = 0
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_PMSUSPENDED = 7
VIR_DOMAIN_RUNNING = 1
VIR_DOMAIN_SHUTDOWN = 4
VIR_DOMAIN_SHUTOFF = 5
VIR_DOMAIN_STATS_BALLOON = 4
VIR_DOMAIN_STATS_BLOCK = 32
VIR_DOMAIN_STATS_STATE = 1
VIR_DOMAIN_STATS_VCPU = 8
VIR_DOMAIN_XML_INACTIVE = 2
VIR_ERR_INVALID_ARG = 8
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_NO_NETWORK = 43
VIR_ERR_NO_STORAGE_POOL = 49
VIR_ERR_NO_STORAGE_VOL = 50
VIR_ERR_NO_SUPPORT = 3
VIR_FROM_REMOTE = 13
VIR_FROM_RPC = 7
VIR_IP_ADDR_TYPE_IPV4 = 0
VIR_NETWORK_XML_INACTIVE = 1
VIR_NODE_CPU_STATS_ALL_CPUS = -1
VIR_NODE_MEMORY_STATS_ALL_CELLS = -1
VIR_STORAGE_POOL_BUILDING = 1
VIR_STORAGE_POOL_DEGRADED = 3
VIR_STORAGE_POOL_INACCESSIBLE = 4
VIR_STORAGE_POOL_INACTIVE = 0
VIR_STORAGE_POOL_RUNNING = 2
VIR_STORAGE_XML_INACTIVE = 1


class libvirtError(Exception):
    """libvirt.py's: the thread's last libvirt error, read when raised."""

    def __init__(self, defmsg: str):
        err = libvirtmod.virGetLastError()
        super().__init__(defmsg if err is None else err[2])
        self.err = err

    def get_error_code(self) -> int | None:
        return None if self.err is None else self.err[0]

    def get_error_domain(self) -> int | None:
        return None if self.err is None else self.err[1]

    def get_error_message(self) -> str | None:
        return None if self.err is None else self.err[2]


_NEVER = object()  # the failure value of a C call libvirt.py does not test (it cannot fail)


def _checked(c_name: str, failed, ret):
    if failed is not _NEVER and (ret is None if failed is None else ret == failed):
        raise libvirtError(f"{c_name}() failed")
    return ret


def _method(c_name: str, failed=None, nargs: int = 0, defaults: tuple = (), makes=None):
    """A method calling libvirtmod.`c_name` with the object's pointer and `nargs` arguments (the
    last ones defaulting to `defaults`), raising libvirtError when it returns `failed`, as
    libvirt.py's does; `makes(self, ret)` turns what it returns into objects."""
    call = getattr(libvirtmod, c_name)

    def method(self, *args):
        missing = nargs - len(args)
        if missing > len(defaults) or missing < 0:
            raise TypeError(f"{c_name} takes {nargs} arguments ({len(args)} given)")
        ret = _checked(c_name, failed, call(self._o, *args, *defaults[len(defaults) - missing:]))
        return makes(self, ret) if makes else ret
    method.__name__ = c_name
    return method


class _Object:
    """A libvirt object held by its pointer and freed with it; it keeps its connection alive."""

    _free = ""

    def __init__(self, conn: virConnect, _obj):
        self._conn, self._o = conn, _obj

    def __del__(self):
        if self._o is not None:
            getattr(libvirtmod, self._free)(self._o)
        self._o = None


class virStorageVol(_Object):
    _free = "virStorageVolFree"
    name = _method("virStorageVolGetName", _NEVER)
    XMLDesc = _method("virStorageVolGetXMLDesc", nargs=1, defaults=(0,))


class virStoragePool(_Object):
    _free = "virStoragePoolFree"
    name = _method("virStoragePoolGetName", _NEVER)
    XMLDesc = _method("virStoragePoolGetXMLDesc", nargs=1, defaults=(0,))
    info = _method("virStoragePoolGetInfo")
    isActive = _method("virStoragePoolIsActive", -1)
    isPersistent = _method("virStoragePoolIsPersistent", -1)
    autostart = _method("virStoragePoolGetAutostart", -1)
    numOfVolumes = _method("virStoragePoolNumOfVolumes", -1)
    listAllVolumes = _method("virStoragePoolListAllVolumes", nargs=1, defaults=(0,),
                             makes=lambda self, ptrs: [virStorageVol(self._conn, p) for p in ptrs])
    storageVolLookupByName = _method("virStorageVolLookupByName", nargs=1,
                                     makes=lambda self, p: virStorageVol(self._conn, p))


class virNetwork(_Object):
    _free = "virNetworkFree"
    name = _method("virNetworkGetName", _NEVER)
    UUIDString = _method("virNetworkGetUUIDString")
    XMLDesc = _method("virNetworkGetXMLDesc", nargs=1, defaults=(0,))
    isActive = _method("virNetworkIsActive", -1)
    isPersistent = _method("virNetworkIsPersistent", -1)
    autostart = _method("virNetworkGetAutostart", -1)
    DHCPLeases = _method("virNetworkGetDHCPLeases", nargs=2, defaults=(None, 0))


class virDomain(_Object):
    _free = "virDomainFree"
    name = _method("virDomainGetName", _NEVER)
    ID = _method("virDomainGetID", _NEVER)
    UUIDString = _method("virDomainGetUUIDString")
    XMLDesc = _method("virDomainGetXMLDesc", nargs=1, defaults=(0,))
    state = _method("virDomainGetState", nargs=1, defaults=(0,))
    isActive = _method("virDomainIsActive", -1)
    isPersistent = _method("virDomainIsPersistent", -1)
    autostart = _method("virDomainGetAutostart", -1)


def _domains_with_stats(conn: virConnect, found: list) -> list:
    return [(virDomain(conn, ptr), stats) for ptr, stats in found]


class virConnect:
    def __init__(self, _obj):
        self._o = _obj

    def __del__(self):
        if self._o is not None:
            libvirtmod.virConnectClose(self._o)
        self._o = None

    def close(self) -> int:
        ret = libvirtmod.virConnectClose(self._o)
        self._o = None
        return _checked("virConnectClose", -1, ret)

    isAlive = _method("virConnectIsAlive", -1)
    setKeepAlive = _method("virConnectSetKeepAlive", -1, nargs=2)
    getHostname = _method("virConnectGetHostname")
    getType = _method("virConnectGetType")
    getLibVersion = _method("virConnectGetLibVersion", -1)
    getVersion = _method("virConnectGetVersion", -1)
    getCapabilities = _method("virConnectGetCapabilities")
    getDomainCapabilities = _method("virConnectGetDomainCapabilities", nargs=5,
                                    defaults=(None, None, None, None, 0))
    getInfo = _method("virNodeGetInfo")
    getFreeMemory = _method("virNodeGetFreeMemory", _NEVER)
    getCPUStats = _method("virNodeGetCPUStats", nargs=2, defaults=(0,))
    getMemoryStats = _method("virNodeGetMemoryStats", nargs=2, defaults=(0,))
    listAllNetworks = _method("virConnectListAllNetworks", nargs=1, defaults=(0,),
                              makes=lambda self, ptrs: [virNetwork(self, p) for p in ptrs])
    listAllStoragePools = _method("virConnectListAllStoragePools", nargs=1, defaults=(0,),
                                  makes=lambda self, ptrs: [virStoragePool(self, p) for p in ptrs])
    listAllDomains = _method("virConnectListAllDomains", nargs=1, defaults=(0,),
                             makes=lambda self, ptrs: [virDomain(self, p) for p in ptrs])
    networkLookupByName = _method("virNetworkLookupByName", nargs=1, makes=lambda self, p: virNetwork(self, p))
    storagePoolLookupByName = _method("virStoragePoolLookupByName", nargs=1,
                                      makes=lambda self, p: virStoragePool(self, p))
    lookupByName = _method("virDomainLookupByName", nargs=1, makes=lambda self, p: virDomain(self, p))
    getAllDomainStats = _method("virConnectGetAllDomainStats", nargs=2, defaults=(0, 0), makes=_domains_with_stats)

    def domainListGetStats(self, doms: list[virDomain], stats: int = 0, flags: int = 0) -> list:
        if not all(isinstance(dom, virDomain) for dom in doms):
            raise libvirtError("domain list contains non-domain elements")
        found = _checked("virDomainListGetStats", None,
                         libvirtmod.virDomainListGetStats(self._o, [dom._o for dom in doms], stats, flags))
        return _domains_with_stats(self, found)


def open(name: str | None = None) -> virConnect:
    return virConnect(_checked("virConnectOpen", None, libvirtmod.virConnectOpen(name)))


def openAuth(uri: str, auth: list, flags: int = 0) -> virConnect:
    return virConnect(_checked("virConnectOpenAuth", None, libvirtmod.virConnectOpenAuth(uri, auth, flags)))


def registerErrorHandler(f, ctx) -> int:
    return libvirtmod.virRegisterErrorHandler(f, ctx)


def virEventRegisterDefaultImpl() -> int:
    return _checked("virEventRegisterDefaultImpl", -1, libvirtmod.virEventRegisterDefaultImpl())


def virEventRunDefaultImpl() -> int:
    return _checked("virEventRunDefaultImpl", -1, libvirtmod.virEventRunDefaultImpl())
