"""Listing rows of networks, pools and volumes, and who uses which volume: plain dicts read
through the declared XML fields (xmlmodels), without pydantic, so that `net list`, `pool list`
and `vol list` start fast. The models of the Python API (NetworkInfo, PoolInfo, VolumeInfo) are
built from these same rows; vmrows.py does the same for VMs.

A row's keys are its model's fields, so `--json` prints the same thing either way."""
from __future__ import annotations

import posixpath

from virtops.base.binding import libvirt
from virtops.base.errors import VirtopsError, libvirt_errors, one_sentence
from virtops.base.threads import Indexes, run_threads
from virtops.daemon import lookups
from virtops.xmlmodels import read
from virtops.xmlmodels.pool import PoolXml
from virtops.xmlmodels.volume import VolumeXml

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from xml.etree.ElementTree import Element  # or lxml's: xmlmodels/read.py

LIST_WORKERS = 16  # volume XML fetched in parallel: one round trip each, the daemon answers several at once
POOL_STATES = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: "inactive",
    libvirt.VIR_STORAGE_POOL_BUILDING: "building",
    libvirt.VIR_STORAGE_POOL_RUNNING: "running",
    libvirt.VIR_STORAGE_POOL_DEGRADED: "degraded",
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: "inaccessible",
}


# -- the listings, as every face asks for them (one host; the fleet asks each) ----------------
def networks(host, include_inactive: bool = True) -> list[dict]:
    with libvirt_errors("listing networks"):
        return network_rows(host.conn, include_inactive)


def pools(host, include_inactive: bool = True) -> list[dict]:
    with libvirt_errors("listing storage pools"):
        return pool_rows(host.conn, include_inactive)


def volumes(host, pool_name: str) -> list[dict]:
    pool = lookups.active_pool(host.conn, pool_name)
    with libvirt_errors(f"listing volumes of pool {pool_name}"):
        return volume_rows(host.conn, pool)


def network_info(host, name: str) -> dict:
    net = lookups.network(host.conn, name)
    with libvirt_errors(f"reading network {name}"):
        return network_row(net)


def pool_info(host, name: str) -> dict:
    pool = lookups.pool(host.conn, name)
    with libvirt_errors(f"reading pool {name}"):
        return pool_row(pool, count_volumes=True)


def volume_info(host, ref: str) -> dict:
    pool, vol = lookups.volume(host.conn, ref)
    with libvirt_errors(f"reading volume {ref}"):
        return volume_row(pool.name(), read.parse(vol.XMLDesc(0)), volume_users(host.conn))


# -- networks --------------------------------------------------------------------------------
def network_fields(node: Element) -> dict:
    """What virtops models of a network's XML, as the keys of NetworkSpec."""
    from virtops.xmlmodels.network import NetworkXml  # here: pool and volume listings need no ipaddress

    net = NetworkXml(node)
    spec = net.values("name", "uuid", "mode", "dev", "bridge", "domain", "mtu")
    spec.update(ipv6_guests=bool(net.ipv6_guests), nat_ipv6=bool(net.nat_ipv6) and spec["mode"] == "nat")
    ipv4, ipv6 = net.ipv4, net.ipv6
    spec.update(subnet=None, gateway=None, dhcp_start=None, dhcp_end=None, hosts=[], ipv6=None, ipv6_gateway=None)
    if ipv4 is not None:
        ranges = list(ipv4.ranges)
        spec.update(subnet=str(ipv4.interface.network), gateway=str(ipv4.interface.ip),
                    dhcp_start=ranges[0].start if ranges else None, dhcp_end=ranges[0].end if ranges else None,
                    hosts=[{"mac": h.mac, "ip": h.ip, "name": h.name} for h in ipv4.hosts if h.ip and h.mac])
    if ipv6 is not None:
        spec.update(ipv6=str(ipv6.interface.network), ipv6_gateway=str(ipv6.interface.ip))
    return spec


def network_addresses(node: Element) -> list[dict]:
    """Every <ip> of a network as the XML gives it: address/prefix, DHCP ranges, static hosts
    (IPv6 ones by DUID or by name alone)."""
    addresses = []
    from virtops.xmlmodels.network import NetworkXml

    for ip in NetworkXml(node).ips:
        interface = ip.interface
        hosts = [{key: value for key, value in host.values("mac", "id", "name", "ip").items() if value is not None}
                 for host in ip.hosts]
        addresses.append({"family": f"ipv{ip.version}", "address": str(interface) if interface else ip.address,
                          "dhcp_ranges": [f"{r.start}-{r.end}" for r in ip.ranges], "hosts": hosts})
    return addresses


def network_row(net: libvirt.virNetwork) -> dict:
    root = read.parse(net.XMLDesc(0))
    spec = network_fields(root)
    active = bool(net.isActive())
    has_dhcp = spec["dhcp_start"] is not None
    return {"name": net.name(), "uuid": net.UUIDString(), "active": active, "autostart": bool(net.autostart()),
            "persistent": bool(net.isPersistent()), "mode": spec["mode"], "bridge": spec["bridge"],
            "dev": spec["dev"], "subnet": spec["subnet"], "gateway": spec["gateway"],
            "dhcp_start": spec["dhcp_start"], "dhcp_end": spec["dhcp_end"],
            "dhcp_range": f"{spec['dhcp_start']}-{spec['dhcp_end']}" if has_dhcp else None,
            "ipv6": spec["ipv6"], "domain": spec["domain"], "mtu": spec["mtu"], "hosts": spec["hosts"],
            "ipv6_guests": spec["ipv6_guests"], "nat_ipv6": spec["nat_ipv6"], "addresses": network_addresses(root),
            "leases": lease_count(net) if active and spec["subnet"] else 0, "unreadable": None}


# What reading an object's XML through the models can raise besides libvirt's own errors: XML
# that recovery could not read (UnreadableXML), or a value no model expects.
UNREADABLE = (VirtopsError, ValueError, TypeError, AttributeError)


def network_row_or_unreadable(net: libvirt.virNetwork) -> dict | None:
    """One network that cannot be read never breaks the listing: it is listed as unreadable,
    with the reason (None: it was undefined while we listed)."""
    try:
        return network_row(net)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        reason = one_sentence(err.get_error_message() or str(err))
    except UNREADABLE as err:
        reason = str(err)
    unknown = dict.fromkeys(("bridge", "dev", "subnet", "gateway", "dhcp_start", "dhcp_end", "dhcp_range", "ipv6",
                              "domain", "mtu", "ipv6_guests", "nat_ipv6"))
    return {"name": net.name(), "uuid": net.UUIDString(), "active": bool(net.isActive()),
            "autostart": bool(net.autostart()), "persistent": bool(net.isPersistent()), "mode": "unreadable",
            **unknown, "hosts": [], "addresses": [], "leases": 0, "unreadable": reason}


def network_rows(conn: libvirt.virConnect, include_inactive: bool = True) -> list[dict]:
    nets = conn.listAllNetworks(0 if include_inactive else libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE)
    rows = [network_row_or_unreadable(n) for n in nets]
    return sorted((r for r in rows if r is not None), key=lambda r: r["name"])


def lease_count(net: libvirt.virNetwork) -> int:
    try:
        return len(net.DHCPLeases())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return 0  # the driver (libvirt's test driver) keeps no leases
        raise


# -- pools -----------------------------------------------------------------------------------
def pool_row(pool: libvirt.virStoragePool, count_volumes: bool = False) -> dict:
    xml = PoolXml(read.parse(pool.XMLDesc(0)))
    state, capacity, allocation, available = pool.info()
    active = bool(pool.isActive())
    source = xml.source.values() if xml.source is not None else {}
    perms = xml.permissions.values() if xml.permissions is not None else {}
    return {"name": pool.name(), "type": xml.type, "state": POOL_STATES.get(state, "unknown"), "active": active,
            "autostart": bool(pool.autostart()), "persistent": bool(pool.isPersistent()),
            "capacity": capacity if active else None, "allocation": allocation if active else None,
            "available": available if active else None, "target": xml.target,
            "source_host": source.get("host"), "source_path": source.get("dir"),
            "source_device": source.get("device"), "source_format": source.get("format"),
            "source_name": source.get("name"),
            "mode": perms.get("mode"), "owner": _set_id(perms.get("owner")), "group": _set_id(perms.get("group")),
            "volumes": pool.numOfVolumes() if count_volumes and active else None, "uuid": xml.uuid, "unreadable": None}


def _set_id(value: int | None) -> int | None:
    """libvirt writes -1 for an owner or group left unset: unset it stays."""
    return None if value == -1 else value


def _unreadable_pool(pool: libvirt.virStoragePool, reason: str) -> dict:
    """A pool whose XML cannot be read: listed with the reason, everything else unknown."""
    keys = ("capacity", "allocation", "available", "target", "source_host", "source_path", "source_device",
            "source_format", "source_name", "mode", "owner", "group", "volumes", "uuid")
    return {"name": pool.name(), "type": "unreadable", "state": "unknown", "active": bool(pool.isActive()),
            "autostart": bool(pool.autostart()), "persistent": bool(pool.isPersistent()), **dict.fromkeys(keys),
            "unreadable": reason}


def pool_rows(conn: libvirt.virConnect, include_inactive: bool = True) -> list[dict]:
    flags = 0 if include_inactive else libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE
    rows = []
    for pool in conn.listAllStoragePools(flags):
        try:
            rows.append(pool_row(pool))
        except libvirt.libvirtError:
            continue  # undefined while we listed: it is gone, so it is not listed
        except UNREADABLE as err:
            rows.append(_unreadable_pool(pool, str(err)))
    return sorted(rows, key=lambda r: r["name"])


def volume_rows(conn: libvirt.virConnect, pool: libvirt.virStoragePool) -> list[dict]:
    """One listAllVolumes, the per-volume XML fetched concurrently, 'used by' from one domain pass
    (the first thread's, before it joins the fetching)."""
    pool_name = pool.name()
    vols = pool.listAllVolumes(0)
    roots: list = [None] * len(vols)
    found: list[VolumeUsers] = []
    next_index = Indexes(len(vols))

    def fetch(first: bool) -> None:
        if first:
            found.append(volume_users(conn))
        while (i := next_index()) is not None:
            roots[i] = volume_xml_or_none(vols[i])

    run_threads(fetch, [True, *[False] * min(LIST_WORKERS, len(vols))])
    rows = [_volume_row_or_unreadable(pool_name, vol, root, found[0]) for vol, root in zip(vols, roots)
            if root is not None]
    return sorted(rows, key=lambda r: r["name"])


def _volume_row_or_unreadable(pool_name: str, vol: libvirt.virStorageVol, root: Element,
                              users: VolumeUsers) -> dict:
    try:
        if VolumeXml(root).name is None:
            raise VirtopsError("libvirt's XML of it could not be read")
        return volume_row(pool_name, root, users)
    except UNREADABLE as err:
        return {"pool": pool_name, "name": vol.name(), "format": None, "capacity": 0, "allocation": 0,
                "path": None, "type": None, "backing": None, "used_by": [], "running_users": [],
                "unreadable": str(err)}


def volume_xml_or_none(vol: libvirt.virStorageVol) -> Element | None:
    """The volume's XML, parsed in the worker thread (the parsing, too, runs while others wait on libvirt); XML
    nothing can read becomes an empty <volume> (no name), which its row shows as unreadable."""
    try:
        text = vol.XMLDesc(0)
    except libvirt.libvirtError:
        return None  # deleted while we listed
    try:
        return read.parse(text)
    except VirtopsError:
        return read.element("volume")


# -- volumes and who uses them ---------------------------------------------------------------
class VolumeUsers:
    """Which domains reference which disk sources, from one pass over all domains. (A plain
    class: dataclasses imports inspect, 5 ms of `vol list`'s start-up.)"""

    def __init__(self):
        self.by_path: dict[str, set[str]] = {}
        self.by_volume: dict[tuple[str, str], set[str]] = {}
        self.running: set[str] = set()

    def of(self, pool: str, name: str, path: str | None) -> list[str]:
        users = set(self.by_volume.get((pool, name), ()))
        if path:
            users |= self.by_path.get(posixpath.normpath(path), set())
        return sorted(users)

    def of_pool(self, pool: str, target: str | None) -> set[str]:
        users = {vm for (p, _v), vms in self.by_volume.items() if p == pool for vm in vms}
        if target:
            prefix = posixpath.normpath(target) + "/"
            users |= {vm for path, vms in self.by_path.items() if path.startswith(prefix) for vm in vms}
        return users


def domains_with_xml(conn: libvirt.virConnect) -> list[tuple[str, bool, Element]]:
    """Every domain with its persistent (inactive) definition, or its live one when transient:
    (name, running, XML). One listAllDomains pass; callers compute 'used by' from it."""
    result = []
    for dom in conn.listAllDomains():
        try:
            flags = libvirt.VIR_DOMAIN_XML_INACTIVE if dom.isPersistent() else 0
            result.append((dom.name(), bool(dom.isActive()), read.parse(dom.XMLDesc(flags))))
        except libvirt.libvirtError:
            continue  # the domain vanished while we listed: it uses nothing any more
    return result


def volume_users(conn: libvirt.virConnect) -> VolumeUsers:
    from virtops.xmlmodels.domain import DomainXml  # here: a pool listing reads no domain

    users = VolumeUsers()
    for name, running, root in domains_with_xml(conn):
        if running:
            users.running.add(name)
        for disk in DomainXml(root).disks:
            path = disk.path if disk.type != "network" else None  # a network disk's name is no path here
            if path:
                users.by_path.setdefault(posixpath.normpath(path), set()).add(name)
            if disk.pool and disk.volume:
                users.by_volume.setdefault((disk.pool, disk.volume), set()).add(name)
    return users


def volume_row(pool_name: str, root: Element, users: VolumeUsers | None = None) -> dict:
    vol = VolumeXml(root)
    name, path = vol.name, vol.path
    used = users.of(pool_name, name, path) if users else []
    return {"pool": pool_name, "name": name, "format": vol.format, "capacity": vol.capacity or 0,
            "allocation": vol.allocation or 0, "path": path, "type": vol.type, "backing": vol.backing_path,
            "used_by": used, "running_users": [vm for vm in used if users and vm in users.running],
            "unreadable": None}
