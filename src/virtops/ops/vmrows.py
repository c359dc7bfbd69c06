"""VMs read from libvirt as plain rows (dicts): the one reading of a domain's XML (<disk>,
<interface>) that the models, the listings and the spec share, and the listings themselves.

Nothing here imports pydantic: `vm list` prints thousands of rows, and a command that imports
pydantic starts about 70 ms later. The models in vm.py are built from these rows.

Where the listing's figures come from, and why:
- Stopped domains: bulk stats calls only (the states of all domains, then the vCPUs, memory and
  disk targets of the stopped ones). For a stopped domain libvirt reads these from the
  definition, with no QEMU to ask.
- Running domains: their XML, several calls in flight. The same stats for a running domain
  would ask its QEMU monitor (about 4 ms per domain here), and the XML also names the NICs,
  whose MACs find the IPs in the networks' DHCP leases.
- The long listing reads every domain's XML: the MAC and network of a stopped domain's NIC
  are in no bulk call.
"""
from __future__ import annotations

from virtops.base.binding import libvirt
from virtops.base.errors import libvirt_errors
from virtops.base.threads import Indexes, run_threads
from virtops.daemon import lookups
from virtops.xmlmodels import read
from virtops.xmlmodels.devices import DiskXml, NicXml
from virtops.xmlmodels.domain import DomainXml

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from typing import Iterable
    from xml.etree.ElementTree import Element  # or lxml's: xmlmodels/read.py

    from virtops.host import Host

# virsh's words for domain states, so that `vm list` reads like `virsh list`.
STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state", libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "idle", libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "in shutdown", libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
STOPPED_STATS = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU
                 | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_BLOCK)
XML_THREADS = 5  # calls in flight per connection: libvirtd serves 5 per client (max_client_requests)
PARALLEL_FROM = 200  # domains; below this, an extra connection costs more than it saves
XML_EXTRA_CONNECTIONS = 1  # measured on a 2-core daemon: a third connection gains nothing


# -- listings ---------------------------------------------------------------------------------
def summaries(host: Host, all: bool = True) -> list[dict]:
    """A summary per VM, running ones first: id, name, uuid, state, running, vcpus, memory_bytes,
    disks (targets) and ips (address/prefix from the DHCP leases of the VM's networks)."""
    running, stopped = _domains(host, all)
    stats = []
    if stopped:
        with libvirt_errors("listing VMs"):
            stats = host.conn.domainListGetStats([dom for dom, _state in stopped], STOPPED_STATS)
    # Drivers without these stats (libvirt's test driver) are read from the XML instead.
    complete, partial = [], []
    for dom, values in stats:
        if "vcpu.maximum" in values and "balloon.maximum" in values:
            complete.append((dom, values))
        else:
            partial.append((dom, values.get("state.state", libvirt.VIR_DOMAIN_SHUTOFF)))
    rows = [_summary_of(row) for row in _rows_with_ips(host, running + partial)]
    rows += [_stopped_summary(dom, values) for dom, values in complete]
    return _sorted(_with_persistence(host, rows))


def summaries_with_nics(host: Host, all: bool = True) -> list[dict]:
    """summaries() and each VM's NIC MACs and networks (what the web console's VM list searches),
    from every VM's XML as detailed() reads it: stopped VMs' NICs are in no bulk call."""
    return [{**_summary_of(row), "persistent": row["persistent"], "autostart": row["autostart"],
             "macs": [nic["mac"] for nic in row["nics"] if nic["mac"]],
             "networks": [nic["network"] for nic in row["nics"] if nic["network"]]} for row in detailed(host, all)]


def detailed(host: Host, all: bool = True) -> list[dict]:
    """Every VM in VmInfo.model_dump()'s shape (disks with pool and volume, NICs with MAC, network
    and IP), read from each VM's XML."""
    running, stopped = _domains(host, all)
    return _sorted(_with_persistence(host, _rows_with_ips(host, running + stopped)))


def _with_persistence(host: Host, rows: list[dict]) -> list[dict]:
    """Each row's persistent and autostart, from two listings of the host's domains (the transient
    ones, the autostarting ones) rather than two calls per domain: both are usually short, where a
    listing of the persistent ones would make an object of nearly every domain. A transient VM
    cannot autostart: its autostart is None, as vm_info gives it."""
    if not rows:
        return rows
    with libvirt_errors("listing VMs"):
        transient = {dom.UUIDString() for dom in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
        autostart = {dom.UUIDString() for dom in host.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)}
    for row in rows:
        row["persistent"] = row["uuid"] not in transient
        row["autostart"] = row["uuid"] in autostart if row["persistent"] else None
    return rows


def _domains(host: Host, all: bool) -> tuple[list[tuple[libvirt.virDomain, int]], list[tuple[libvirt.virDomain, int]]]:
    """(domain, state) of the running and of the stopped domains, from one bulk call that asks no
    QEMU. A domain object keeps the id it had when listed (-1 when stopped): telling them apart
    costs no round trip."""
    flags = 0 if all else libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    with libvirt_errors("listing VMs"):
        stats = host.conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, flags)
    states = [(dom, values.get("state.state", libvirt.VIR_DOMAIN_NOSTATE)) for dom, values in stats]
    return [pair for pair in states if pair[0].ID() >= 0], [pair for pair in states if pair[0].ID() < 0]


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (not row["running"], row["name"]))


def _rows_with_ips(host: Host, doms: list[tuple[libvirt.virDomain, int]]) -> list[dict]:
    rows = _rows_from_xml(host, doms)
    fill_ips(host.conn, rows)
    return rows


def _stopped_summary(dom: libvirt.virDomain, stats: dict) -> dict:
    """A stopped VM's summary from its bulk stats; name and UUID are kept by the domain object."""
    state = stats.get("state.state", libvirt.VIR_DOMAIN_SHUTOFF)
    return {"id": None, "name": dom.name(), "uuid": dom.UUIDString(), "state": STATE_NAMES.get(state, "unknown"),
            "running": False, "persistent": None, "autostart": None, "vcpus": stats.get("vcpu.maximum", 0),
            "memory_bytes": stats.get("balloon.maximum", 0) * 1024,
            "disks": [stats[f"block.{i}.name"] for i in range(stats.get("block.count", 0))], "ips": []}


def _summary_of(row: dict) -> dict:
    summary = {"id": row["id"], "name": row["name"], "uuid": row["uuid"], "state": row["state"],
               "running": row["running"], "persistent": None, "autostart": None, "vcpus": row["vcpus"], "memory_bytes": row["memory_bytes"],
               "disks": [disk["target"] for disk in row["disks"]],
               "ips": [nic["ip"] for nic in row["nics"] if nic["ip"]]}
    if row.get("unreadable"):
        summary["unreadable"] = row["unreadable"]
    return summary


def _rows_from_xml(host: Host, domains: list[tuple[libvirt.virDomain, int]]) -> list[dict]:
    """A row per (domain, state) from its live XML, leaving out those undefined meanwhile. libvirt serves
    a few calls of one client at a time and releases the GIL during each, so several threads
    fetch; from PARALLEL_FROM domains on, threads on an extra connection share the work, taking
    domains as soon as it is open. Parsing waits until all is fetched: a thread busy parsing
    holds the GIL, and the fetching threads would queue for it after every call."""
    doms = [dom for dom, _state in domains]
    texts: list[str | None] = [None] * len(doms)
    next_index = Indexes(len(doms))

    def fetch(own: dict[str, libvirt.virDomain] | None) -> None:
        while (i := next_index()) is not None:
            dom = doms[i]
            if own is not None:  # the same domain as an object of the extra connection
                dom = own.get(dom.UUIDString(), dom)  # UUIDString is local: no round trip
            texts[i] = _xml_text(dom)

    def extra_connection() -> None:
        try:
            conn = libvirt.open(host.uri)
        except libvirt.libvirtError:
            return  # the threads on the main connection do it all
        try:
            own = {dom.UUIDString(): dom for dom in conn.listAllDomains()}
            run_threads(fetch, [own] * XML_THREADS)
        except libvirt.libvirtError:
            pass  # what it did not take, the others take
        finally:
            conn.close()

    extra = [extra_connection] * XML_EXTRA_CONNECTIONS
    if len(doms) < PARALLEL_FROM or host.uri.startswith("test:"):  # test:///: one state per connection
        extra = []
    if doms:
        run_threads(lambda task: task() if task else fetch(None),
                     [None, *extra, *[None] * (min(XML_THREADS, len(doms)) - 1)])
    return [_vm_row_or_unreadable(dom, state, text) for (dom, state), text in zip(domains, texts) if text]


def _vm_row_or_unreadable(dom: libvirt.virDomain, state: int, text: str) -> dict:
    """One domain whose XML no model reads never breaks the listing: it is listed with the reason."""
    from virtops.ops.rows import UNREADABLE

    try:
        return vm_row(read.parse(text), dom.ID(), state)
    except UNREADABLE as err:
        return {"id": dom.ID() if dom.ID() >= 0 else None, "name": dom.name(), "uuid": dom.UUIDString(),
                "state": STATE_NAMES.get(state, "unknown"), "running": dom.ID() >= 0, "persistent": None,
                "autostart": None, "virt_type": "", "vcpus": 0, "memory_bytes": 0, "disks": [], "nics": [],
                "unreadable": str(err)}


def fill_ips(conn: libvirt.virConnect, rows: list[dict]) -> None:
    """The IP of each NIC of a running VM, from its network's DHCP leases."""
    networks = {nic["network"] for row in rows if row["running"] for nic in row["nics"] if nic["type"] == "network"}
    if not networks:
        return
    leases = _leases_of(conn, networks)
    for row in rows:
        if row["running"]:
            for nic in row["nics"]:
                nic["ip"] = leases.get(nic["mac"] or "")


def _leases_of(conn: libvirt.virConnect, networks: Iterable[str]) -> dict[str, str]:
    """mac -> address/prefix of its newest IPv4 lease, asking each network once."""
    leases: dict[str, tuple[int, str]] = {}
    for net_name in networks:
        try:
            entries = conn.networkLookupByName(net_name).DHCPLeases()
        except libvirt.libvirtError:
            continue  # network gone or stopped: no leases
        for lease in entries:
            mac = (lease.get("mac") or "").lower()
            newest = leases.get(mac)
            if lease.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and (newest is None or lease["expirytime"] > newest[0]):
                leases[mac] = (lease["expirytime"], f"{lease['ipaddr']}/{lease['prefix']}")
    return {mac: address for mac, (_t, address) in leases.items()}


def vm_info(host: Host, name: str) -> dict:
    """One VM as VmInfo.model_dump() has it: its live XML, persistence, autostart and IPs."""
    dom = lookups.domain(host.conn, name)
    with libvirt_errors(f"reading VM {name}"):
        root = read.parse(dom.XMLDesc(0))
        state = dom.state()[0]
        persistent = bool(dom.isPersistent())
        autostart = bool(dom.autostart()) if persistent else None
    row = vm_row(root, dom.ID(), state, persistent, autostart)
    fill_ips(host.conn, [row])
    return {**row, "unreadable": None}


# -- one domain's XML as a row ----------------------------------------------------------------
def vm_row(root: Element, dom_id: int, state: int, persistent: bool | None = None,
           autostart: bool | None = None) -> dict:
    """VmInfo.model_dump()'s dict straight from domain XML (the fields xmlmodels.domain declares),
    the IPs left to fill_ips."""
    running = root.get("id") is not None
    dom = DomainXml.row(root, _VM_FIELDS)
    devices = DomainXml.child_nodes(root, "disks", "nics")
    return {"id": dom_id if dom_id >= 0 else None,
            "name": dom["name"], "uuid": dom["uuid"] or "", "state": STATE_NAMES.get(state, "unknown"),
            "running": running, "persistent": persistent, "autostart": autostart, "virt_type": dom["type"] or "",
            "vcpus": dom["vcpu"] or 1, "memory_bytes": dom["memory"] or 0,
            "disks": [_disk_row(disk) for disk in devices["disks"]],
            "nics": [_nic_row(nic, running) for nic in devices["nics"]]}


_VM_FIELDS = ("name", "uuid", "type", "vcpu", "memory")


def _disk_row(disk: Element) -> dict:
    """DiskInfo.model_dump()'s dict from a <disk>, without building models."""
    f = disk_fields(disk)
    return {"target": f["target"], "bus": f["bus"], "device": f["device"], "type": f["type"],
            "source": disk_source_label(f), "pool": f["pool"], "volume": f["volume"], "path": f["path"],
            "protocol": f["protocol"], "name": f["name"], "hosts": f["hosts"], "format": f["format"],
            "readonly": f["readonly"], "shareable": f["shareable"], "serial": f["serial"], "cache": f["cache"]}


def disk_source_label(f: dict) -> str:
    """What a disk opens, as people read it: POOL/VOLUME, a path, PROTOCOL://HOST:PORT/NAME for a
    network disk (an nbd export may have no name), or '-' for an empty CD-ROM drive."""
    if f["pool"] and f["volume"]:
        return f"{f['pool']}/{f['volume']}"
    if f["protocol"]:
        servers = ",".join(f"[{host}]" if host.startswith("unix:") else host for host in f["hosts"])
        return f"{f['protocol']}://{servers}" + (f"/{f['name'].lstrip('/')}" if f["name"] else "")
    return f["path"] or "-"


def _nic_row(nic: Element, running: bool) -> dict:
    """NicInfo.model_dump()'s dict from an <interface>, plus the host-side device of a running VM."""
    f = nic_fields(nic)
    return {"mac": f["mac"], "type": f["type"], "network": f["network"], "source": f["source"],
            "source_mode": f["source_mode"], "model": f["model"], "interface": f["device"] if running else None,
            "ip": None}


_DISK_FIELDS = ("type", "target", "pool", "volume", "path", "protocol", "source_name", "hosts", "format", "bus",
                "device", "cache", "readonly", "shareable", "serial")


def disk_fields(disk: Element) -> dict:
    """What a <disk> says, in DiskSpec's field names (xmlmodels.devices.DiskXml declares where each
    lives); format is None when the XML gives none, bus and device take libvirt's defaults, type
    what libvirt assumes for what the source names. A network disk's servers are HOST:PORT (or
    unix:SOCKET) texts."""
    f = DiskXml.row(disk, _DISK_FIELDS)
    f["target"] = f["target"] or ""
    f["bus"] = f["bus"] or "virtio"
    f["device"] = f["device"] or "disk"
    f["type"] = f["type"] or ("network" if f["protocol"] else "file")
    f["name"] = f.pop("source_name")
    f["hosts"] = [_server_text(host) for host in f["hosts"]]
    return f


def _server_text(host: dict) -> str:
    if host["socket"] or host["transport"] == "unix":
        return f"unix:{host['socket'] or ''}"
    return f"{host['name'] or ''}:{host['port']}" if host["port"] is not None else (host["name"] or "")


def nic_fields(nic: Element) -> dict:
    """What an <interface> says: its type (libvirt's default: network), what it is plugged into
    (`source`: the network, bridge, host device or socket), `network` only for a NIC on a virtual
    network, the mode of a direct or vhost-user NIC, MAC, model and host-side device."""
    f = NicXml.row(nic, ("type", "source", "source_mode", "mac", "model", "target_dev"))
    nic_type = f["type"] or "network"
    return {"type": nic_type, "source": f["source"], "network": f["source"] if nic_type == "network" else None,
            "source_mode": f["source_mode"], "mac": f["mac"], "model": f["model"] or "-", "device": f["target_dev"]}


def kib(node: Element | None) -> int:
    """A <memory>-like element's value in KiB."""
    if node is None:
        return 0
    return (DomainXml.memory.read_element(node) or 0) // 1024


# -- fetching many at once --------------------------------------------------------------------
def _xml_text(dom: libvirt.virDomain) -> str | None:
    try:
        return dom.XMLDesc(0)
    except libvirt.libvirtError:
        return None  # undefined while we listed
