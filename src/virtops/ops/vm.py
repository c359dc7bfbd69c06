"""Virtual machines: create, run, list; their disks and NICs, attached live and persistently.

Every operation checks the whole request against the live host first (names, volumes,
networks, MACs, targets, capacity), then acts; a multi-step change undoes its own partial
work when a later step fails, and says so.
"""
from __future__ import annotations

import contextlib
import os
import random
import re
import select
import time
import uuid as uuid_module
from dataclasses import dataclass
from typing import Callable, Iterator

import libvirt
from lxml import etree
from pydantic import Field, field_validator

from virtops.daemon import lookups
from virtops.ops import vmrows
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.domain import DomainXml as DomainDocument  # DomainXml here is the live and persistent pair
from virtops.xmlmodels.volume import VolumeXml
from virtops.ops.devices import DiskRequest, NicRequest, path_disk_type
from virtops.ops.domain import DiskSpec, DomainSpec, Graphics, KernelBoot, NicSpec
from virtops.base.hostlock import locks_host, refuse_if_written
from virtops.base.paths import refuse_control_characters, refuse_control_characters_in
from virtops.base.errors import (InvalidInput, NeedsOption, NotFound, Refusals, VirtopsError, by_face, command, from_libvirt,
                                 WayOut, libvirt_errors, located, term)
from virtops.base.model import STRICT, Model, Size, changes_model
from virtops.ops.impact import Impact
from virtops.base import leftovers
from virtops.daemon import owned
from virtops.base.undo import undo_on_failure
from virtops.daemon.connection import sees_our_files
from virtops.daemon.lookups import domain as require_domain, split_volume_ref
from virtops.xmlmodels.values import (CACHE_MODES, DISK_BUSES as BUSES, DISK_FORMATS, DISK_PROTOCOLS, NAMELESS_PROTOCOLS,
                                      NIC_MODELS, NIC_TYPES, TARGET_PREFIX, VOLUME_FORMATS)
from virtops.ops.access import check_guest_files

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
TARGET_PATTERN = re.compile(r"^(vd|sd|hd)([a-z]{1,2})$")
LIBVIRT_MAC_PREFIX = "52:54:00"
DETACH_WAIT_S = 20.0  # the guest must release a hot-unplugged device; TCG guests are slow


# Pydantic builds a model's schema when it is first validated or dumped, not at import: the CLI
# starts faster, and `vm list` builds none at all.


# -- models shown to people ---------------------------------------------------------------
class DiskInfo(Model):
    target: str
    bus: str
    device: str
    type: str = "volume"  # volume, file, block, dir, network
    source: str  # POOL/VOLUME, a path, or PROTOCOL://HOST:PORT/NAME of a network disk
    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    protocol: str | None = None  # network disks: rbd, nbd, iscsi, gluster, http...
    name: str | None = None  # the image on the server (an nbd export may have none)
    hosts: list[str] = []  # its servers: HOST:PORT, or unix:SOCKET
    format: str | None = None
    readonly: bool = False
    shareable: bool = False
    serial: str | None = None
    cache: str | None = None

    @classmethod
    def of(cls, spec: DiskSpec) -> "DiskInfo":
        # model_construct: the values come from libvirt's own XML, and listings build thousands
        return cls.model_construct(target=spec.target, bus=spec.bus, device=spec.device, type=spec.disk_type,
                   source=spec.source_label, pool=spec.pool, volume=spec.volume, path=spec.path,
                   protocol=spec.protocol, name=spec.name, hosts=spec.hosts, format=spec.format,
                   readonly=spec.readonly, shareable=spec.shareable, serial=spec.serial, cache=spec.cache)


class NicInfo(Model):
    mac: str | None
    type: str  # network, bridge, direct, user, ethernet, vhostuser, ...
    network: str | None = None  # the virtual network of a NIC of type network
    source: str | None = None  # what it is plugged into: network, bridge, host device, socket
    source_mode: str | None = None  # direct: vepa, bridge, private, passthrough; vhostuser: client, server
    model: str
    interface: str | None = None  # the host-side tap device while running (vnet0)
    ip: str | None = None  # address/prefix from the network's DHCP lease


class VmInfo(Model):
    name: str
    uuid: str
    id: int | None = None  # while running
    state: str
    running: bool
    persistent: bool | None = None  # None only when the XML could not be read
    autostart: bool | None = None  # None for a transient VM, which cannot autostart
    virt_type: str
    vcpus: int
    memory_bytes: int
    disks: list[DiskInfo]
    nics: list[NicInfo]
    unreadable: str | None = None  # why the VM's XML could not be read; the other fields are then unknown


class VmSummary(Model):
    """A VM in brief, as a short listing of VMs shows it (see vmrows.summaries)."""

    name: str
    uuid: str
    id: int | None = None
    state: str
    running: bool
    persistent: bool | None = None
    autostart: bool | None = None
    vcpus: int
    memory_bytes: int
    disks: list[str]  # targets: vda, vdb, ...
    ips: list[str]  # address/prefix of each NIC with a DHCP lease
    unreadable: str | None = None
    macs: list[str] | None = None  # read only when asked (nics=True): stopped VMs' NICs need their XML
    networks: list[str] | None = None


class DetachResult(Model):
    vm: str
    device: str
    live: bool
    config: bool
    pending: bool = False  # the guest had not released the device yet when we stopped waiting


class DeleteResult(Model):
    vm: str
    destroyed: bool
    removed_volumes: list[str]


class SettingsResult(Model):
    """What `Vms.update` (and set_memory, set_vcpus, set_boot, set_autostart) changed."""

    vm: str
    changed: list[str]  # "memory 512 MiB", "vcpus 2", "boot kernel=...", "autostart on"
    running: bool
    next_boot: list[str] = []  # what waits for the VM's next boot (it is running; virtops does not reboot it)


# -- requests (what faces build from user input) --------------------------------------------
# A disk and a NIC are one model each in every face (ops/devices.py).
NEW_DISK_FORMAT = "qcow2"  # a VM's new disk unless told otherwise (every face offers this one first)


class NewDiskRequest(Model):
    """A volume made for a new VM: its pool, its size and its format (POOL:SIZE[:FORMAT])."""

    model_config = STRICT

    pool: str = Field(description="The pool the volume is made in.")
    size: int = Field(description="bytes, or with virsh's units: 10G, 512MiB")
    format: str = Field(NEW_DISK_FORMAT, description="The volume's format.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: str | int) -> int:
        from virtops.base.units import parse_size

        return parse_size(value, "size")


class VmRequest(Model):
    """A VM's definition as every face describes it: memory, vCPUs, how it boots, its disks and
    NICs. The spec's VM entries are this class; `vm create` (its options, the REST API's body and
    the Python API's Vms.create) takes CreateRequest, this with what only a creation does."""

    model_config = STRICT

    name: str
    memory: Size | None = Field(None, description="Memory (maximum and current), e.g. 512M or 2G; a new VM needs "
                                                  "it (a spec's VM given as xml has its own).")
    vcpus: int = Field(1, gt=0, description="vCPUs (maximum and current).")
    boot: KernelBoot | None = Field(None, description="Direct kernel boot.")
    pxe: bool = Field(False, description="Boot from the network (PXE) through its NICs, then from the first disk; "
                                         "not with boot.")
    autostart: bool = Field(False, description="Start with the host.")
    disks: list[DiskRequest] = []
    nics: list[NicRequest] = []

    def creation(self, **options) -> "CreateRequest":
        """This definition as a creation (a spec's VM made on the host), with `options` of it."""
        return CreateRequest(**{**{name: getattr(self, name) for name in VmRequest.model_fields}, **options})


# What `vm set` (and its REST body) changes in a VM's definition: VmRequest's own fields, each
# optional (None: as it is).
VmChanges = changes_model(VmRequest, ("memory", "vcpus", "boot", "autostart"), "VmChanges",
                          "The fields of a VM's definition to change (VmRequest's); absent ones stay.")


class CreateRequest(VmRequest):
    """A new VM: its definition (VmRequest) and what its creation does besides."""

    new_disks: list[NewDiskRequest] = Field([], description="Volumes made for the VM.")
    cdrom: str | None = Field(None, description="Boot from an ISO image: POOL/VOLUME or a path on the host.")
    import_disk: bool = Field(False, description="Boot from the first disk.")
    graphics: Graphics = Field("none", description="vnc: a screen (VGA card, VNC on the host's loopback) for "
                                                   "`vm screenshot` and the web console.")
    start: bool = Field(False, description="Start the VM once defined.")

    def boot_order(self) -> list[str]:
        """The BIOS boot order of the request: none with a kernel given (it boots that kernel)."""
        if self.boot:
            return []
        return ["cdrom", "hd"] if self.cdrom else pxe_boot_order(self.pxe)


def pxe_boot_order(pxe: bool) -> list[str]:
    """The BIOS boot order of a VM that boots from the network (PXE) first, or from its first disk."""
    return ["network", "hd"] if pxe else ["hd"]


# -- parsing the compact option syntax shared by the CLI and the spec -----------------------
_ON = {"on", "yes", "true", "1"}
_OFF = {"off", "no", "false", "0"}


def _flag(field_name: str, value: str) -> bool:
    if value.lower() in _ON:
        return True
    if value.lower() in _OFF:
        return False
    raise InvalidInput(field_name, f"{value!r} is not on or off.")


def option_keys(model: type, *leave_out: str) -> list[str]:
    """The KEY= of a request model's compact option syntax: its fields, in their order."""
    return [name for name in model.model_fields if name not in leave_out]


def _parse_option(model: type, option: str, first: dict, rest: str, *leave_out: str):
    """A request from KEY=VALUE items after the first one (whose fields `first` gives): the keys are
    the model's own fields; a flag takes on/off, a list field is given once per item (hosts=a,hosts=b)."""
    allowed = option_keys(model, *first, *leave_out)
    values: dict = dict(first)
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise InvalidInput(option, f"{item!r} is not an option here; use {', '.join(k + '=' for k in allowed)}.")
        default = model.model_fields[key].default
        if isinstance(default, bool):
            values[key] = _flag(f"{option} {key}", value)
        elif isinstance(default, list):
            values.setdefault(key, []).append(value)
        else:
            values[key] = value
    return model(**values)


def parse_disk_option(text: str, option: str = "disk") -> DiskRequest:
    """POOL/VOL (or the path of a pool's volume), path=/PATH for a disk by path, or
    protocol=P,name=N,hosts=H:PORT for a network disk; then DiskRequest's
    other fields as KEY=VALUE: bus=virtio,cache=none,readonly=on,shareable=on,serial=S,target=vdb.
    `option` is the field a refusal names (--disk of vm create, the volume of attach-disk)."""
    ref, _, rest = text.partition(",")
    if ref.startswith("path="):  # a disk by path: no network disk's fields
        return _parse_option(DiskRequest, option, {}, text, "volume", *NETWORK_DISK_FIELDS)
    if "=" in ref:  # a network disk: every part is KEY=VALUE
        return _parse_option(DiskRequest, option, {}, text, "volume", "path")
    if not ref.startswith("/"):  # a path first names a pool's volume by its path, as virsh takes it
        split_volume_ref(ref, option)
    return _parse_option(DiskRequest, option, {"volume": ref}, rest, "path", "format", *NETWORK_DISK_FIELDS)


NETWORK_DISK_FIELDS = ("protocol", "name", "hosts")
# What a VM's definition looks like, per face: the command line prints it, the web console shows it.
DUMPXML = by_face(" such as `virtops vm dumpxml` prints", " such as libvirt writes it")


def parse_new_disk_option(text: str) -> NewDiskRequest:
    """POOL:SIZE[:FORMAT]"""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise InvalidInput("new_disks", f"{text!r} is not POOL:SIZE[:FORMAT]; give one such as test:10G or test:10G:raw.")
    from virtops.base.units import parse_size

    return NewDiskRequest(pool=parts[0], size=parse_size(parts[1], "new_disks"),
                          format=parts[2] if len(parts) == 3 else NEW_DISK_FORMAT)


def parse_network_option(text: str, kind: str = "network") -> NicRequest:
    """NAME[,mac=MAC,model=virtio] of a NIC of this kind (network, bridge or direct: the field that
    NAME fills); a direct NIC takes mode= too."""
    name, _, rest = text.partition(",")
    if not name or "=" in name:
        raise InvalidInput(kind, f"{text!r} names no {kind}; give one such as {NIC_EXAMPLES[kind]}.")
    leave_out = [other for other in NIC_TYPES if other != kind] + (["mode"] if kind != "direct" else [])
    return _parse_option(NicRequest, kind, {kind: name}, rest, *leave_out)


NIC_EXAMPLES = {"network": "default or default,model=e1000", "bridge": "br0 or br0,model=e1000",
                "direct": "eth0 or eth0,mode=bridge"}


def parse_boot_option(text: str) -> KernelBoot:
    """kernel=PATH[,initrd=PATH][,cmdline=ARGS]; the command line may itself hold commas and '='."""
    parts = re.split(r",(?=(?:kernel|initrd|cmdline)=)", text)
    opts: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("kernel", "initrd", "cmdline"):
            raise InvalidInput("boot", f"{part!r} is not kernel=PATH, initrd=PATH or cmdline=ARGS.")
        opts[key] = value
    if not opts.get("kernel"):
        raise InvalidInput("boot", "kernel=PATH is missing; direct kernel boot needs at least the kernel.")
    return KernelBoot(kernel=opts["kernel"], initrd=opts.get("initrd") or None, cmdline=opts.get("cmdline", ""))


def check_memory(value: str | int, host_memory: int) -> int:
    """Memory in bytes, refused the way `vm create` refuses it (at least 16M, at most the host's)."""
    from virtops.base.units import parse_size, size_text

    if value is None:
        raise InvalidInput("memory", "is required; give it such as 512M or 2G.")
    memory = parse_size(value, "memory")
    value = value if isinstance(value, str) else size_text(value)  # as the operator wrote it: 64T
    if memory < 16 * 1024**2:
        raise InvalidInput("memory", f"{value} is too little; give at least 16M.")
    if memory > host_memory:
        raise InvalidInput("memory", f"{value} is more than the host's {host_memory // 1024**2} MiB; "
                                     "give less, e.g. 1G.")
    if memory % 1024:
        raise InvalidInput("memory", f"{value} is not a whole number of KiB.")
    return memory


def check_vcpus(vcpus: int, host_cpus: int) -> int:
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= host_cpus:
        raise InvalidInput("vcpus", f"{vcpus} is not between 1 and the host's {host_cpus} CPUs.")
    return vcpus


def check_boot(boot: KernelBoot | None) -> KernelBoot | None:
    """The kernel and initrd are files on the host, named absolutely: libvirt would take a relative
    path against a directory nobody chose."""
    if boot is not None and not (boot.kernel or "").strip():
        raise InvalidInput("boot", "kernel=PATH is missing; direct kernel boot needs at least the kernel.")
    for key in ("kernel", "initrd"):
        path = getattr(boot, key, None) if boot is not None else None
        if path is None:
            continue
        if not path.startswith("/"):
            raise InvalidInput("boot", f"{key}={path!r} is a relative path; give the absolute path of the file "
                                       "on the host, such as /var/lib/libvirt/boot/vmlinuz.")
        refuse_control_characters("boot", path)
    if boot is not None and any(ord(c) < 32 or ord(c) == 127 for c in boot.cmdline):
        raise InvalidInput("boot", f"cmdline={boot.cmdline!r} holds a control character; give one line of "
                                   "kernel arguments.")
    return boot


BOOT_DEVICES = ("hd", "cdrom", "network", "fd")  # <os><boot dev=...>: what the BIOS tries, in order


def check_boot_order(order: list[str]) -> list[str]:
    unknown = [device for device in order if device not in BOOT_DEVICES]
    if not order or unknown:
        given = f"{unknown[0]!r} is no boot device" if unknown else "is empty"
        raise InvalidInput("boot_order", f"{given}; give devices from {', '.join(BOOT_DEVICES)} in the order to try them, "
                                         "such as cdrom,hd.")
    if len(set(order)) != len(order):
        raise InvalidInput("boot_order", f"{','.join(order)} names a device twice; give each once.")
    return order


def normalize_mac(mac: str, field_name: str = "mac") -> str:
    value = mac.strip().lower().replace("-", ":")
    if not MAC_PATTERN.match(value):
        raise InvalidInput(field_name, f"{mac!r} is not a MAC address; give six hex pairs such as 52:54:00:12:34:56.")
    if int(value[:2], 16) & 1:
        raise InvalidInput(field_name, f"{mac!r} is a multicast address; a NIC needs a unicast one such as 52:54:00:12:34:56.")
    return value


# -- what the host holds: one pass over every domain -----------------------------------------
@dataclass
class DomainXml:
    name: str
    running: bool
    persistent: bool
    live: etree._Element  # the running configuration (the same as config when stopped)
    config: etree._Element  # the persistent definition (the live one for a transient domain)

    def both(self) -> list[etree._Element]:
        return [self.live] if self.live is self.config else [self.live, self.config]

    def disks(self) -> list[DiskSpec]:
        seen: dict[str, DiskSpec] = {}
        for root in self.both():
            for node in DomainDocument(root).disks.nodes():
                spec = DiskSpec.from_element(node)
                seen.setdefault(spec.target, spec)
        return list(seen.values())

    def macs(self) -> set[str]:
        return {nic.mac for root in self.both() for nic in DomainDocument(root).nics if nic.mac}


def read_domain(dom: libvirt.virDomain) -> DomainXml:
    running = bool(dom.isActive())
    persistent = bool(dom.isPersistent())
    live = X.parse(dom.XMLDesc(0))
    config = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if running and persistent else live
    return DomainXml(dom.name(), running, persistent, live, config)


def all_domains(conn: libvirt.virConnect) -> list[DomainXml]:
    result = []
    for dom in conn.listAllDomains():
        try:
            result.append(read_domain(dom))
        except libvirt.libvirtError:
            continue  # it vanished while we looked: it holds nothing any more
    return result


@dataclass
class ResolvedVolume:
    """What a disk opens on the host: a pool's volume, or a path (pool and volume empty when no pool
    holds it)."""

    pool: str
    volume: str
    path: str
    format: str
    capacity: int

    @property
    def label(self) -> str:
        return f"{self.pool}/{self.volume}" if self.pool and self.volume else self.path


def _same_volume(disk: DiskSpec, vol: ResolvedVolume) -> bool:
    if disk.pool == vol.pool and disk.volume == vol.volume:
        return True
    return bool(disk.path) and os.path.normpath(disk.path) == os.path.normpath(vol.path)


def _conflicts(existing: DiskSpec, readonly: bool, shareable: bool) -> bool:
    """Two VMs may share a volume only when both only read it, or both mark it shareable."""
    if existing.readonly and readonly:
        return False
    return not (existing.shareable and shareable)


@dataclass
class PoolRoom:
    """What a check needs of a pool to place a new disk in it."""

    name: str
    type: str
    available: int | None  # bytes free; None when not known yet (a pool a spec creates first)
    volumes: set[str]


class HostView:
    """What the checks of `vm create` and of attaching a device see of the host: the live host.
    A plan subclasses it to show the host as the spec's earlier steps will have left it, so that
    `plan` meets every refusal `apply` would (spec/plan.py)."""

    def __init__(self, vms: Vms):
        self.vms = vms

    def domains(self) -> list[DomainXml]:
        return all_domains(self.vms.conn)

    def new_pool_directory(self, name: str):
        """The directory (access.Entry) of pool NAME when it is yet to be made (by a spec's earlier
        step), for the QEMU-access check; None for a pool libvirt has (it reports its own)."""
        return None

    def vm_exists(self, name: str) -> bool:
        try:
            self.vms.conn.lookupByName(name)
            return True
        except libvirt.libvirtError:
            return False

    def volume(self, pool: str, volume: str, field_name: str) -> ResolvedVolume:
        return self.vms._resolve_volume(pool, volume, field_name)

    def pool_room(self, name: str, field_name: str) -> PoolRoom:
        pool = self.vms._require_pool(name, field_name)
        return PoolRoom(name, _pool_type(pool), pool.info()[3], set(pool.listVolumes()))

    def require_network(self, name: str, field_name: str) -> None:
        self.vms._require_network(name, field_name)

    def host_limits(self) -> tuple[int, int]:
        return self.vms.host_limits()

    def virt_type(self) -> str:
        return self.vms.host.virt_type()


@dataclass
class CheckedCreate:
    """A `vm create` request checked against a host: the domain to define and the volumes to make."""

    spec: DomainSpec
    new_volumes: list[_NewVolume]


# -- the operations ------------------------------------------------------------------------
class Vms:
    """The virtual machines (libvirt domains) of one host."""

    def __init__(self, host):
        self.host = host

    @property
    def conn(self) -> libvirt.virConnect:
        return self.host.conn

    # ---- reading ----
    def list(self, all: bool = True) -> list[VmInfo]:
        """Every VM (or the running ones) in full, from each VM's XML (see vmrows.detailed)."""
        return [_vm_model(row) for row in vmrows.detailed(self.host, all)]

    def summaries(self, all: bool = True, nics: bool = False) -> list[VmSummary]:
        """Every VM (or the running ones) in brief: stopped ones from one bulk call (see vmrows.summaries);
        with nics, each one's MACs and networks too, from every VM's XML."""
        rows = vmrows.summaries_with_nics(self.host, all) if nics else vmrows.summaries(self.host, all)
        return [VmSummary.model_construct(**row) for row in rows]

    def info(self, name: str) -> VmInfo:
        return _vm_model(vmrows.vm_info(self.host, name))

    def job(self, name: str) -> dict | None:
        """The job libvirt runs on the VM now, whoever started it (a move, a save, a dump), with its
        progress; None when it runs none (ops/migrate.job_under_way)."""
        from virtops.ops.migrate import job_under_way

        return job_under_way(require_domain(self.conn, name))

    def dumpxml(self, name: str, inactive: bool = False) -> str:
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0)

    def disks(self, name: str) -> list[DiskInfo]:
        return self.info(name).disks

    def nics(self, name: str) -> list[NicInfo]:
        return self.info(name).nics

    def addresses(self, name: str) -> list[NicInfo]:
        """The NICs of a running VM with the address each holds from its network's DHCP leases."""
        vm = self.info(name)
        if not vm.running:
            raise VirtopsError(f"vm: {name} is not running, so it holds no leases; start it"
                               f"{command(f'vm start {name}', wrap=' with {}', elsewhere='')}.")
        return vm.nics

    # ---- creating ----
    @locks_host("vm create")
    def create(self, request: CreateRequest) -> VmInfo:
        """Define a VM (and start it when asked); everything is checked before anything changes.
        A run killed midway leaves a record (base/leftovers.py): this one removes what that run made
        first (its VM, by UUID, and its new volumes), so running the same command again finishes
        the job; a VM that run had started already is the job done."""
        key = f"vm/{request.name}"
        done = self._left_by_dead_run(request)
        if done is not None:
            return done
        checked = self.check_create(request)
        own = str(uuid_module.uuid4())
        volumes = [[new.pool, new.name] for new in checked.new_volumes]
        with leftovers.recorded_undo(self.host.uri, key, {"uuid": own, "volumes": volumes}) as undo:
            # Each inverse is registered before its step and looks the object up again: a daemon
            # that restarts mid-call may have done the step without answering.
            for new in checked.new_volumes:
                undo.add(lambda n=new: self._delete_volume_if_there(n.pool, n.name), f"created volume {new.pool}/{new.name}")
                self._create_volume(new)
            undo.add(lambda: owned.undefine_own(self.conn, "domain", own), f"defined VM {request.name}")
            with libvirt_errors(f"defining VM {request.name}"):
                dom = self.conn.defineXMLFlags(X.to_string(DomainDocument(checked.spec.to_element()).update(uuid=own).node),
                                               libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            if request.autostart:
                with libvirt_errors(f"setting autostart of VM {request.name}"):
                    dom.setAutostart(1)  # undone with the definition it belongs to
            if request.start:
                undo.add(lambda: owned.stop_own(self.conn, "domain", own), f"started VM {request.name}")
                with libvirt_errors(f"starting VM {request.name}"):
                    dom.create()
        return self.info(request.name)

    def _left_by_dead_run(self, request: CreateRequest) -> VmInfo | None:
        """Clean up after a killed `vm create` of this VM: its VM and new volumes are removed, unless
        it had started the VM, which is then the job done (its info)."""
        key = f"vm/{request.name}"
        made = leftovers.left_by_dead_run(self.host.uri, key)
        if made is None:
            return None
        with libvirt_errors(f"removing VM {request.name}, left half-made by a killed run"):
            dom = owned.own(self.conn, "domain", str(made.get("uuid")))
            if dom is not None and dom.isActive() and request.start:
                leftovers.forget(self.host.uri, key)
                return self.info(request.name)
            if dom is not None:
                owned.undefine_own(self.conn, "domain", dom.UUIDString())
            for pool, name in made.get("volumes") or []:
                self._delete_volume_if_there(pool, name)
        leftovers.forget(self.host.uri, key)
        return None

    def _delete_volume_if_there(self, pool_name: str, name: str) -> bool:
        """A volume this operation made: deleted when it is there (the pool is refreshed first, so
        a volume a restarted daemon has not seen yet is found too); False when it is not."""
        try:
            pool = self.conn.storagePoolLookupByName(pool_name)
            lookups.when_pool_free(lambda: pool.refresh(0))
            vol = pool.storageVolLookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
                return False
            raise
        lookups.when_pool_free(lambda: vol.delete(0))
        return True

    def check_create(self, request: CreateRequest, view: HostView | None = None) -> CheckedCreate:
        """Every check of `create`, against the live host or the view a plan gives; changes nothing."""
        refuse_control_characters_in(request)
        plan = _CreatePlan(self, request, view or HostView(self))
        return CheckedCreate(plan.check(), plan.new_volumes)

    def check_disk(self, vm: str, request: DiskRequest, taken: set[str], view: HostView | None = None) -> DiskSpec:
        """The checks of attaching a disk to VM `vm` whose disks have the targets `taken`."""
        refuse_control_characters_in(request)
        view = view or HostView(self)
        vol = disk_source(self.conn, view, request)
        if vol is not None:
            self._check_volume_free(vol, request.readonly, request.shareable, view.domains(), vm=vm)
        disk = _disk_spec(request, vol, taken)
        if vol is not None:
            check_backing_chain(self.conn, [(disk, vol.path)], view.domains(), vm=vm)
        check_guest_files(self.host, [disk], None, "volume", view.new_pool_directory)
        return disk

    def check_nic(self, request: NicRequest, view: HostView | None = None) -> NicSpec:
        """The checks of attaching a NIC: its network exists (or its bridge or device is named as
        Linux names one), the model is known, the MAC is free."""
        refuse_control_characters_in(request)
        view = view or HostView(self)
        return _checked_nic(view, request, view.domains(), set())

    def _create_volume(self, new: "_NewVolume") -> libvirt.virStorageVol:
        vol = VolumeXml().update(name=new.name, capacity=new.size, allocation=0,  # sparse; the guest fills it
                                 format=new.format).node
        X.validate(vol, "storagevol")
        with libvirt_errors(f"creating volume {new.pool}/{new.name}"):
            pool = self.conn.storagePoolLookupByName(new.pool)
            return lookups.when_pool_free(lambda: pool.createXML(X.to_string(vol), 0))

    @locks_host("vm define")
    def define(self, xml_text: str) -> VmInfo:
        """Define (or redefine) a VM from domain XML, as `virsh define` does."""
        try:
            root = X.parse_strict(xml_text)
        except etree.XMLSyntaxError as err:
            raise InvalidInput("file", f"is not XML ({err}); give domain XML{DUMPXML}.") from err
        if root.tag != "domain" or not DomainDocument(root).name:
            raise InvalidInput("file", f"holds no <domain> with a <name>; give domain XML{DUMPXML}.")
        with libvirt_errors("defining the VM"):
            dom = self.conn.defineXMLFlags(X.to_string(root), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        return self.info(dom.name())

    # ---- life cycle ----
    def start(self, name: str) -> VmInfo:
        dom = require_domain(self.conn, name)
        if dom.isActive():
            raise VirtopsError(f"vm: {name} is already running.")
        with libvirt_errors(f"reading VM {name}"):
            config = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        check_guest_files(self.host, [DiskSpec.from_element(d) for d in config.iterfind("devices/disk")],
                          _kernel_boot(config), "vm")
        with libvirt_errors(f"starting VM {name}"):
            dom.create()
        return self.info(name)

    def shutdown(self, name: str) -> None:
        """Ask the guest to power off (ACPI); it decides when."""
        dom = self._running(name, "shut down")
        with libvirt_errors(f"shutting down VM {name}"):
            dom.shutdown()

    def reboot(self, name: str) -> None:
        dom = self._running(name, "reboot")
        with libvirt_errors(f"rebooting VM {name}"):
            dom.reboot(0)

    def destroy(self, name: str) -> None:
        """Stop at once, like pulling the plug: the definition and disks stay."""
        dom = self._running(name, "destroy")
        with libvirt_errors(f"destroying VM {name}"):
            dom.destroy()

    def suspend(self, name: str) -> None:
        dom = self._running(name, "suspend")
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            raise VirtopsError(f"vm: {name} is already suspended.")
        with libvirt_errors(f"suspending VM {name}"):
            dom.suspend()

    def resume(self, name: str) -> None:
        dom = self._running(name, "resume")
        if dom.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
            raise VirtopsError(f"vm: {name} is not suspended.")
        with libvirt_errors(f"resuming VM {name}"):
            dom.resume()

    def _running(self, name: str, doing: str) -> libvirt.virDomain:
        dom = require_domain(self.conn, name)
        if not dom.isActive():
            raise VirtopsError(f"vm: {name} is not running, so there is nothing to {doing}.")
        return dom

    def impact(self, name: str, action: str, device: str | None = None) -> Impact:
        """What destroying or deleting VM NAME, or detaching its disk or NIC `device` (a target or a
        MAC), costs before it is done, and the option the operation would then need."""
        vm = self.info(name)
        guests = [name] if vm.running else []
        if action in ("destroy", "delete"):
            cut = f"{name} stops at once, as at a power cut: what its guest has not written to its disks is lost"
            if action == "destroy":
                cost = f"{cut}; its definition and disks stay." if vm.running else f"{name} is not running; nothing to destroy."
                return Impact(action=action, subject=f"VM {name}", guests=guests, cost=cost)
            cost = f"{cut}, then it is undefined; its volumes stay." if vm.running else f"{name} is undefined; its volumes stay."
            return Impact(action=action, subject=f"VM {name}", guests=guests, cost=cost, option="force" if vm.running else None)
        if action == "detach-disk":
            disk = next((d for d in vm.disks if d.target == device), None)
            if disk is None:
                raise InvalidInput("target", f"{name} has no disk {device!r}; its disks are "
                                             f"{', '.join(d.target for d in vm.disks) or 'none'}.")
            what = f"disk {disk.target} ({disk.source})"
            lost = "; what it has not written to it is lost and programs using it fail"
        elif action == "detach-nic":
            nic = next((n for n in vm.nics if device and n.mac == normalize_mac(device)), None)
            if nic is None:
                raise InvalidInput("mac", f"{name} has no NIC with MAC {device!r}; its NICs have "
                                          f"{', '.join(n.mac or '-' for n in vm.nics) or 'none'}.")
            what = f"NIC {nic.mac} (on {nic.source or nic.type})"
            lost = ", and with it that connection"
        else:
            raise InvalidInput("action", f"{action!r} is no action on a VM with a cost; give destroy, delete, "
                                         "detach-disk or detach-nic.")
        cost = f"running guest {name} loses {what} at once{lost}." if vm.running else \
            f"{name} no longer has {what} when it next starts; the device's storage or network stays."
        return Impact(action=action, subject=f"{what} of {name}", guests=guests, cost=cost)

    @locks_host("vm delete")
    def delete(self, name: str, remove_storage: bool = False, force: bool = False) -> DeleteResult:
        """Undefine a VM; with remove_storage also delete its volumes (never one another VM uses)."""
        dom = require_domain(self.conn, name)
        running = bool(dom.isActive())
        if running and not force:
            raise NeedsOption(f"vm: {name} is running; shut it down first, or give {term('force', True)} to stop it at once "
                              "and delete it anyway.", ways=[WayOut("force", True, "stop it at once and delete it")])
        volumes = self._own_volumes(name) if remove_storage else []
        if running:
            with libvirt_errors(f"destroying VM {name}"):
                dom.destroy()
        if dom.isPersistent():
            with libvirt_errors(f"undefining VM {name}"):
                owned.undefine_domain(dom)
        removed = []
        for label, vol in volumes:
            with libvirt_errors(f"VM {name} was deleted, but deleting its volume {label}"):
                vol.delete(0)
            removed.append(label)
        return DeleteResult(vm=name, destroyed=running, removed_volumes=removed)

    def storage(self, name: str) -> list[str]:
        """POOL/VOL of each volume `delete(name, remove_storage=True)` would delete, refused as it would be."""
        require_domain(self.conn, name)
        return [label for label, _vol in self._own_volumes(name)]

    def _own_volumes(self, name: str) -> list[tuple[str, libvirt.virStorageVol]]:
        """The volumes behind the VM's disks; refused when another VM uses one too."""
        domains = all_domains(self.conn)
        mine = next(d for d in domains if d.name == name)
        refuse_stopped_pools(self.conn, mine)
        result = []
        for disk in mine.disks():
            if disk.device != "disk" or (not disk.by_volume and not disk.path):
                continue
            vol = self._volume_of(disk)
            if vol is None:
                continue  # a plain file no pool knows: not ours to delete
            resolved = ResolvedVolume(vol.storagePoolLookupByVolume().name(), vol.name(), vol.path(), "", 0)
            others = sorted(d.name for d in domains if d.name != name and any(_same_volume(x, resolved) for x in d.disks()))
            if others:
                raise VirtopsError(f"vm: volume {resolved.pool}/{resolved.volume} of {name} is also used by "
                                   f"{', '.join(others)}; delete without {term('remove_storage')} or detach it there first.")
            result.append((f"{resolved.pool}/{resolved.volume}", vol))
        return result

    def _volume_of(self, disk: DiskSpec) -> libvirt.virStorageVol | None:
        try:
            if disk.by_volume:
                return self.conn.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume)
            return self.conn.storageVolLookupByPath(disk.path)
        except libvirt.libvirtError:
            return None

    # ---- disks ----
    @locks_host("vm attach-disk")
    def attach_disk(self, name: str, ref: str | DiskRequest, target: str | None = None, bus: str = "virtio",
                    cache: str | None = None, readonly: bool = False, shareable: bool = False,
                    serial: str | None = None, live: bool | None = None, config: bool | None = None) -> DiskInfo:
        """Attach a disk (a DiskRequest, or POOL/VOLUME or a volume's path with these options); on a
        running VM live and persistently unless told otherwise."""
        request = ref if isinstance(ref, DiskRequest) else DiskRequest(
            volume=ref, target=target, bus=bus, cache=cache, readonly=readonly, shareable=shareable, serial=serial)
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            mine = read_domain(dom)
        affect_live, affect_config = _affect(mine, live, config)
        disk = self.check_disk(name, request, taken={d.target for d in mine.disks()})
        element = disk.to_element()
        validate_device(element)
        self._attach(dom, name, element, affect_live, affect_config, f"disk {disk.source_label} as {disk.target}")
        return DiskInfo.of(disk)

    @locks_host("vm detach-disk")
    def detach_disk(self, name: str, target: str, live: bool | None = None, config: bool | None = None) -> DetachResult:
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            mine = read_domain(dom)
        affect_live, affect_config = _affect(mine, live, config)
        found = {which: _find_disk(root, target) for which, root in (("live", mine.live), ("config", mine.config))}
        if found["live"] is None and found["config"] is None:
            targets = ", ".join(sorted(d.target for d in mine.disks())) or "none"
            raise InvalidInput("target", f"{name} has no disk {target!r}; its disks are {targets}.")
        return self._detach(dom, name, found, affect_live, affect_config, f"disk {target}",
                            still_there=lambda root: _find_disk(root, target) is not None)

    # ---- NICs ----
    @locks_host("vm attach-nic")
    def attach_nic(self, name: str, network: str | NicRequest, mac: str | None = None, model: str = "virtio",
                   live: bool | None = None, config: bool | None = None) -> NicInfo:
        """Attach a NIC (a NicRequest, or one on the virtual network `network`)."""
        request = network if isinstance(network, NicRequest) else NicRequest(network=network, mac=mac, model=model)
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            mine = read_domain(dom)
        affect_live, affect_config = _affect(mine, live, config)
        nic = self.check_nic(request)
        element = nic.to_element()
        validate_device(element)
        self._attach(dom, name, element, affect_live, affect_config, f"NIC {nic.mac} on {nic.type} {nic.source}")
        return NicInfo(mac=nic.mac, type=nic.type, network=nic.network, source=nic.source, source_mode=nic.mode,
                       model=nic.model)

    @locks_host("vm detach-nic")
    def detach_nic(self, name: str, mac: str, live: bool | None = None, config: bool | None = None) -> DetachResult:
        wanted = normalize_mac(mac)
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            mine = read_domain(dom)
        affect_live, affect_config = _affect(mine, live, config)
        found = {which: _find_nic(root, wanted) for which, root in (("live", mine.live), ("config", mine.config))}
        if found["live"] is None and found["config"] is None:
            macs = ", ".join(sorted(mine.macs())) or "none"
            raise InvalidInput("mac", f"{name} has no NIC with MAC {wanted}; its NICs have {macs}.")
        return self._detach(dom, name, found, affect_live, affect_config, f"NIC {wanted}",
                            still_there=lambda root: _find_nic(root, wanted) is not None)

    # ---- the two halves of a device change ----
    def _attach(self, dom: libvirt.virDomain, name: str, element: etree._Element,
                affect_live: bool, affect_config: bool, what: str) -> None:
        """Persistent half first; if the live half then fails, the persistent half is taken back."""
        xml = X.to_string(element)
        if affect_config:
            with libvirt_errors(f"attaching {what} to the definition of {name}"):
                dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        if not affect_live:
            return
        try:
            dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as err:
            undone = ""
            if affect_config:
                dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                undone = "; the persistent definition was rolled back, so nothing changed"
            raise VirtopsError(f"attaching {what} to running {name} failed: "
                               f"{from_libvirt(err).message.rstrip('.')}{undone}.") from err

    def _detach(self, dom: libvirt.virDomain, name: str, found: dict[str, etree._Element | None],
                affect_live: bool, affect_config: bool, what: str,
                still_there: Callable[[etree._Element], bool]) -> DetachResult:
        do_config = affect_config and found["config"] is not None
        do_live = affect_live and found["live"] is not None
        if not do_config and not do_live:
            half = "running VM" if affect_live else "definition"
            raise VirtopsError(f"vm: {what} is not in the {half} of {name}; nothing to detach.")
        if do_config:
            with libvirt_errors(f"detaching {what} from the definition of {name}"):
                dom.detachDeviceFlags(X.to_string(found["config"]), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        pending = False
        if do_live:
            try:
                dom.detachDeviceFlags(X.to_string(found["live"]), libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as err:
                undone = ""
                if do_config:
                    dom.attachDeviceFlags(X.to_string(found["config"]), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                    undone = "; the persistent definition was rolled back, so nothing changed"
                raise VirtopsError(f"detaching {what} from running {name} failed: "
                                   f"{from_libvirt(err).message.rstrip('.')}{undone}.") from err
            pending = not _wait_gone(dom, still_there)
        return DetachResult(vm=name, device=what, live=do_live, config=do_config, pending=pending)

    # ---- checks against the host ----
    def _resolve_volume(self, pool_name: str, vol_name: str, field_name: str) -> ResolvedVolume:
        pool = self._require_pool(pool_name, field_name)
        try:
            vol = pool.storageVolLookupByName(vol_name)
        except libvirt.libvirtError:
            pool.refresh(0)  # a file copied in by hand appears after a refresh
            try:
                vol = pool.storageVolLookupByName(vol_name)
            except libvirt.libvirtError as err:
                raise NotFound(f"{field_name}: pool {pool_name} has no volume {vol_name!r}; "
                               f"create it{command(f'vol create {pool_name} {vol_name} SIZE', wrap=' with {}', elsewhere=' first')}.",
                               field=field_name) from err
        refuse_if_written(self.host.uri, vol.path(), f"{pool_name}/{vol_name}")  # no guest gets half an upload
        declared = VolumeXml(X.parse(vol.XMLDesc(0)))
        return ResolvedVolume(pool_name, vol_name, vol.path(),
                              _driver_format(declared.format or "raw", pool_name, vol_name), declared.capacity or 0)

    def _require_pool(self, name: str, field_name: str) -> libvirt.virStoragePool:
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as err:
            raise NotFound(f"{field_name}: no storage pool named {name!r} on this host"
                           f"{command('pool list', wrap='; see {}', elsewhere='')}.",
                           field=field_name) from err
        if not pool.isActive():
            raise VirtopsError(f"{field_name}: pool {name} is not active; start it"
                               f"{command(f'pool start {name}', wrap=' with {}', elsewhere=' first')}.",
                               field=field_name)
        return pool

    def _require_network(self, name: str, field_name: str) -> libvirt.virNetwork:
        try:
            return self.conn.networkLookupByName(name)
        except libvirt.libvirtError as err:
            raise NotFound(f"{field_name}: no network named {name!r} on this host"
                           f"{command('net list', wrap='; see {}', elsewhere='')}.",
                           field=field_name) from err

    @staticmethod
    def _check_volume_free(vol: ResolvedVolume, readonly: bool, shareable: bool,
                           domains: list[DomainXml], vm: str) -> None:
        for dom in domains:
            for disk in dom.disks():
                if not _same_volume(disk, vol):
                    continue
                if dom.name == vm:
                    raise InvalidInput("volume", f"{vol.label} is already attached to {vm} as {disk.target}.")
                if _conflicts(disk, readonly, shareable):
                    raise InvalidInput("volume", f"{vol.label} is attached to {dom.name} as {disk.target}; "
                                                 "detach it there first, or attach it read-only on both, "
                                                 "or shareable on both.")

    @staticmethod
    def _checked_or_new_mac(mac: str | None, domains: list[DomainXml], field_name: str,
                            also_used: set[str] = frozenset()) -> str:
        used = {m for d in domains for m in d.macs()} | also_used
        if mac is None:
            return new_mac(used)
        value = normalize_mac(mac, field_name)
        if value in used:
            owner = next((d.name for d in domains if value in d.macs()), "another NIC of this VM")
            raise InvalidInput(field_name, f"{value} is already used by {owner}; leave the MAC out to get a free one.")
        return value

    def host_limits(self) -> tuple[int, int]:
        """(memory in bytes, CPUs) of the host."""
        info = self.conn.getInfo()
        return info[1] * 1024**2, info[2]

    # ---- settings: memory, vCPUs, direct kernel boot, autostart ----
    def set_memory(self, name: str, memory: str | int) -> SettingsResult:
        return self.update(name, memory=memory)

    def set_vcpus(self, name: str, vcpus: int) -> SettingsResult:
        return self.update(name, vcpus=vcpus)

    @locks_host("vm set-boot")
    def set_boot(self, name: str, boot: KernelBoot | None) -> SettingsResult:
        """Direct kernel boot (kernel, initrd, cmdline); None: boot from the first disk instead."""
        return self.update(name, boot=boot, change_boot=True)

    def set_autostart(self, name: str, enabled: bool = True) -> SettingsResult:
        return self.update(name, autostart=enabled)

    def is_autostart(self, name: str) -> bool:
        dom = require_domain(self.conn, name)
        with libvirt_errors(f"reading VM {name}"):
            return bool(dom.isPersistent() and dom.autostart())

    def check_boot_files(self, boot: KernelBoot | None) -> None:
        """The kernel and initrd exist and QEMU can read them at the next boot, as `vm create` checks."""
        if boot is not None:
            check_guest_files(self.host, [], boot, "boot")

    @staticmethod
    def _check_boot_order(name: str, config: etree._Element, order: list[str], kernel) -> None:
        """A BIOS order means nothing to a VM that boots a kernel directly, and libvirt takes no
        <os> order beside devices that carry their own <boot order=N>."""
        if kernel:
            raise InvalidInput("boot_order", f"VM {name} boots a kernel directly, which goes before any device; drop the "
                                             "kernel boot too (no_boot) to boot from devices in this order.")
        if config.find("devices/*/boot[@order]") is not None:
            raise InvalidInput("boot_order", f"the devices of VM {name} carry their own boot order (<boot order=N>), "
                                             "which libvirt does not combine with a VM-wide one; change theirs in its XML.")

    def check_resources(self, memory: str | int | None = None, vcpus: int | None = None) -> int | None:
        """The checks of `vm create` for memory and vCPUs against this host; memory in bytes."""
        host_memory, host_cpus = self.host_limits()
        if vcpus is not None:
            check_vcpus(vcpus, host_cpus)
        return check_memory(memory, host_memory) if memory is not None else None

    @locks_host("vm update")
    def update(self, name: str, memory: str | int | None = None, vcpus: int | None = None,
               boot: KernelBoot | None = None, change_boot: bool = False,
               autostart: bool | None = None, boot_order: list[str] | None = None) -> SettingsResult:
        """Change a VM's persistent definition: memory (maximum and current), vCPUs (maximum and
        current), direct kernel boot, the BIOS boot order, autostart. Everything is checked before anything changes;
        a later step that fails undoes the earlier ones. A running VM keeps its memory, vCPUs and
        boot until its next boot (virtops does not reboot it); autostart takes effect at once."""
        dom = require_domain(self.conn, name)
        if not dom.isPersistent():
            raise VirtopsError(f"vm: {name} is transient (not defined), so it has no definition to change; "
                               f"define it first{command('vm define', wrap=' with {}', elsewhere='')}.")
        if memory is None and vcpus is None and not change_boot and autostart is None and boot_order is None:
            raise InvalidInput("memory", "nothing to change; give the memory, vCPUs, boot, boot order or autostart.")
        size = self.check_resources(memory, vcpus)
        check_boot(boot if change_boot else None)
        if change_boot:
            self.check_boot_files(boot)
        running = bool(dom.isActive())
        with libvirt_errors(f"reading VM {name}"):
            config = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if boot_order is not None:
            self._check_boot_order(name, config, check_boot_order(boot_order), boot if change_boot else _kernel_of(config))
        if change_boot or boot_order is not None:
            X.validate(_with_boot(config, boot, boot_order, change_boot), "domain")  # refused here, before anything changes
        changed: list[str] = []
        with undo_on_failure() as undo:
            if size is not None:
                changed.append(_set_memory(dom, DomainDocument(config), size, undo))
            if vcpus is not None:
                changed.append(_set_vcpus(dom, DomainDocument(config), vcpus, undo))
            if change_boot or boot_order is not None:
                changed += self._redefine_boot(dom, boot, boot_order, change_boot, undo)
            if autostart is not None:
                changed.append(_set_autostart(dom, autostart, undo))
        waits = [c for c in changed if not c.startswith("autostart")] if running else []
        return SettingsResult(vm=name, changed=changed, running=running, next_boot=waits)

    def _redefine_boot(self, dom, boot: KernelBoot | None, boot_order: list[str] | None, change_boot: bool,
                       undo) -> list[str]:
        """Redefine from the definition as it is now (the memory and vCPUs just set included) with
        the new kernel boot and/or boot order."""
        name = dom.name()
        with libvirt_errors(f"reading VM {name}"):
            current = X.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        before = X.to_string(current)
        updated = _with_boot(current, boot, boot_order, change_boot)
        X.validate(updated, "domain")
        with libvirt_errors(f"redefining VM {name} with its new boot"):
            self.conn.defineXMLFlags(X.to_string(updated), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        undo.add(lambda xml=before: self.conn.defineXML(xml), f"redefined {name} with its new boot")
        return ([f"boot {_boot_text(boot)}"] if change_boot else []) + \
            ([f"boot order {','.join(boot_order)}"] if boot_order is not None else [])

    # ---- console ----
    def console(self, name: str, force: bool = False) -> "Console":
        dom = require_domain(self.conn, name)
        if not dom.isActive():
            raise VirtopsError(f"vm: {name} is not running; start it"
                               f"{command(f'vm start {name}', wrap=' with {}', elsewhere=' first')}.")
        return Console(self.conn, dom, force)


# -- helpers of the operations --------------------------------------------------------------
def _set_memory(dom, declared: DomainDocument, size: int, undo) -> str:
    """A VM's persistent memory, maximum and current, to SIZE bytes (the old values the undo)."""
    from virtops.base.units import format_size

    old_max, old_cur = (declared.memory or 0) // 1024, (declared.current_memory or 0) // 1024
    cfg = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    with libvirt_errors(f"setting the memory of VM {dom.name()}"):
        # The maximum first: lowering it below the current memory lowers that too.
        dom.setMemoryFlags(size // 1024, cfg | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        undo.add(lambda m=old_max, c=old_cur or old_max: _restore_memory(dom, m, c), f"set the memory of {dom.name()}")
        dom.setMemoryFlags(size // 1024, cfg)
    return f"memory {format_size(size)}"


def _set_vcpus(dom, declared: DomainDocument, vcpus: int, undo) -> str:
    """A VM's persistent vCPUs, maximum and current (the old values the undo)."""
    old_max = declared.vcpu or 1
    old_cur = declared.vcpu_current or old_max
    cfg = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    with libvirt_errors(f"setting the vCPUs of VM {dom.name()}"):
        dom.setVcpusFlags(vcpus, cfg | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
        undo.add(lambda m=old_max, c=old_cur: _restore_vcpus(dom, m, c), f"set the vCPUs of {dom.name()}")
        dom.setVcpusFlags(vcpus, cfg)
    return f"vcpus {vcpus}"


def _set_autostart(dom, autostart: bool, undo) -> str:
    with libvirt_errors(f"setting autostart of VM {dom.name()}"):
        was = bool(dom.autostart())
        dom.setAutostart(1 if autostart else 0)
    undo.add(lambda on=was: dom.setAutostart(int(on)), f"set autostart of {dom.name()}")
    return f"autostart {'on' if autostart else 'off'}"


def _restore_memory(dom: libvirt.virDomain, max_kib: int, cur_kib: int) -> None:
    cfg = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.setMemoryFlags(max_kib, cfg | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
    dom.setMemoryFlags(cur_kib, cfg)


def _restore_vcpus(dom: libvirt.virDomain, max_n: int, cur_n: int) -> None:
    cfg = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.setVcpusFlags(max_n, cfg | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
    dom.setVcpusFlags(cur_n, cfg)


def _boot_text(boot: KernelBoot | None) -> str:
    if boot is None:
        return "from the first disk"
    return ",".join(f"{key}={value}" for key, value in (("kernel", boot.kernel), ("initrd", boot.initrd),
                                                         ("cmdline", boot.cmdline)) if value)


def _with_boot(config: etree._Element, boot: KernelBoot | None, order: list[str] | None = None,
               change_boot: bool = True) -> etree._Element:
    """A copy of a domain definition whose <os> boots BOOT's kernel directly (None: from the first
    disk, <boot dev='hd'/>, unless devices carry their own boot order), or, with ORDER, from those
    devices in that order; change_boot False keeps the kernel as it is (ORDER only)."""
    import copy

    dom = DomainDocument(copy.deepcopy(config))
    if change_boot:
        for dtb in dom.node.findall("os/dtb"):  # a device tree belongs to the kernel it replaces
            dtb.getparent().remove(dtb)
        device_order = dom.node.find("devices/*/boot[@order]") is not None
        dom.update(kernel=boot.kernel if boot else None, initrd=boot.initrd if boot else None,
                   cmdline=boot.cmdline if boot else None,
                   boot_devices=[] if boot or device_order else [{"dev": "hd"}])
    if order is not None:
        dom.update(boot_devices=[{"dev": device} for device in order])
    return dom.node


def _kernel_of(config: etree._Element) -> str | None:
    return DomainDocument(config).kernel


def _vm_model(row: dict) -> VmInfo:
    # model_construct: the values come from libvirt's own XML, and listings build thousands
    return VmInfo.model_construct(**{**row, "disks": [DiskInfo.model_construct(**d) for d in row["disks"]],
                                     "nics": [NicInfo.model_construct(**n) for n in row["nics"]]})


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except libvirt.libvirtError:
        pass  # undo is best effort; the original error is what the user needs to see


def _affect(mine: DomainXml, live: bool | None, config: bool | None) -> tuple[bool, bool]:
    """Which halves to change: by default the running VM and its definition, or whichever exists."""
    if live is None and config is None:
        return mine.running, mine.persistent
    live, config = bool(live), bool(config)
    if live and not mine.running:
        raise InvalidInput("live", f"{mine.name} is not running; leave out {term('live')} to change its definition.")
    if config and not mine.persistent:
        raise InvalidInput("config", f"{mine.name} is transient (no definition); leave out {term('config')}.")
    return live, config


def _driver_format(volume_format: str, pool: str, volume: str) -> str:
    """The QEMU driver type for a volume's format: an ISO or an unformatted volume is raw."""
    if volume_format in ("iso", "none", "auto", ""):
        return "raw"
    if volume_format not in DISK_FORMATS:
        raise InvalidInput("volume", f"{pool}/{volume} has format {volume_format!r}, which QEMU cannot use as a disk; "
                                     f"give a volume of format {', '.join(DISK_FORMATS[:2])} or another disk image.")
    return volume_format


def next_target(bus: str, taken: set[str]) -> str:
    """The first free name on the bus: vda, vdb, ... vdz, vdaa ..."""
    prefix = TARGET_PREFIX[bus]
    letters = "abcdefghijklmnopqrstuvwxyz"
    for suffix in [*letters, *(a + b for a in letters for b in letters)]:
        if prefix + suffix not in taken:
            return prefix + suffix
    raise VirtopsError(f"target: every {prefix}X name is taken.", field="target")


def _check_bus_options(request: DiskRequest) -> None:
    if request.format is not None and request.format not in DISK_FORMATS:
        raise InvalidInput("format", f"{request.format!r} is not a disk image format; use one of {', '.join(DISK_FORMATS)}.")
    if request.bus not in BUSES:
        raise InvalidInput("bus", f"{request.bus!r} is not a disk bus; use one of {', '.join(BUSES)}.")
    if request.cache is not None and request.cache not in CACHE_MODES:
        raise InvalidInput("cache", f"{request.cache!r} is not a cache mode; use one of {', '.join(CACHE_MODES)}.")
    if request.serial is not None and not re.fullmatch(r"[A-Za-z0-9_ .+-]{1,20}", request.serial):
        raise InvalidInput("serial", f"{request.serial!r} is not accepted; give up to 20 letters, digits, '_', '.', '+' or '-'.")


def _checked_target(target: str, bus: str, taken: set[str]) -> str:
    match = TARGET_PATTERN.match(target)
    prefix = TARGET_PREFIX[bus]
    if not match or match.group(1) != prefix:
        raise InvalidInput("target", f"{target!r} is not a {bus} disk name; give one such as {prefix}b.")
    if target in taken:
        raise InvalidInput("target", f"{target} is already taken; the next free one is {next_target(bus, taken)}.")
    return target


def _disk_spec(request: DiskRequest, vol: ResolvedVolume | None, taken: set[str]) -> DiskSpec:
    """The disk a checked request becomes; `vol` is what a volume or path disk opens (None for a
    network disk)."""
    _check_bus_options(request)
    target = (_checked_target(request.target, request.bus, taken) if request.target
              else next_target(request.bus, taken))
    common = dict(target=target, bus=request.bus, cache=request.cache, readonly=request.readonly,
                  shareable=request.shareable, serial=request.serial)
    if request.kind == "volume":
        return DiskSpec(pool=vol.pool, volume=vol.volume, format=vol.format, **common)
    if request.kind == "path":
        return DiskSpec(path=request.path, type=path_disk_type(request.path),
                        format=request.format or "raw", **common)
    return DiskSpec(protocol=request.protocol, name=request.name, hosts=request.hosts,
                    format=request.format or "raw", **common)


def disk_source(conn: libvirt.virConnect, view: "HostView", request: DiskRequest) -> ResolvedVolume | None:
    """What a disk request opens, checked: its volume, or its path (with the pool volume there when
    a pool holds it, so that sharing is checked against that volume's disks too); None for a
    network disk, whose protocol, name and servers are checked here."""
    request.check_source()
    if request.kind == "volume" and request.volume.startswith("/"):
        pool, volume = _volume_at(conn, request.volume)
        return view.volume(pool, volume, "volume")
    if request.kind == "volume":
        pool, volume = request.pool_and_volume()
        return view.volume(pool, volume, "volume")
    if request.kind == "path":
        return _path_source(conn, request.path, request.format or "raw")
    _check_network_disk(request)
    return None


def _volume_at(conn: libvirt.virConnect, path: str) -> tuple[str, str]:
    """The pool and volume at a path (a volume given by its path, as virsh takes it: the disk is
    still attached by pool and volume, so it follows the pool)."""
    try:
        vol = conn.storageVolLookupByPath(path)
        return vol.storagePoolLookupByVolume().name(), vol.name()
    except libvirt.libvirtError:
        raise InvalidInput("volume", f"{path} is not a volume of any pool on this host; give POOL/VOLUME, "
                                     "path=PATH for a disk by path, or refresh the pool that holds it.") from None


def _path_source(conn: libvirt.virConnect, path: str, disk_format: str) -> ResolvedVolume:
    if not path.startswith("/") or os.path.normpath(path) != path:
        raise InvalidInput("path", f"{path!r} is not an absolute, normalised path; give one such as "
                                   "/var/lib/libvirt/images/disk.qcow2 or /dev/sdb.")
    try:
        vol = conn.storageVolLookupByPath(path)
        return ResolvedVolume(vol.storagePoolLookupByVolume().name(), vol.name(), path, disk_format, 0)
    except libvirt.libvirtError:
        return ResolvedVolume("", "", path, disk_format, 0)  # no pool holds it


SERVER_PATTERN = re.compile(r"^(?:unix:/\S+|[A-Za-z0-9][A-Za-z0-9.-]*(?::(\d{1,5}))?|\[[0-9A-Fa-f:.]+\](?::(\d{1,5}))?)$")


def _check_network_disk(request: DiskRequest) -> None:
    if request.protocol not in DISK_PROTOCOLS:
        raise InvalidInput("protocol", f"{request.protocol!r} is not a network disk protocol; use one of "
                                       f"{', '.join(DISK_PROTOCOLS)}.")
    if not request.name and request.protocol not in NAMELESS_PROTOCOLS:
        raise InvalidInput("name", f"a disk over {request.protocol} names its image on the server; give name "
                                   "(rbd: POOL/IMAGE).")
    for server in request.hosts:
        match = SERVER_PATTERN.match(server)
        port = match and (match.group(1) or match.group(2))
        if not match or (port and not 0 < int(port) < 65536):
            raise InvalidInput("hosts", f"{server!r} is not a server; give HOST, HOST:PORT (such as "
                                        "mon1.example.org:6789) or unix:/PATH/OF/SOCKET.")
    if not request.hosts and request.protocol not in ("rbd", "gluster"):
        raise InvalidInput("hosts", f"a disk over {request.protocol} needs its server; give hosts such as "
                                    "nbd.example.org:10809.")


INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")  # Linux: at most 15 bytes, no '/' or blank


def _checked_nic(view: "HostView", request: NicRequest, domains: list[DomainXml], also_used: set[str]) -> NicSpec:
    """A NIC request checked against the host: its source, model and MAC (a new one when none)."""
    request.check_source()
    if request.type == "network":
        view.require_network(request.network, "network")
    elif not INTERFACE_NAME.match(request.source):
        raise InvalidInput(request.type, f"{request.source!r} is not a host interface name; give up to 15 "
                                         "letters, digits, '_', '.', ':' or '-', such as br0 or eth0.")
    _check_model(request.model)
    mac = Vms._checked_or_new_mac(request.mac, domains, "mac", also_used=also_used)
    return NicSpec(**{**request.model_dump(), "mac": mac})


def _check_model(model: str) -> None:
    if model not in NIC_MODELS:
        raise InvalidInput("model", f"{model!r} is not a NIC model this hypervisor offers; use one of {', '.join(NIC_MODELS)}.")


def new_mac(used: set[str]) -> str:
    """A MAC in libvirt's 52:54:00 range that no NIC of the host has."""
    rng = random.SystemRandom()
    for _ in range(1000):
        mac = LIBVIRT_MAC_PREFIX + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
        if mac not in used:
            return mac
    raise VirtopsError(f"mac: no free MAC address found in 52:54:00:xx:xx:xx; give one with {term('mac')}.", field="mac")


def _find_disk(root: etree._Element, target: str) -> etree._Element | None:
    return next((disk.node for disk in DomainDocument(root).disks if disk.target == target), None)


def _find_nic(root: etree._Element, mac: str) -> etree._Element | None:
    return next((nic.node for nic in DomainDocument(root).nics if nic.mac == mac), None)


def _wait_gone(dom: libvirt.virDomain, still_there: Callable[[etree._Element], bool]) -> bool:
    """A live detach completes when the guest releases the device; poll the live XML until then."""
    deadline = time.monotonic() + DETACH_WAIT_S
    while True:
        try:
            if not dom.isActive() or not still_there(X.parse(dom.XMLDesc(0))):
                return True
        except libvirt.libvirtError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def validate_device(element: etree._Element) -> None:
    """Check one device against libvirt's domain schema by placing it in a minimal domain."""
    dom = DomainDocument().update(type="qemu", name="schema-check", memory=1024**2, os_type="hvm")
    dom.ensure(("devices",)).append(etree.fromstring(etree.tostring(element)))
    X.validate(dom.node, "domain")


# -- create: check everything first, then act ------------------------------------------------
@dataclass
class _NewVolume:
    pool: str
    name: str
    size: int
    format: str


class _Collector:
    """`with collect():` keeps a refusal raised inside and goes on, so a check reports them all."""

    def __init__(self, found: list[VirtopsError]):
        self.found = found

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        try:
            yield
        except Refusals as err:
            self.found.extend(err.errors)
        except VirtopsError as err:
            self.found.append(err)


class _CreatePlan:
    """The checks of `vm create`, turning a request into a DomainSpec and volumes to create."""

    def __init__(self, vms: Vms, request: CreateRequest, view: HostView):
        self.vms = vms
        self.request = request
        self.view = view
        self.conn = vms.conn
        self.new_volumes: list[_NewVolume] = []
        self.disks_so_far: list[DiskSpec] = []

    def check(self) -> DomainSpec:
        """Every check of the request; all refusals at once (Refusals), or the one there is."""
        req = self.request
        found: list[VirtopsError] = []
        collect = _Collector(found)
        with collect():
            self._check_name()
        memory = 0
        with collect():
            memory = self._check_resources()
        # Several ways to boot is the one mistake; what each way would need is then beside the point.
        if sum(bool(x) for x in (req.boot, req.cdrom, req.import_disk, req.pxe)) > 1:
            found.append(InvalidInput("boot", "give one way to boot: a kernel (boot), a CD-ROM (cdrom), the first "
                                              "disk (import) or the network (pxe), not several."))
        elif req.import_disk and not req.disks:
            found.append(InvalidInput("import_disk", "boots from the first disk, so the VM needs one; give an existing "
                                                     "volume as its disk."))
        elif req.pxe and not req.nics:
            found.append(InvalidInput("pxe", "boots from the network, so the VM needs a NIC; add one on a network "
                                             "or a bridge."))
        with collect():
            check_boot(req.boot)
        domains = self.view.domains()
        taken: set[str] = set()
        disks = []
        for j, disk in enumerate(req.disks):
            with collect(), located("disks", j):
                disks.append(self._disk(disk, domains, taken))
        for j, new in enumerate(req.new_disks):
            with collect(), located("new_disks", j):
                disks.append(self._new_disk(new, j, taken))
        if req.cdrom:
            with collect():
                disks.append(self._cdrom(req.cdrom, taken))
        nics = []
        with collect():
            nics = self._nics(domains)
        if found:
            raise found[0] if len(found) == 1 else Refusals(found)
        spec = DomainSpec(name=req.name, memory_kib=memory // 1024, vcpus=req.vcpus,
                          virt_type=self.view.virt_type(), boot=req.boot, boot_devices=req.boot_order(),
                          disks=disks, nics=nics, graphics=req.graphics)
        spec.to_element()  # validates against domain.rng before anything changes
        check_backing_chain(self.conn, self._attached_paths(), domains, vm=req.name)
        check_guest_files(self.vms.host, disks, req.boot, "disk", self.view.new_pool_directory)
        return spec

    def _attached_paths(self) -> list[tuple[DiskSpec, str]]:
        """The existing volumes this VM gets, with their paths (new disks have no backing file)."""
        fresh = {(v.pool, v.name) for v in self.new_volumes}
        found = []
        for disk in self.disks_so_far:
            if disk.path:
                found.append((disk, disk.path))
            elif disk.by_volume and (disk.pool, disk.volume) not in fresh:
                found.append((disk, self.view.volume(disk.pool, disk.volume, "disk").path))
        return found

    def _check_name(self) -> None:
        name = self.request.name
        if not NAME_PATTERN.match(name):
            raise InvalidInput("name", f"{name!r} is not accepted; use up to 64 letters, digits, '_', '.', '+' or '-', "
                                       "starting with a letter or digit (e.g. web1).")
        if self.view.vm_exists(name):
            raise InvalidInput("name", f"a VM named {name} already exists; choose another name or delete it first.")

    def _check_resources(self) -> int:
        host_memory, host_cpus = self.view.host_limits()
        memory = check_memory(self.request.memory, host_memory)
        if not 1 <= self.request.vcpus <= host_cpus:
            raise InvalidInput("vcpus", f"{self.request.vcpus} is not between 1 and the host's {host_cpus} CPUs.")
        return memory

    def _disk(self, request: DiskRequest, domains: list[DomainXml], taken: set[str]) -> DiskSpec:
        vol = disk_source(self.conn, self.view, request)
        if vol is not None:
            Vms._check_volume_free(vol, request.readonly, request.shareable, domains, vm=self.request.name)
            if any(_same_volume(d, vol) for d in self.disks_so_far):
                raise InvalidInput("disk", f"{vol.label} is given twice.")
        spec = _disk_spec(request, vol, taken)
        taken.add(spec.target)
        self.disks_so_far.append(spec)
        return spec

    def _new_disk(self, request: NewDiskRequest, index: int, taken: set[str]) -> DiskSpec:
        room = self.view.pool_room(request.pool, "pool")
        if request.format not in VOLUME_FORMATS:
            raise InvalidInput("format", f"{request.format!r} is not offered for new disks; use raw or qcow2.")
        if request.size <= 0:
            raise InvalidInput("size", "must be more than 0; give a size such as 10G.")
        # Sparse or not, a disk the pool could never hold fills it up later, inside a running guest.
        reserved = sum(v.size for v in self.new_volumes if v.pool == request.pool)
        if room.available is not None and request.size + reserved > room.available:
            raise InvalidInput("size", f"{request.size} bytes do not fit in pool {request.pool}, "
                                       f"which has {room.available} bytes free; give a smaller size.")
        target = next_target("virtio", taken)
        taken.add(target)
        suffix = "." + request.format if room.type in ("dir", "fs", "netfs") else ""
        name = f"{self.request.name}-{target}{suffix}"
        if name in room.volumes:
            raise InvalidInput("pool", f"pool {request.pool} already has a volume {name}; "
                                       f"attach it with {term('disks')} or delete it first.")
        self.new_volumes.append(_NewVolume(request.pool, name, request.size, request.format))
        return DiskSpec(target=target, pool=request.pool, volume=name, format=request.format)

    def _cdrom(self, ref: str, taken: set[str]) -> DiskSpec:
        target = next_target("sata", taken)
        taken.add(target)
        if not ref.startswith("/"):
            pool, volume = split_volume_ref(ref, "cdrom")
            vol = self.vms._resolve_volume(pool, volume, "cdrom")
            return DiskSpec(target=target, pool=pool, volume=volume, format="raw", bus="sata", device="cdrom")
        try:
            vol = self.conn.storageVolLookupByPath(ref)
            return DiskSpec(target=target, pool=vol.storagePoolLookupByVolume().name(), volume=vol.name(),
                            format="raw", bus="sata", device="cdrom")
        except libvirt.libvirtError:
            pass
        if sees_our_files(self.vms.host.uri) and os.path.isfile(ref):
            return DiskSpec(target=target, path=ref, format="raw", bus="sata", device="cdrom")
        raise InvalidInput("cdrom", f"{ref} is neither a volume of a pool nor a file on the host; "
                                    "give POOL/VOLUME or the path of an ISO image.")

    def _nics(self, domains: list[DomainXml]) -> list[NicSpec]:
        mine: set[str] = set()  # two NICs of one request must differ too
        nics = []
        for j, request in enumerate(self.request.nics):
            with located("nics", j):
                nic = _checked_nic(self.view, request, domains, also_used=mine)
            mine.add(nic.mac)
            nics.append(nic)
        return nics


def _pool_type(pool: libvirt.virStoragePool) -> str:
    return X.parse(pool.XMLDesc(0)).get("type") or ""


# -- the serial console ----------------------------------------------------------------------
ESCAPE = b"\x1d"  # Ctrl-]


class Console:
    """The serial console of a running VM over a libvirt stream (works over remote URIs too)."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain, force: bool = False):
        self.stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        with libvirt_errors(f"opening the console of {dom.name()}"):
            dom.openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0)
        self.closed = False
        self.buffer = b""

    def read(self) -> bytes:
        """What the guest printed since the last read (b'' when nothing), also kept in .buffer for
        wait_for; sets .closed at the end."""
        got = self._receive()
        self.buffer += got
        return got

    def _receive(self) -> bytes:
        chunks = []
        while not self.closed:
            try:
                data = self.stream.recv(65536)
            except libvirt.libvirtError:
                self.closed = True
                break
            if data == -2:
                break
            if not data:
                self.closed = True
                break
            chunks.append(data)
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        while data and not self.closed:
            sent = self.stream.send(data)
            if sent == -2:
                time.sleep(0.01)
                continue
            data = data[sent:]

    def watch(self, on_output: Callable[[bytes], None]) -> None:
        """Call on_output with what the guest prints as it prints it, and with b'' once at the end,
        from libvirt's event loop (the connection must run it: Host's default). No polling."""
        def readable(_stream, events: int, _opaque) -> None:
            data = self._receive()  # not kept: a console watched for days would fill memory
            if data:
                on_output(data)
            if self.closed or events & (libvirt.VIR_STREAM_EVENT_HANGUP | libvirt.VIR_STREAM_EVENT_ERROR):
                self.closed = True
                _quietly(self.stream.eventRemoveCallback)
                on_output(b"")

        wanted = libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_HANGUP | libvirt.VIR_STREAM_EVENT_ERROR
        with libvirt_errors("watching the console"):
            self.stream.eventAddCallback(wanted, readable, None)

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float, since: int = 0) -> str:
        """Read until predicate(text printed after offset `since`) holds; returns that text."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.read()
            text = self.buffer[since:].decode(errors="replace")
            if predicate(text) or self.closed or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            _quietly(self.stream.eventRemoveCallback)
            try:
                self.stream.finish()
            except libvirt.libvirtError:
                _quietly(self.stream.abort)


def pump_console(console: Console, in_fd: int, out_fd: int, escape: bytes = ESCAPE) -> str:
    """Copy keystrokes to the console and its output to out_fd until the escape key or the end.
    Returns why it stopped: 'escape' or 'closed'."""
    while not console.closed:
        readable, _, _ = select.select([in_fd], [], [], 0.05)
        if readable:
            data = os.read(in_fd, 1024)
            if not data:
                return "closed"
            if escape in data:
                console.write(data.split(escape, 1)[0])
                return "escape"
            console.write(data)
        out = console.read()
        if out:
            os.write(out_fd, out)
    return "closed"


def _kernel_boot(config: etree._Element) -> KernelBoot | None:
    """The direct kernel boot of a domain definition, for the QEMU-access check at start."""
    kernel = config.findtext("os/kernel")
    return KernelBoot(kernel=kernel, initrd=config.findtext("os/initrd")) if kernel else None


# -- qcow2 chains: a backing file written while an overlay of it is in use corrupts the overlay ----
def backing_map(conn: libvirt.virConnect) -> dict[str, str]:
    """path -> backing path of every volume with a backing file, in every running pool (the
    volumes' XML fetched concurrently, as `vol list` does)."""
    from concurrent.futures import ThreadPoolExecutor

    from virtops.ops.rows import LIST_WORKERS, volume_xml_or_none

    vols = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        try:
            vols += pool.listAllVolumes(0)
        except libvirt.libvirtError:
            continue  # stopped while we looked
    with ThreadPoolExecutor(max_workers=LIST_WORKERS) as workers:
        roots = [root for root in workers.map(volume_xml_or_none, vols) if root is not None]
    return {os.path.normpath(root.findtext("target/path")): os.path.normpath(root.findtext("backingStore/path"))
            for root in roots if root.findtext("backingStore/path") and root.findtext("target/path")}


def _paths_in_use(conn: libvirt.virConnect, domains: list[DomainXml]) -> list[tuple[str, DiskSpec, str]]:
    """(domain, disk, path) of every disk of every domain whose path can be told."""
    found = []
    for dom in domains:
        for disk in dom.disks():
            path = disk.path
            if disk.by_volume:
                try:
                    path = conn.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume).path()
                except libvirt.libvirtError:
                    path = None
            if path:
                found.append((dom.name, disk, os.path.normpath(path)))
    return found


def check_backing_chain(conn: libvirt.virConnect, new: list[tuple[DiskSpec, str]], domains: list[DomainXml],
                        vm: str) -> None:
    """Refuse attaching a volume read-write while a qcow2 overlay built on it is attached to a VM
    (the overlay's view changes under it), and attaching an overlay while one of its backing files
    is attached read-write somewhere. Nothing is read when no volume has a backing file."""
    chains = backing_map(conn)
    if not chains:
        return
    attached = _paths_in_use(conn, domains)
    for disk, path in new:
        path = os.path.normpath(path)
        below = _backing_files(path, chains)
        for owner, other, other_path in attached:
            if not disk.readonly and path in _backing_files(other_path, chains):
                raise InvalidInput("volume", f"{disk.source_label} is the backing file of {other.source_label}, "
                                             f"attached to {owner} as {other.target}; writing to it would corrupt "
                                             "that overlay, so attach it read-only (readonly=on) or detach the "
                                             "overlay first.")
            if other_path in below and not other.readonly:
                raise InvalidInput("volume", f"{disk.source_label} is an overlay of {other.source_label}, which is "
                                             f"attached read-write to {owner} as {other.target}; what that VM "
                                             "writes would corrupt the overlay, so detach it there first or "
                                             "attach it read-only there.")


def _backing_files(path: str, chains: dict[str, str]) -> list[str]:
    """The backing chain below PATH, nearest first (a cycle ends it)."""
    found: list[str] = []
    while path in chains and chains[path] not in found and chains[path] != path:
        path = chains[path]
        found.append(path)
    return found


# -- vm delete with remove_storage: a volume in a stopped pool cannot be removed -----------------
def refuse_stopped_pools(conn: libvirt.virConnect, mine: DomainXml) -> None:
    """Refuse, before anything changes, to delete a VM with its storage while a disk of it lies in
    a stopped pool: libvirt cannot see, so cannot remove, the volumes of a stopped pool."""
    stopped = {}
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE):
        try:
            stopped[pool.name()] = X.parse(pool.XMLDesc(0)).findtext("target/path")
        except libvirt.libvirtError:
            continue
    for disk in mine.disks():
        if disk.device != "disk":
            continue
        pool = disk.pool if disk.by_volume and disk.pool in stopped else _pool_holding(disk.path, stopped)
        if pool:
            start_it = command(f"pool start {pool}", wrap=" ({})", elsewhere="")
            raise NeedsOption(f"vm: disk {disk.target} of {mine.name} ({disk.source_label}) is in pool {pool}, which "
                              f"is not running, so its volume cannot be removed; start the pool first{start_it}, "
                              f"or delete the VM without {term('remove_storage')}.",
                              ways=[WayOut("remove_storage", False, "delete the VM but keep its volumes")])


def _pool_holding(path: str | None, pools: dict[str, str | None]) -> str | None:
    if not path:
        return None
    for name, target in pools.items():
        if target and os.path.normpath(path).startswith(os.path.normpath(target) + "/"):
            return name
    return None
