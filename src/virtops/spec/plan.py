"""Plan and apply a spec: compare the desired host (spec.py) with the live one, turn each
difference into an action made of core operations, and run them in dependency order.

Convergence comes from the shape, not from bookkeeping: every step is one complete core
operation (which undoes its own partial work), and a plan is always computed from the live
host, so an apply that was killed midway is finished by the next one.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import libvirt

from virtops.xmlmodels import doc as X
from virtops.xmlmodels.domain import DomainXml as DomainDocument  # DomainXml below is ops.vm's live/persistent pair
from virtops.xmlmodels.pool import PoolXml
from virtops.base.errors import InvalidInput, NotFound, VirtopsError, command, located, one_sentence, term
from virtops.base.hostlock import host_lock
from virtops.spec.document import (SPEC_WORDING, BootEntry, DiskEntry, HostSpec, LoadedSpec, SpecErrors, NetworkEntry, NicEntry,
                                   PoolEntry, VmEntry, VolumeEntry, network_entry)
from virtops.base.model import size_text
from virtops.base.units import format_size
from virtops.ops.devices import path_disk_type
from virtops.ops.network import NETWORK_EDIT_FIELDS, NetworkSpec
from virtops.ops.pool import POOL_PERMISSION_FIELDS  # what the spec leaves to the host when it gives none
from virtops.ops.volume import backing_first
from virtops.xmlmodels.values import BUILT_AS_DIRECTORY, ON_A_DEVICE, POOL_TYPES, VOLUME_FORMATS
from virtops.ops.vm import DomainXml, HostView, PoolRoom, ResolvedVolume

# An apply waits this long for a command of another face that changes the host (they take the same
# lock, base/hostlock.py), and is refused at once in effect by another apply, which holds it longer.
APPLY_WAIT_S = 5.0
# Fields of a network the in-place edit (Networks.edit) cannot change; they need a new network.
NETWORK_FIXED_FIELDS = ("bridge",)
POOL_STATE_FIELDS = ("autostart", "active")
# A dir pool's permissions (POOL_PERMISSION_FIELDS) change in place (Pools.set_permissions); other
# types mount a file system.
# A VM's settings Vms.update changes in its definition; a running VM gets them at its next boot.
VM_BOOT_FIELDS = ("memory", "vcpus", "boot", "pxe")
SIZE_FIELDS = ("capacity", "memory", "allocation")


# -- the plan ------------------------------------------------------------------------------------
@dataclass
class Change:
    field: str
    old: Any
    new: Any

    def text(self) -> str:
        return f"{self.field}: {_show(self.field, self.old)} -> {_show(self.field, self.new)}"


@dataclass
class Action:
    kind: str  # pool | volume | network | vm
    name: str
    verb: str  # create | update | delete
    mode: str = "live"  # live | needs-restart | impossible
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a restart costs, or why it is impossible
    steps: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    disruptive: bool = False  # needs --yes: running guests lose a device or a link

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "action": self.verb, "mode": self.mode,
                "needs_yes": self.disruptive,
                "changes": [{"field": c.field, "from": _json(c.old), "to": _json(c.new)} for c in self.changes],
                "notes": self.notes, "steps": [label for label, _ in self.steps]}


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # on the host, not in the spec, kept without --prune
    warnings: list[str] = field(default_factory=list)

    @property
    def impossible(self) -> list[Action]:
        return [a for a in self.actions if a.mode == "impossible"]

    @property
    def needs_yes(self) -> list[Action]:
        return [a for a in self.actions if a.disruptive]

    def as_dict(self) -> dict:
        return {"actions": [a.as_dict() for a in self.actions], "kept": self.kept, "warnings": self.warnings,
                "summary": self.summary()}

    def summary(self) -> str:
        count = {verb: sum(a.verb == verb for a in self.actions) for verb in ("create", "update", "delete")}
        extra = []
        if self.needs_yes:
            extra.append(f"{len(self.needs_yes)} need {term('yes', True)}")
        if self.impossible:
            extra.append(f"{len(self.impossible)} impossible")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{count['create']} to create, {count['update']} to update, {count['delete']} to delete{tail}."


def _show(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in SIZE_FIELDS and isinstance(value, int):
        return str(size_text(value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(_host_text((v["mac"], v["ip"], v.get("name"))) if "mac" in v and "ip" in v
                         else _show(name, v) for v in value) or "-"
    return str(value)


def _json(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


# -- the live host, in the spec's terms -----------------------------------------------------------
@dataclass
class Live:
    spec: HostSpec
    inactive_pools: set[str] = field(default_factory=set)
    running_vms: set[str] = field(default_factory=set)
    unmanaged: set[str] = field(default_factory=set)  # "kind/name" the spec cannot express: never pruned
    warnings: list[str] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)  # "kind/name": its inactive XML, for the xml: entries

    def pool(self, name: str) -> PoolEntry | None:
        return next((p for p in self.spec.pools if p.name == name), None)

    def network(self, name: str) -> NetworkEntry | None:
        return next((n for n in self.spec.networks if n.name == name), None)

    def vm(self, name: str) -> VmEntry | None:
        return next((v for v in self.spec.vms if v.name == name), None)

    def volume_refs(self) -> set[str]:
        return {f"{p.name}/{v.name}" for p in self.spec.pools for v in p.volumes}


def read_live(host) -> Live:
    """The host as a spec, through the core's listings; objects a spec cannot express are left out
    with a warning (and never pruned)."""
    live = Live(spec=HostSpec())
    paths: dict[str, str] = {}
    pools = [_live_pool(host, info, live, paths) for info in host.pools.list()]
    pools = [p for p in pools if p is not None]
    for pool in pools:  # backing paths become POOL/VOLUME once every volume's path is known
        pool.volumes = [v.model_copy(update={"backing": paths.get(v.backing, v.backing)}) if v.backing else v
                        for v in pool.volumes]
    networks = [_live_network(host, info, live) for info in host.networks.list()]
    vms = [_live_vm(host, info, live, paths) for info in host.vms.list()]
    live.spec = HostSpec.model_construct(pools=pools, networks=[n for n in networks if n],
                                         vms=[v for v in vms if v])
    return live


def _transient(live: Live, kind: str, name: str) -> None:
    """A transient object vanishes when stopped: it is not configuration, so specs leave it alone."""
    live.unmanaged.add(f"{kind}/{name}")
    live.warnings.append(f"{kind} {name} is transient (not defined); left out.")


def _unreadable(live: Live, kind: str, name: str, reason: str) -> None:
    """An object whose XML cannot be read is neither exported nor ever pruned."""
    live.unmanaged.add(f"{kind}/{name}")
    live.warnings.append(f"{kind} {name} cannot be read ({reason.rstrip('.')}); left out.")


def _live_pool(host, info, live: Live, paths: dict[str, str]) -> PoolEntry | None:
    if info.unreadable:
        return _unreadable(live, "pool", info.name, info.unreadable)
    if not info.persistent:
        return _transient(live, "pool", info.name)
    text = host.pools.dumpxml(info.name, inactive=True)
    live.raw[f"pool/{info.name}"] = text
    if info.type not in POOL_TYPES:  # carried as libvirt's XML, its usage figures left out
        entry = PoolEntry.model_construct(name=info.name, xml=_without(text, USAGE), autostart=info.autostart,
                                          active=info.active, volumes=[])
        if not info.active:
            live.inactive_pools.add(info.name)
        return entry
    declared = PoolXml(X.parse(host.pools.dumpxml(info.name))).permissions
    label = declared.label if declared is not None else None
    perms = {key: getattr(info, key) for key in POOL_PERMISSION_FIELDS}  # as libvirt reports them; unset stays unset
    entry = PoolEntry.model_construct(
        name=info.name, type=info.type, target=info.target, **perms,
        label=label, host=info.source_host, source_path=info.source_path, device=info.source_device,
        format=info.source_format, source_name=info.source_name, autostart=info.autostart, active=info.active,
        volumes=[])
    if not info.active:
        live.inactive_pools.add(info.name)
        return entry
    volumes = []
    for vol in host.volumes.list(info.name):
        if vol.unreadable:
            _unreadable(live, "volume", f"{info.name}/{vol.name}", vol.unreadable)
            continue
        if vol.path:
            paths[vol.path] = f"{info.name}/{vol.name}"
        if info.type in ON_A_DEVICE:  # a partition or an LV holds raw data (libvirt says format none)
            vol = vol.model_copy(update={"format": "raw"})
        if vol.format not in VOLUME_FORMATS:  # carried as libvirt's XML, without where and how full it is
            text = host.volumes.dumpxml(f"{info.name}/{vol.name}")
            live.raw[f"volume/{info.name}/{vol.name}"] = text
            volumes.append(VolumeEntry.model_construct(name=vol.name, xml=_without(text, VOLUME_STATE)))
            continue
        # Allocation is how much data was written; only a fully allocated volume says so on purpose.
        allocation = vol.allocation if vol.format == "raw" and vol.allocation >= vol.capacity else None
        volumes.append(VolumeEntry.model_construct(name=vol.name, capacity=vol.capacity, allocation=allocation,
                                                   format=vol.format, backing=vol.backing))
    entry.volumes = volumes
    return entry


def _live_network(host, info, live: Live) -> NetworkEntry | None:
    if info.unreadable:
        return _unreadable(live, "network", info.name, info.unreadable)
    if not info.persistent:
        return _transient(live, "network", info.name)
    text = host.networks.dumpxml(info.name, inactive=True)
    live.raw[f"network/{info.name}"] = text
    root = X.parse(text)
    if not beyond_the_fields(root):
        return network_entry(host.networks.spec(info.name), info.autostart, info.active)
    if not beyond_the_addresses(root):
        return network_entry(NetworkSpec.from_element(root, every_address=True), info.autostart, info.active)
    return NetworkEntry.model_construct(name=info.name, xml=X.to_string(X.parse(text)), autostart=info.autostart,
                                        active=info.active)


USAGE = ("capacity", "allocation", "available")  # a pool's figures: state, not configuration
VOLUME_STATE = ("key", "allocation", "physical", "target/path", "target/timestamps")  # where it is, how full


def _without(text: str, paths: tuple[str, ...]) -> str:
    root = X.parse(text)
    for path in paths:
        for node in root.findall(path):
            node.getparent().remove(node)
    return X.to_string(root)


# What NetworkEntry's fields say of a network, element by element, with the attributes they set
# (and what libvirt writes by itself: the UUID, the bridge's MAC, NAT's default port range).
NETWORK_FIELD_XML = {
    "network": {"ipv6"}, "network/name": set(), "network/uuid": set(), "network/forward": {"mode", "dev"},
    "network/forward/nat": {"ipv6"}, "network/forward/nat/port": {"start", "end"}, "network/forward/interface": {"dev"},
    "network/bridge": {"name", "stp", "delay"}, "network/mtu": {"size"}, "network/mac": {"address"},
    "network/domain": {"name", "localOnly"}, "network/ip": {"address", "prefix", "netmask", "family"},
    "network/ip/dhcp": set(), "network/ip/dhcp/range": {"start", "end"}, "network/ip/dhcp/host": {"mac", "id", "name", "ip"},
}
NAT_PORTS = ("1024", "65535")  # libvirt's default masquerading range


def beyond_the_fields(root) -> bool:
    """Whether a network has what NetworkEntry's single-address fields (subnet, dhcp, hosts,
    ipv6) cannot say: what the addresses: form cannot say either, more <ip> than one IPv4 and one
    IPv6, more than one IPv4 DHCP range, DHCPv6, static hosts without MAC."""
    from virtops.xmlmodels.network import NetworkXml

    if beyond_the_addresses(root):
        return True
    ips = list(NetworkXml(root).ips)
    v4, v6 = [ip for ip in ips if ip.version == 4], [ip for ip in ips if ip.version == 6]
    if len(v4) > 1 or len(v6) > 1:
        return True
    if v6 and (len(v6[0].ranges) or len(v6[0].hosts)):
        return True
    return bool(v4) and (len(v4[0].ranges) > 1 or any(not (h.mac and h.ip) for h in v4[0].hosts))


def beyond_the_addresses(root) -> bool:
    """Whether a network has what even the addresses: form cannot say, so that export carries it
    as xml: a mode the fields do not name, an element or attribute they do not set (DNS entries,
    port groups, bandwidth, routes...), an <ip> without a usable address, a static
    host without an address or without what names it (a MAC, DUID or name)."""
    from virtops.xmlmodels.network import NetworkXml
    from virtops.xmlmodels.values import NETWORK_MODES

    net = NetworkXml(root)
    if net.mode not in NETWORK_MODES or _unmodelled_xml(root):
        return True
    for ip in net.ips:
        if ip.interface is None:
            return True
        if any(not h.ip or not (h.mac or h.name or (ip.version == 6 and h.id)) for h in ip.hosts):
            return True
    return False


def _unmodelled_xml(root) -> bool:
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue  # a comment
        path = "/".join(reversed([n.tag for n in (node, *node.iterancestors())]))
        if path not in NETWORK_FIELD_XML or not set(node.attrib) <= NETWORK_FIELD_XML[path]:
            return True
        if path == "network/forward/nat/port" and (node.get("start"), node.get("end")) != NAT_PORTS:
            return True
        if path == "network/forward/interface" and node.get("dev") != node.getparent().get("dev"):
            return True
    return len(root.findall("forward/interface")) > 1


def _live_vm(host, info, live: Live, paths: dict[str, str]) -> VmEntry | None:
    from virtops.ops.domain import DiskSpec, NicSpec

    if info.unreadable:
        return _unreadable(live, "vm", info.name, info.unreadable)
    if info.running:
        live.running_vms.add(info.name)
    if not info.persistent:
        return _transient(live, "vm", info.name)
    text = host.vms.dumpxml(info.name, inactive=True)
    dom = DomainDocument(X.parse(text))
    disks = [_disk_entry(DiskSpec.from_element(node), paths) for node in dom.disks.nodes()]
    nics = [NicSpec.from_element(node) for node in dom.nics.nodes()]
    if None in disks or any(nic.type is None for nic in nics):
        # A device the fields cannot describe (a CD-ROM, a NIC of type user, ethernet, vhostuser...):
        # the whole VM is carried as libvirt's XML (spec/rawxml.py), so nothing of it is dropped.
        live.raw[f"domain/{info.name}"] = text
        return VmEntry.model_construct(name=info.name, xml=X.to_string(X.parse(text)), autostart=bool(info.autostart))
    nics = [NicEntry.model_construct(**nic.normalized().model_dump()) for nic in nics]
    boot = BootEntry.model_construct(kernel=dom.kernel, initrd=dom.initrd, cmdline=dom.cmdline or "") \
        if dom.kernel else None
    pxe = [device.get("dev") for device in dom.boot_devices.nodes()][:1] == ["network"]
    return VmEntry.model_construct(name=info.name, memory=dom.memory or 0, vcpus=dom.vcpu or 1,
                                   boot=boot, pxe=pxe, autostart=bool(info.autostart), disks=disks, nics=nics)


def _disk_entry(disk, paths: dict[str, str]) -> DiskEntry | None:
    """A disk as the spec has it: on a volume (a file a pool holds is that pool's volume), by path
    (a file or block device), or on the network; None for what specs do not describe (CD-ROMs,
    directories, block devices outside /dev)."""
    if disk.device != "disk":
        return None
    common = dict(target=disk.target, bus=disk.bus, cache=disk.cache, readonly=disk.readonly,
                  shareable=disk.shareable, serial=disk.serial)
    if disk.by_volume:
        return DiskEntry.model_construct(volume=f"{disk.pool}/{disk.volume}", **common)
    if disk.path and disk.path in paths:
        return DiskEntry.model_construct(volume=paths[disk.path], **common)
    # A disk by path of another type than its path gives (a directory; a block device outside /dev,
    # a file under it) goes with its VM as xml:, so that it comes back as it is.
    if disk.path and disk.type == path_disk_type(disk.path):
        return DiskEntry.model_construct(path=disk.path, format=disk.format, **common)
    if disk.protocol:
        return DiskEntry.model_construct(protocol=disk.protocol, name=disk.name, hosts=list(disk.hosts),
                                         format=disk.format, **common)
    return None


def _came_with_its_pool(volumes, ref: str) -> bool:
    """A volume of a pool the spec has just made may be there already, brought by the pool's storage:
    a disk pool's partitions, a logical pool's LVs, the files of a directory. The plan after the
    apply compares it with the spec as any volume."""
    try:
        volumes.lookup(ref)
        return True
    except NotFound:
        return False


def export(host) -> tuple[HostSpec, list[str]]:
    """The live host as a spec (for `virtops export`), and what was left out."""
    live = read_live(host)
    return live.spec, live.warnings


# -- the host as the spec's earlier actions leave it ------------------------------------------------
class SpecView(HostView):
    """The live host, plus what the spec creates before a VM's turn (pools, volumes, networks,
    the VMs above it) and minus what --prune deletes, for the core's VM checks at plan time."""

    def __init__(self, vms, live: Live, spec: HostSpec, prune: bool):
        super().__init__(vms)
        self.live = live
        self.new_pools = {p.name: p for p in spec.pools if live.pool(p.name) is None}
        self.new_volumes = {f"{p.name}/{v.name}": (p, v.normalized()) for p in spec.pools for v in p.volumes
                            if f"{p.name}/{v.name}" not in live.volume_refs()}
        self.new_networks = {n.name for n in spec.networks if live.network(n.name) is None}
        wanted_vms = {v.name for v in spec.vms}
        self.pruned_vms = {v.name for v in live.spec.vms if v.name not in wanted_vms} if prune else set()
        self.added: list[DomainXml] = []
        self.hidden: set[str] = set()
        self._live_domains: list[DomainXml] | None = None

    def add(self, domain) -> None:
        """A VM the spec creates: its disks and MACs count for the VMs after it."""
        root = domain.to_element()
        self.added.append(DomainXml(domain.name, False, True, root, root))

    @contextmanager
    def hiding(self, name: str) -> Iterator[None]:
        """Checks of a VM's own new devices: its current ones are replaced, so they do not count."""
        self.hidden.add(name)
        try:
            yield
        finally:
            self.hidden.discard(name)

    def domains(self) -> list[DomainXml]:
        if self._live_domains is None:
            self._live_domains = super().domains()
        gone = self.pruned_vms | self.hidden
        return [d for d in self._live_domains + self.added if d.name not in gone]

    def vm_exists(self, name: str) -> bool:
        return any(d.name == name for d in self.added) or (name not in self.pruned_vms and super().vm_exists(name))

    def volume(self, pool: str, volume: str, field_name: str) -> ResolvedVolume:
        planned = self.new_volumes.get(f"{pool}/{volume}")
        if planned is None:
            return super().volume(pool, volume, field_name)
        pool_entry, vol = planned
        path = f"{(pool_entry.target or '').rstrip('/')}/{volume}" if pool_entry.target else volume
        return ResolvedVolume(pool, volume, path, vol.format or "raw", vol.capacity)

    def new_pool_directory(self, name: str):
        """The directory a pool of the spec will have once made: its target with the spec's mode
        (libvirt's 0711 when left out), owner and group (the daemon's, root, when left out)."""
        from virtops.ops.access import Entry
        from virtops.ops.pool import check_mode, resolve_group, resolve_owner

        entry = self.new_pools.get(name)
        if entry is None or entry.type != "dir" or not entry.target:  # netfs: the export decides
            return None
        try:
            owner, group = resolve_owner(entry.owner), resolve_group(entry.group)
            mode = int(check_mode(entry.mode) or "0711", 8)
        except VirtopsError:
            return None  # the pool's own check refuses it
        return Entry(entry.target, mode, 0 if owner is None else owner, 0 if group is None else group)

    def pool_room(self, name: str, field_name: str) -> PoolRoom:
        planned = self.new_volumes.values()
        if name in self.new_pools:
            entry = self.new_pools[name]
            return PoolRoom(name, entry.type, None, {v.name for p, v in planned if p.name == name})
        room = super().pool_room(name, field_name)
        room.volumes |= {v.name for p, v in planned if p.name == name}
        return room

    def require_network(self, name: str, field_name: str) -> None:
        if name not in self.new_networks:
            super().require_network(name, field_name)


# -- planning ------------------------------------------------------------------------------------
def make_plan(host, loaded: LoadedSpec, prune: bool = False) -> Plan:
    """Every difference between the spec and the live host as actions, in apply order;
    SpecError (file:line: field) for a spec the host refuses. Changes nothing."""
    if prune:
        refuse_pruning_everything(loaded)
    live = read_live(host)
    planner = _Planner(host, loaded, live, prune)
    check_references(loaded, live, prune, planner.refuse_at)
    plan = Plan(warnings=live.warnings)
    for pool in sorted(planner.pending_pools):
        plan.warnings.append(f"pool {pool} is not running, so its volumes (and the VMs using them) are compared "
                             "once it runs; apply starts it and plans again.")
    plan.actions += planner.pools()
    plan.actions += planner.volumes()
    plan.actions += planner.networks()
    plan.actions += planner.vms()
    deletions = planner.deletions()
    if prune:
        plan.actions += deletions
    else:
        plan.kept = [a.label for a in deletions]
    plan.warnings += planner.warnings
    if planner.refusals:
        raise SpecErrors(planner.refusals)  # every mistake found, one line each, before anything changes
    return plan


def refuse_pruning_everything(loaded: LoadedSpec) -> None:
    """An empty file (or one whose lists are all empty) is far more often a mistake (a truncated
    download, the wrong file) than a wish to wipe the host, so --prune never takes it as one."""
    spec = loaded.spec
    if not (spec.pools or spec.networks or spec.vms):
        raise VirtopsError(f"{loaded.file}: the spec lists no pools, networks or VMs, so {term('prune', True)} would delete "
                           "everything on the host; refused: delete objects with their own commands instead.")


def check_references(loaded: LoadedSpec, live: Live, prune: bool, refuse: Callable[[tuple, str], None]) -> None:
    """A volume, pool or network named in the spec exists in the spec or (kept) on the host."""
    spec = loaded.spec
    # With --prune, what the spec leaves out is deleted, so it cannot be referred to either.
    volumes = {f"{p.name}/{v.name}" for p in spec.pools for v in p.volumes}
    networks = {n.name for n in spec.networks}
    if not prune:
        volumes |= live.volume_refs()
        networks |= {n.name for n in live.spec.networks}
    where = "in the spec" if prune else "in the spec or on the host"
    for i, pool in enumerate(spec.pools):
        for j, vol in enumerate(pool.volumes):
            if vol.backing and vol.backing.startswith("/"):
                _check_kept_backing(live, pool.name, vol, lambda message, p=("pools", i, "volumes", j, "backing"):
                                    refuse(p, message))
            elif vol.backing and vol.backing not in volumes:
                refuse(("pools", i, "volumes", j, "backing"),
                       f"{vol.backing} is no volume {where}; add it under its pool's volumes.")
    for i, vm in enumerate(spec.vms):
        # What a VM on the host refers to already is no change: a pool or network it names that is
        # not defined never makes a plan of the unchanged host refuse (unless --prune deletes it).
        current = live.vm(vm.name)
        had_volumes = {d.volume for d in current.disks if d.volume} if current else set()
        had_networks = {n.network for n in current.nics if n.network} if current else set()
        on_host_volumes, on_host_networks = live.volume_refs(), {n.name for n in live.spec.networks}
        for j, disk in enumerate(vm.disks):
            if not disk.volume or disk.volume in volumes:
                continue
            if disk.volume in had_volumes and not (prune and disk.volume in on_host_volumes):
                continue
            refuse(("vms", i, "disks", j, "volume"), f"{disk.volume} is no volume {where}; add it under its pool's volumes.")
        for j, nic in enumerate(vm.nics):
            if not nic.network or nic.network in networks:
                continue
            if nic.network in had_networks and not (prune and nic.network in on_host_networks):
                continue
            refuse(("vms", i, "nics", j, "network"), f"{nic.network!r} is no network {where}; add it under networks.")


def _check_kept_backing(live: Live, pool: str, vol: VolumeEntry, refuse: Callable[[str], None]) -> None:
    """A backing file outside any pool is kept on a volume that has it, refused on any other."""
    from virtops.ops.volume import check_backing

    live_pool = live.pool(pool)
    kept = next((v.backing for v in live_pool.volumes if v.name == vol.name), None) if live_pool else None
    try:
        check_backing(vol.backing, kept=kept)
    except InvalidInput as err:
        refuse(err.worded(SPEC_WORDING, with_field=False))


class _Planner:
    """Turns each difference into an action, checking it as the core will when it runs: against
    the live host as the spec's earlier actions leave it (SpecView). A refusal is collected, not
    raised, so that a plan reports every mistake at once."""

    def __init__(self, host, loaded: LoadedSpec, live: Live, prune: bool):
        self.host, self.loaded, self.live = host, loaded, live
        self.spec = loaded.spec
        # Pools to start whose volumes cannot be seen yet: their volumes and VMs wait a round.
        self.pending_pools = {p.name for p in self.spec.pools if p.name in live.inactive_pools and p.active}
        self.view = SpecView(host.vms, live, self.spec, prune)
        self.refusals: list[VirtopsError] = []
        self.blamed: set[tuple] = set()  # ("vms", 0): refused once already, not checked again
        self.warnings: list[str] = []

    def refused(self, path: tuple, err: VirtopsError) -> None:
        for one in getattr(err, "errors", None) or [err]:  # Refusals: several at once
            self.refusals.append(self.loaded.refusal(path, one))
        self.blamed.add(path[:2])

    def refuse_at(self, path: tuple, message: str) -> None:
        self.refusals.append(self.loaded.error(path, message))
        self.blamed.add(path[:2])

    # ---- pools ----
    def pools(self) -> list[Action]:
        actions = []
        for i, entry in enumerate(self.spec.pools):
            current = self.live.pool(entry.name)
            if entry.xml is not None or (current is not None and current.xml is not None):
                actions += filter(None, [self._xml_action(("pools", i), "pool", entry, current)])
                continue
            try:
                desired = entry.normalized(kept=current)
            except VirtopsError as err:
                self.refused(("pools", i), err)
                continue
            action = self._create_pool(i, entry, desired) if current is None else self._update_pool(desired, current)
            if action:
                actions.append(action)
        return actions

    def _create_pool(self, i: int, entry: PoolEntry, desired: PoolEntry) -> Action:
        try:
            core = self.host.pools.check_new(entry)
        except VirtopsError as err:
            self.refused(("pools", i), err)
            core = None
        pools = self.host.pools
        return Action("pool", entry.name, "create", changes=_fields_set(desired, exclude={"name", "volumes"}),
                      steps=[(f"create pool {entry.name}",
                              lambda: pools.create(core, start=desired.active, autostart=desired.autostart))])

    def _update_pool(self, desired: PoolEntry, current: PoolEntry) -> Action | None:
        left_to_host = {key for key in POOL_PERMISSION_FIELDS if getattr(desired, key) is None}
        changes = _diff(current, desired, exclude={"volumes", "name"} | left_to_host)
        if not changes:
            return None
        action = Action("pool", desired.name, "update", changes=changes)
        in_place = POOL_STATE_FIELDS + (POOL_PERMISSION_FIELDS if current.type == desired.type == "dir" else ())
        fixed = [c.field for c in changes if c.field not in in_place]
        if fixed:
            action.mode = "impossible"
            action.notes.append(f"a pool's {', '.join(fixed)} cannot change in place; delete the pool and create it "
                                "again (its volumes with it), or keep the host's value in the spec.")
            return action
        pools, name = self.host.pools, desired.name
        if any(c.field in POOL_PERMISSION_FIELDS for c in changes):
            action.steps.append((f"set permissions of pool {name} (mode {desired.mode}, owner {desired.owner}, "
                                 f"group {desired.group}) and build it to apply them to {desired.target}",
                                 lambda: pools.set_permissions(name, mode=desired.mode, owner=desired.owner,
                                                               group=desired.group)))
            if current.active:
                action.notes.append(f"pool {name} stops for a moment and starts again, because libvirt applies "
                                    "permissions to the directory only when it builds a stopped pool; its volumes "
                                    "stay and running VMs keep their open disks.")
        for change in changes:
            if change.field in POOL_PERMISSION_FIELDS:
                continue
            if change.field == "active" and change.new:
                if desired.type in BUILT_AS_DIRECTORY:
                    action.steps.append((f"build pool {name}", lambda: pools.build(name)))
                action.steps.append((f"start pool {name}", lambda: pools.start(name)))
            elif change.field == "active":
                users = sorted(self._running_users_of_pool(name, desired.target))
                if users:
                    action.disruptive = True
                    action.notes.append(f"stopping pool {name} takes its volumes from running VM(s) "
                                        f"{', '.join(users)}.")
                action.steps.append((f"stop pool {name}", lambda: pools.stop(name, force=bool(users))))
            else:
                action.steps.append((f"set autostart of pool {name} to {change.new}",
                                     lambda on=change.new: pools.set_autostart(name, on)))
        return action

    # ---- objects given as libvirt's XML (spec/rawxml.py) ----
    def _xml_action(self, path: tuple, kind: str, entry, current) -> Action | None:
        """An entry given as xml: defined as it is when new; when the host has it, compared after
        libvirt's own formatting and redefined when it differs; then its autostart and state."""
        from virtops.spec import rawxml

        name = entry.name
        shown = "vm" if kind == "domain" else kind  # a plan speaks of VMs, libvirt of domains
        if entry.xml is None:
            action = Action(shown, name, "update", mode="impossible", changes=[Change("xml", "the host's XML", None)])
            action.notes.append(f"the host's {shown} {name} has a form the fields cannot describe "
                                f"({command('export', elsewhere='an export')} gives it as xml:); give it as xml:, or "
                                f"delete the {shown} and create it again.")
            return action
        try:
            rawxml.normalized(kind, entry.xml)
        except libvirt.libvirtError as err:
            self.refuse_at(path + ("xml",), f"libvirt refuses it: {one_sentence(err.get_error_message() or str(err))}")
            return None
        if kind == "network":
            try:
                self.host.networks.check_define(entry.xml, replace=current is not None)
            except VirtopsError as err:
                self.refused(path, err)
                return None
        if current is None:
            return Action(shown, name, "create", changes=[Change("xml", None, "libvirt's XML")],
                          steps=[(f"define {shown} {name} from its xml", self._definer(kind, entry, new=True))])
        action = Action(shown, name, "update")
        differs = _xml_difference(kind, self.live.raw[f"{kind}/{name}"], entry.xml)
        if differs:
            action.changes.append(Change("xml", *differs))
            action.steps.append((f"redefine {shown} {name} from its xml", self._definer(kind, entry, new=False)))
            if kind == "domain" or current.active:
                self._note_redefinition(action, kind, name)
        if kind == "network":
            self._state_steps(action, current, entry)
        elif kind == "domain":
            self._xml_vm_autostart(action, current, entry)
        else:
            self._xml_pool_state(action, current, entry)
        return action if action.changes or action.steps else None

    def _definer(self, kind: str, entry, new: bool) -> Callable[[], Any]:
        xml, name = entry.xml, entry.name
        if kind == "domain":
            vms = self.host.vms

            def define_vm():
                vms.define(xml)
                if new and entry.autostart:
                    vms.set_autostart(name, True)
            return define_vm
        if kind == "pool":
            pools = self.host.pools
            return lambda: pools.define_xml(xml, start=new and entry.active, autostart=new and entry.autostart)
        networks = self.host.networks

        def define_network():
            networks.define(xml, replace=not new, start=new and entry.active, force=True)
            if new and entry.autostart:
                networks.set_autostart(name, True)
        return define_network

    def _note_redefinition(self, action: Action, kind: str, name: str) -> None:
        if kind == "domain":
            if name in self.live.running_vms:
                action.mode = "needs-restart"
                action.notes.append(f"running VM {name} takes its new definition at its next boot; virtops does not "
                                    "reboot it.")
            return
        if kind == "pool":
            action.notes.append(f"running pool {name} takes its new definition when it next starts.")
            return
        guests = self.host.networks.running_nics(name)
        action.mode = "needs-restart"
        action.disruptive = bool(guests)
        action.notes.append(restart_cost(name, guests))

    def _xml_vm_autostart(self, action: Action, current: VmEntry, desired: VmEntry) -> None:
        vms, name = self.host.vms, desired.name
        if desired.autostart != current.autostart:
            action.changes.append(Change("autostart", current.autostart, desired.autostart))
            action.steps.append((f"set autostart of vm {name} to {desired.autostart}",
                                 lambda: vms.set_autostart(name, desired.autostart)))

    def _xml_pool_state(self, action: Action, current: PoolEntry, desired: PoolEntry) -> None:
        """Start, stop, autostart; never a build: a disk, logical or iSCSI pool holds what is there."""
        pools, name = self.host.pools, desired.name
        if desired.active != current.active:
            action.changes.append(Change("active", current.active, desired.active))
            if desired.active:
                action.steps.append((f"start pool {name}", lambda: pools.start(name)))
            else:
                users = sorted(self._running_users_of_pool(name, None))
                action.disruptive = action.disruptive or bool(users)
                action.steps.append((f"stop pool {name}", lambda: pools.stop(name, force=bool(users))))
        if desired.autostart != current.autostart:
            action.changes.append(Change("autostart", current.autostart, desired.autostart))
            action.steps.append((f"set autostart of pool {name} to {desired.autostart}",
                                 lambda: pools.set_autostart(name, desired.autostart)))

    def _running_users_of_pool(self, name: str, target: str | None) -> set[str]:
        from virtops.ops.rows import volume_users

        users = volume_users(self.host.conn)
        return users.of_pool(name, target) & users.running

    # ---- volumes ----
    def volumes(self) -> list[Action]:
        wanted = []  # (path, pool, entry) in backing-first order
        for i, pool in enumerate(self.spec.pools):
            if pool.name in self.live.inactive_pools:
                continue  # its volumes show once it runs: the apply plans again after starting it
            for j, vol in enumerate(pool.volumes):
                wanted.append((("pools", i, "volumes", j), pool.name, vol.normalized()))
        actions = []
        for path, pool_name, desired in backing_first(wanted, _item_ref, _item_backing):
            current_pool = self.live.pool(pool_name)
            current = next((v for v in current_pool.volumes if v.name == desired.name), None) if current_pool else None
            if desired.xml is not None or (current is not None and current.xml is not None):
                actions += filter(None, [self._xml_volume(path, pool_name, desired, current, current_pool is not None)])
                continue
            action = self._create_volume(path, pool_name, desired, current_pool is not None) if current is None else \
                self._update_volume(pool_name, desired, current)
            if action:
                actions.append(action)
        return actions

    def _xml_volume(self, path: tuple, pool: str, desired: VolumeEntry, current: VolumeEntry | None,
                    pool_exists: bool) -> Action | None:
        """A volume given as xml: created as it is; libvirt changes no volume's definition in place."""
        from virtops.spec import rawxml

        ref = f"{pool}/{desired.name}"
        if current is None:
            if pool_exists:
                self._check_xml_volume(path, pool, desired)
            volumes = self.host.volumes
            return Action("volume", ref, "create", changes=[Change("xml", None, "libvirt's XML")],
                          steps=[(f"create volume {ref} from its xml", lambda: volumes.define_xml(pool, desired.xml))])
        host_xml = self.live.raw.get(f"volume/{ref}")
        if desired.xml is not None and host_xml is not None and rawxml.same("volume", host_xml, desired.xml):
            return None
        differs = _xml_difference("volume", host_xml, desired.xml) if desired.xml and host_xml else ("-", "-")
        action = Action("volume", ref, "update", mode="impossible", changes=[Change("xml", *differs)])
        action.notes.append(f"a volume's definition cannot change in place; create a new volume (and copy the data) "
                            f"instead, or keep {ref} as {command('export', elsewhere='an export')} gives it.")
        return action

    def _check_xml_volume(self, path: tuple, pool: str, desired: VolumeEntry) -> None:
        from virtops.spec import rawxml

        try:
            rawxml.normalized("volume", desired.xml)
        except libvirt.libvirtError as err:
            self.refuse_at(path + ("xml",), f"libvirt refuses it: {one_sentence(err.get_error_message() or str(err))}")

    def _create_volume(self, path: tuple, pool: str, desired: VolumeEntry, pool_exists: bool) -> Action:
        volumes = self.host.volumes
        ref = f"{pool}/{desired.name}"
        # In a pool on the host, the core's checks of `vol create` (space, backing) run now; a pool
        # the spec creates has no free space to compare with until it exists.
        backing_on_host = not desired.backing or desired.backing in self.live.volume_refs()
        if pool_exists and backing_on_host:
            try:
                _spec, warnings = volumes.check_new(pool, desired.name, desired.capacity, desired.allocation,
                                                    desired.format, desired.backing)
                self.warnings += [f"volume {ref}: {w}" for w in warnings]
            except VirtopsError as err:
                self.refused(path, err)
        def create() -> None:
            if not pool_exists and _came_with_its_pool(volumes, ref):
                return
            volumes.create_from(pool, desired)

        label = f"create volume {ref}" + ("" if pool_exists else " (unless it comes with its pool)")
        return Action("volume", ref, "create", changes=_fields_set(desired, exclude={"name"}), steps=[(label, create)])

    def _update_volume(self, pool: str, desired: VolumeEntry, current: VolumeEntry) -> Action | None:
        # Allocation grows as the guest writes: state, not configuration, so it is never compared.
        changes = _diff(current, desired, exclude={"name", "allocation"})
        if not changes:
            return None
        ref = f"{pool}/{desired.name}"
        action = Action("volume", ref, "update", changes=changes)
        for change in changes:
            if change.field == "capacity" and change.new < change.old:
                action.mode = "impossible"
                action.notes.append(f"shrinking {ref} from {format_size(change.old)} to {format_size(change.new)} would "
                                    "cut off data; a spec never shrinks a volume"
                                    f"{command(f'vol resize {ref}', term('shrink', True), wrap=' (use {})', elsewhere='')}.")
            elif change.field in ("format", "backing"):
                action.mode = "impossible"
                action.notes.append(f"a volume's {change.field} cannot change in place; create a new volume "
                                    "(and copy the data) instead.")
        if action.mode != "impossible":
            volumes = self.host.volumes
            action.steps.append((f"resize volume {ref} to {format_size(desired.capacity)}",
                                 lambda: volumes.resize(ref, desired.capacity)))
            users = [vm.name for vm in self.live.spec.vms if any(d.volume == ref for d in vm.disks)
                     and vm.name in self.live.running_vms]
            if users:
                action.notes.append(f"running VM(s) {', '.join(users)} see the new size after their next boot.")
        return action

    # ---- networks ----
    def networks(self) -> list[Action]:
        actions = []
        for i, entry in enumerate(self.spec.networks):
            current = self.live.network(entry.name)
            if entry.xml is not None or (current is not None and current.xml is not None):
                actions += filter(None, [self._xml_action(("networks", i), "network", entry, current)])
                continue
            if entry.addresses or (current is not None and current.addresses):
                actions += filter(None, [self._addresses_action(i, entry, current)])
                continue
            try:
                desired = entry.normalized(kept=current)
            except VirtopsError as err:
                self.refused(("networks", i), err)
                continue
            action = self._create_network(i, entry, desired) if current is None else \
                self._update_network(i, entry, desired, current)
            if action:
                actions.append(action)
        return actions

    def _addresses_action(self, i: int, entry: NetworkEntry, current: NetworkEntry | None) -> Action | None:
        """A multi-address network (on either side): the core makes the XML the entry means (the
        host's own definition with the entry's fields set), and it is compared and defined as an
        entry given as xml: is, after libvirt's own formatting."""
        try:
            xml = self.host.networks.planned_definition(entry.name, **entry.build_options())
        except VirtopsError as err:
            self.refused(("networks", i), err)
            return None
        as_xml = NetworkEntry.model_construct(name=entry.name, xml=xml, autostart=entry.autostart, active=entry.active)
        return self._xml_action(("networks", i), "network", as_xml, current)

    def _create_network(self, i: int, entry: NetworkEntry, desired: NetworkEntry) -> Action:
        networks, options = self.host.networks, entry.build_options()
        try:
            networks.plan_create(entry.name, **options)
        except VirtopsError as err:
            self.refused(("networks", i), err)
        return Action("network", entry.name, "create", changes=_fields_set(desired, exclude={"name"}),
                      steps=[(f"create network {entry.name}", lambda: networks.create_from(
                          entry, start=desired.active, autostart=desired.autostart))])

    def _update_network(self, i: int, entry: NetworkEntry, desired: NetworkEntry,
                        current: NetworkEntry) -> Action | None:
        # Left out, the bridge is whatever the host picked.
        exclude = {"name"} | (set() if entry.bridge else {"bridge"})
        changes = _diff(current, desired, exclude=exclude | {"hosts"})
        old_hosts = {(h.mac, h.ip, h.name) for h in current.hosts}
        new_hosts = {(h.mac, h.ip, h.name) for h in desired.hosts}
        removed, added = sorted(old_hosts - new_hosts), sorted(new_hosts - old_hosts)
        changes += [Change("hosts", _host_text(h), None) for h in removed]
        changes += [Change("hosts", None, _host_text(h)) for h in added]
        if not changes:
            return None
        action = Action("network", entry.name, "update", changes=changes)
        fixed = [c.field for c in changes if c.field in NETWORK_FIXED_FIELDS]
        if "bridge" in (current.mode, desired.mode) and any(c.field == "mode" for c in changes):
            fixed.append("mode (to or from bridge)")
        if fixed:
            action.mode = "impossible"
            action.notes.append(f"a network's {', '.join(fixed)} cannot change in place; delete the network and "
                                "create it again, or keep the host's value in the spec.")
            return action
        networks, name = self.host.networks, entry.name
        for mac, _ip, _host in removed:
            action.steps.append((f"remove host {mac} from {name}", lambda m=mac: networks.host_remove(name, m)))
        edits = {c.field for c in changes} & set(NETWORK_EDIT_FIELDS)
        if edits:
            self._plan_edit(i, action, current, desired)
        for mac, ip, hostname in added:
            action.steps.append((f"add host {mac} {ip} to {name}",
                                 lambda m=mac, a=ip, h=hostname: networks.host_add(name, m, a, h)))
        self._state_steps(action, current, desired)
        return action

    def _plan_edit(self, i: int, action: Action, current: NetworkEntry, desired: NetworkEntry) -> None:
        """The in-place change of the networks issue: net-update when libvirt can, else redefine,
        restart and re-plug the running guests' NICs. Its plan says what the restart costs."""
        networks, name = self.host.networks, desired.name
        edit = dict(subnet=desired.subnet, gateway=desired.gateway, dhcp=desired.dhcp, mode=desired.mode,
                    dev=desired.dev or "", domain=desired.domain or "", mtu=desired.mtu or 0,
                    ipv6_guests=bool(desired.ipv6_guests), nat_ipv6=bool(desired.nat_ipv6))
        if any(change.field == "ipv6" for change in action.changes):
            edit["ipv6"] = desired.ipv6 or ""  # added, moved, or removed ("")
        try:
            plan = networks.plan_edit(name, **edit)
            steps, guests, live_only = plan.steps, plan.guests, plan.live
        except InvalidInput as err:
            if current.hosts and err.field == "subnet":
                # Host entries leave first (the steps above), so the edit can be checked only then.
                guests = networks.running_nics(name) if current.active else []
                steps, live_only = [f"redefine {name}", f"restart {name}"] if current.active else [], False
            else:
                self.refused(("networks", i), err)
                return
        if not live_only and current.active:
            action.mode = "needs-restart"
            action.disruptive = True
            action.notes.append(restart_cost(name, guests))
        action.notes += steps
        action.steps.append((f"edit network {name}", lambda: networks.edit(name, yes=True, **edit)))

    def _state_steps(self, action: Action, current, desired) -> None:
        networks, name = self.host.networks, desired.name
        if current.active and not desired.active:
            # Stopping it cuts running guests off: the plan says so, and only --yes lets it run
            # (then with the core's force: the operator has read the cost).
            nics = networks.running_nics(name)
            if nics:
                action.disruptive = True
                action.notes.append(f"stopping network {name} cuts off the NICs of running guest(s) "
                                    f"{', '.join(sorted({dom for dom, _mac, _model in nics}))} until it runs again.")
            action.steps.append((f"stop network {name}", lambda: networks.stop(name, force=bool(nics))))
        elif desired.active and not current.active:
            action.steps.append((f"start network {name}", lambda: networks.start(name)))
        if current.autostart != desired.autostart:
            action.steps.append((f"set autostart of network {name} to {desired.autostart}",
                                 lambda: networks.set_autostart(name, desired.autostart)))

    # ---- VMs ----
    def vms(self) -> list[Action]:
        actions = []
        for i, entry in enumerate(self.spec.vms):
            if any(d.volume and d.volume.split("/", 1)[0] in self.pending_pools for d in entry.disks):
                continue
            current = self.live.vm(entry.name)
            if entry.xml is not None or (current is not None and current.xml is not None):
                actions += filter(None, [self._xml_action(("vms", i), "domain", entry, current)])
                continue
            desired = entry.normalized()
            action = self._create_vm(i, desired) if current is None else self._update_vm(i, desired, current)
            if action:
                actions.append(action)
        return actions

    def _create_vm(self, i: int, desired: VmEntry) -> Action:
        request = desired.creation(autostart=False)  # a step of its own marks it (below)
        vms = self.host.vms
        if ("vms", i) not in self.blamed:
            try:
                checked = vms.check_create(request, self.view)
                self.view.add(checked.spec)  # later VMs of the spec see its disks and MACs
            except VirtopsError as err:
                self.refused(("vms", i), err)
        changes = _fields_set(desired, exclude={"name", "disks", "nics"} | (set() if desired.pxe else {"pxe"}))
        changes += [Change("disks", None, _disk_text(d)) for d in desired.disks]
        changes += [Change("nics", None, _nic_text(n)) for n in desired.nics]
        steps = [(f"create vm {desired.name}", lambda: vms.create(request))]
        if desired.autostart:
            steps.append((f"set autostart of vm {desired.name} to True",
                          lambda: vms.set_autostart(desired.name, True)))
        return Action("vm", desired.name, "create", changes=changes, steps=steps)

    def _update_vm(self, i: int, desired: VmEntry, current: VmEntry) -> Action | None:
        changes = _diff(current, desired, exclude={"name", "disks", "nics"})
        action = Action("vm", desired.name, "update", changes=changes)
        running = desired.name in self.live.running_vms
        settings = self._settings_steps(i, action, desired, running)
        detach, attach, replug = self._disk_changes(i, action, desired, current)
        d2, a2, r2 = self._nic_changes(i, action, desired, current)
        detach, attach, replug = detach + d2, attach + a2, replug + r2
        if not action.changes:
            return None
        action.steps = settings + detach + attach
        if running and replug:
            action.mode = "needs-restart"
            action.disruptive = True
            action.notes.append(f"running VM {desired.name} loses {', '.join(replug)} for a few seconds while each is "
                                "unplugged and plugged again with its new settings.")
        elif running and detach:
            action.notes.append(f"running VM {desired.name} loses the removed device(s) at once (hot-unplug).")
        return action

    def _settings_steps(self, i: int, action: Action, desired: VmEntry, running: bool) -> list:
        """Memory, vCPUs, boot and autostart: one Vms.update, checked against the host now. A running
        VM gets the first three at its next boot (needs-restart; virtops does not reboot it)."""
        vms, name = self.host.vms, desired.name
        changed = {c.field for c in action.changes}
        if not changed:
            return []
        memory = size_text(desired.memory) if "memory" in changed else None
        vcpus = desired.vcpus if "vcpus" in changed else None
        boot = desired.boot
        try:
            vms.check_resources(memory=memory, vcpus=vcpus)
            if "boot" in changed:
                vms.check_boot_files(boot)
        except VirtopsError as err:
            self.refused(("vms", i), err)
        autostart = desired.autostart if "autostart" in changed else None
        at_boot = [f for f in VM_BOOT_FIELDS if f in changed]
        if running and at_boot:
            action.mode = "needs-restart"
            action.notes.append(f"{', '.join(at_boot)}: takes effect at VM {name}'s next boot; virtops does not "
                                "reboot it.")
        label = ", ".join(sorted(changed))
        from virtops.ops.vm import pxe_boot_order

        boot_order = pxe_boot_order(desired.pxe) if "pxe" in changed else None
        return [(f"set {label} of vm {name}", lambda: vms.update(
            name, memory=memory, vcpus=vcpus, boot=boot, change_boot="boot" in changed, autostart=autostart,
            boot_order=boot_order))]

    def _disk_changes(self, i: int, action: Action, desired: VmEntry, current: VmEntry):
        vms, name = self.host.vms, desired.name
        old = {d.target: d for d in current.disks}
        new = {d.target: d for d in desired.disks}
        detach, attach, replug = [], [], []
        for target in sorted(old.keys() | new.keys()):
            before, after = old.get(target), new.get(target)
            if before == after:
                continue
            action.changes.append(Change(f"disks[{target}]", _disk_text(before) if before else None,
                                         _disk_text(after) if after else None))
            if before:
                detach.append((f"detach disk {target} from {name}", lambda t=target: vms.detach_disk(name, t)))
            if after:
                self._check_disk(i, desired, after)
                attach.append((f"attach {after.source_text} as {target} to {name}",
                               lambda d=after: vms.attach_disk(name, d)))
            if before and after:
                replug.append(f"disk {target}")
        return detach, attach, replug

    def _check_disk(self, i: int, desired: VmEntry, disk: DiskEntry) -> None:
        """The checks of attaching `disk` to VM i; its own disks, detached first, do not count."""
        j = desired.disks.index(disk)
        taken = {d.target for d in desired.disks if d is not disk}
        try:
            with self.view.hiding(desired.name), located("disks", j):
                self.host.vms.check_disk(desired.name, disk, taken, self.view)
        except VirtopsError as err:
            self.refused(("vms", i), err)

    def _check_nic(self, i: int, desired: VmEntry, nic: NicEntry, mac: str | None) -> None:
        j = next(k for k, n in enumerate(desired.nics) if n.mac == nic.mac and _plugged(n) == _plugged(nic))
        try:
            with self.view.hiding(desired.name), located("nics", j):
                self.host.vms.check_nic(nic.model_copy(update={"mac": mac}), self.view)
        except VirtopsError as err:
            self.refused(("vms", i), err)

    def _nic_changes(self, i: int, action: Action, desired: VmEntry, current: VmEntry):
        vms, name = self.host.vms, desired.name
        pairs = _match_nics(desired.nics, current.nics)
        detach, attach, replug = [], [], []
        for want, have in pairs:
            if want and have and _plugged(want) == _plugged(have) and want.model == have.model:
                continue
            label = (have or want).mac or "new"
            action.changes.append(Change(f"nics[{label}]", _nic_text(have) if have else None,
                                         _nic_text(want) if want else None))
            if have:
                detach.append((f"detach NIC {have.mac} from {name}", lambda m=have.mac: vms.detach_nic(name, m)))
            if want:
                mac = want.mac or (have.mac if have else None)
                self._check_nic(i, desired, want, mac)
                attach.append((f"attach a NIC on {_plugged_text(want)} to {name}",
                               lambda w=want, m=mac: vms.attach_nic(name, w.model_copy(update={"mac": m}))))
            if want and have:
                replug.append(f"NIC {have.mac}")
        return detach, attach, replug

    # ---- deletions: what the host has and the spec does not, in reverse dependency order ----
    def deletions(self) -> list[Action]:
        spec, live = self.spec, self.live
        actions = []
        wanted_vms = {v.name for v in spec.vms}
        for vm in live.spec.vms:
            if vm.name not in wanted_vms and f"vm/{vm.name}" not in live.unmanaged:
                actions.append(self._delete_vm(vm.name))
        wanted_nets = {n.name for n in spec.networks}
        networks = self.host.networks
        for net in live.spec.networks:
            if net.name not in wanted_nets:
                actions.append(Action("network", net.name, "delete", steps=[
                    (f"delete network {net.name}", lambda n=net.name: networks.delete(n))]))
        wanted_vols = {f"{p.name}/{v.name}" for p in spec.pools for v in p.volumes}
        volumes = self.host.volumes
        doomed = [((), p.name, v) for p in live.spec.pools for v in p.volumes if f"{p.name}/{v.name}" not in wanted_vols]
        for _path, pool, vol in reversed(backing_first(doomed, _item_ref, _item_backing)):  # overlays before what they stand on
            ref = f"{pool}/{vol.name}"
            actions.append(Action("volume", ref, "delete", steps=[(f"delete volume {ref}", lambda r=ref: volumes.delete(r))]))
        wanted_pools = {p.name for p in spec.pools}
        pools = self.host.pools
        for pool in live.spec.pools:
            # A pool given as XML (disk, logical, iscsi...) is never pruned: deleting it may wipe a device.
            if pool.name not in wanted_pools and pool.xml is None:
                actions.append(Action("pool", pool.name, "delete", steps=[
                    (f"delete pool {pool.name}", lambda n=pool.name: pools.delete(n))]))
        return actions

    def _delete_vm(self, name: str) -> Action:
        vms = self.host.vms
        running = name in self.live.running_vms
        action = Action("vm", name, "delete", steps=[(f"delete vm {name}", lambda: vms.delete(name, force=running))])
        if running:
            action.disruptive = True
            action.notes.append(f"VM {name} is running: it is stopped at once (like pulling the plug), then undefined.")
        return action


def restart_cost(network: str, guests: list[tuple[str, str, str]]) -> str:
    """What restarting a network costs the running guests, in one sentence."""
    if not guests:
        return f"restarts network {network} (a few seconds); no running guest has a NIC on it."
    who = ", ".join(f"{dom} (NIC {mac})" for dom, mac, _model in guests)
    return (f"restarts network {network}: running guest(s) {who} lose their link for a few seconds while the "
            "network restarts and each NIC is unplugged and plugged again, then renew their lease.")


# -- small helpers of the planner -----------------------------------------------------------------
def _xml_difference(kind: str, host_xml: str, spec_xml: str) -> tuple[str, str] | None:
    """None when libvirt formats both alike; else the first line that differs, on each side."""
    import difflib

    from virtops.spec import rawxml

    if rawxml.same(kind, host_xml, spec_xml):
        return None
    old = rawxml.normalized(kind, host_xml, like=spec_xml).splitlines()
    new = rawxml.normalized(kind, spec_xml, like=host_xml).splitlines()
    removed = [line[1:].strip() for line in difflib.ndiff(old, new) if line.startswith("- ")]
    added = [line[1:].strip() for line in difflib.ndiff(old, new) if line.startswith("+ ")]
    return (removed[0] if removed else "-"), (added[0] if added else "-")


def _diff(current, desired, exclude: set[str]) -> list[Change]:
    old, new = current.model_dump(exclude=exclude), desired.model_dump(exclude=exclude)
    return [Change(key, old.get(key), new[key]) for key in new if old.get(key) != new[key]]


def _fields_set(desired, exclude: set[str]) -> list[Change]:
    values = desired.model_dump(exclude=exclude | {"volumes"}, exclude_none=True)
    return [Change(key, None, value) for key, value in values.items() if value not in ([], "")]


def _host_text(host: tuple) -> str:
    mac, ip, name = host
    return f"{mac} {ip}" + (f" {name}" if name else "")


def _disk_text(disk: DiskEntry) -> str:
    extras = [f"{k}={v}" for k, v in (("bus", disk.bus), ("cache", disk.cache), ("serial", disk.serial),
                                      ("format", disk.format)) if v and (k != "bus" or v != "virtio")]
    extras += [flag for flag in ("readonly", "shareable") if getattr(disk, flag)]
    return f"{disk.target}: {disk.source_text}" + (f" ({', '.join(extras)})" if extras else "")


def _plugged(nic: NicEntry) -> tuple:
    """What a NIC is plugged into: (type, source, direct mode)."""
    return nic.type, nic.source, nic.mode


def _plugged_text(nic: NicEntry) -> str:
    if nic.type == "network":
        return str(nic.network)
    return f"{nic.type} {nic.source}" + (f" ({nic.mode})" if nic.mode else "")


def _nic_text(nic: NicEntry) -> str:
    return f"{nic.mac or 'new MAC'} on {_plugged_text(nic)} ({nic.model})"


def _match_nics(wanted: list[NicEntry], have: list[NicEntry]) -> list[tuple[NicEntry | None, NicEntry | None]]:
    """Pairs (wanted, live): by MAC; a NIC without a MAC in the spec takes a live NIC on the same
    network (bridge, device) with the same model that nothing else claimed (the host picked its MAC)."""
    free = list(have)
    pairs: list[tuple[NicEntry | None, NicEntry | None]] = []
    for nic in [n for n in wanted if n.mac]:
        match = next((h for h in free if h.mac == nic.mac), None)
        if match:
            free.remove(match)
        pairs.append((nic, match))
    for nic in [n for n in wanted if not n.mac]:
        match = next((h for h in free if _plugged(h) == _plugged(nic) and h.model == nic.model), None)
        if match:
            free.remove(match)
            nic = nic.model_copy(update={"mac": match.mac})
        pairs.append((nic, match))
    pairs += [(None, h) for h in free]
    return pairs


def _item_ref(item: tuple) -> str:
    """(path, pool, VolumeEntry) -> POOL/VOLUME, the name a backing refers to."""
    _path, pool, vol = item
    return f"{pool}/{vol.name}"


def _item_backing(item: tuple) -> str | None:
    return item[2].backing


# -- applying ------------------------------------------------------------------------------------
class NeedsConfirmation(VirtopsError):
    """The plan has steps that cost running guests something; the operator must say --yes."""

    def __init__(self, plan: Plan):
        self.plan = plan
        labels = ", ".join(a.label for a in plan.needs_yes)
        super().__init__(f"the plan restarts or unplugs something running ({labels}); nothing was changed; "
                         f"read the costs above and add {term('yes', True)} to go ahead.")


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    rounds: int = 0
    plan: Plan | None = None  # the first plan, as shown


def refuse_blocked(plan: Plan, yes: bool) -> None:
    if plan.impossible:
        first = plan.impossible[0]
        raise VirtopsError(f"{first.label}: {first.notes[0]} Nothing was changed.")
    if plan.needs_yes and not yes:
        raise NeedsConfirmation(plan)


def apply(host, loaded: LoadedSpec, yes: bool = False, prune: bool = False,
          progress: Callable[[str], None] | None = None,
          on_plan: Callable[[Plan], None] | None = None, locked: bool = False) -> ApplyResult:
    """Plan and run under the host's lock (so two applies never interleave, nor plan from a
    host another is changing; `locked`: the caller holds it already). on_plan sees the first plan
    before anything runs. A pool started here shows its volumes only afterwards, so plan again
    until nothing is left (three rounds)."""
    result = ApplyResult()
    with nullcontext() if locked else host_lock(host.uri, "apply", wait_s=APPLY_WAIT_S):
        for round_ in range(3):
            plan = make_plan(host, loaded, prune)
            if round_ == 0:
                result.plan = plan
                if on_plan:
                    on_plan(plan)
            if not plan.actions:
                break
            refuse_blocked(plan, yes)
            result.rounds += 1
            _run(plan, result, progress)
    return result


def _run(plan: Plan, result: ApplyResult, progress: Callable[[str], None] | None) -> None:
    for action in plan.actions:
        for label, step in action.steps:
            try:
                step()
            except VirtopsError as err:
                done = f"{len(result.done)} step(s) were done before it" if result.done else "nothing was done before it"
                raise VirtopsError(f"apply stopped at '{label}': {err.text.rstrip('.')}; {done}; "
                                   "fix the cause and run apply again to finish.") from err
            result.done.append(label)
            if progress:
                progress(label)
