"""Domains (virtual machines): a typed model that becomes libvirt domain XML, and console capture."""
from __future__ import annotations

import time
from typing import Callable, Literal

import libvirt
from lxml import etree
from pydantic import Field

from virtops.xmlmodels import doc as X
from virtops.base.model import STRICT, Model
from virtops.ops.devices import NicRequest
from virtops.ops.vmrows import disk_fields, disk_source_label, nic_fields
from virtops.xmlmodels.devices import DiskXml, NicXml
from virtops.xmlmodels.domain import DomainXml
from virtops.xmlmodels.values import NIC_TYPES, CacheMode, DiskBus, DiskFormat


# Schemas are built when a model is first validated or dumped, not at import: light CLI start-up.


class KernelBoot(Model):
    """Direct kernel boot (how the test guest starts without any disk image): the one model of it
    in every face (a new VM's boot and a VM's changed one: the command line's option, the REST
    API's boot, the spec's boot entries)."""

    model_config = STRICT

    kernel: str = Field(description="The kernel image, a path on the host.")
    initrd: str | None = Field(None, description="The initramfs, a path on the host.")
    cmdline: str = Field("", description="The kernel's command line.")


class DiskSpec(Model):
    """A disk backed by a pool's volume (<disk type='volume'>, so it follows the pool), a path on
    the host (a file, a block device), or an image on a server (a network disk: protocol, name,
    hosts as HOST:PORT or unix:SOCKET)."""

    target: str
    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    type: str | None = None  # a disk by path: block or dir when it is not a file (the rest follows from the source)
    protocol: str | None = None
    name: str | None = None
    hosts: list[str] = []
    format: DiskFormat = "raw"
    bus: DiskBus = "virtio"
    device: Literal["disk", "cdrom"] = "disk"
    cache: CacheMode | None = None
    readonly: bool = False
    shareable: bool = False
    serial: str | None = None

    @property
    def by_volume(self) -> bool:
        return self.pool is not None and self.volume is not None

    @property
    def source_label(self) -> str:
        """POOL/VOLUME for volume disks, else the path (or '-' for an empty CD-ROM drive)."""
        return disk_source_label(self.model_dump(include={"pool", "volume", "protocol", "hosts", "name", "path"}))

    @property
    def disk_type(self) -> str:
        """The <disk type=...> this disk is written with."""
        if self.by_volume:
            return "volume"
        if self.protocol:
            return "network"
        return self.type if self.type in ("file", "block", "dir") else "file"

    def to_element(self) -> etree._Element:
        by_volume, kind = self.by_volume, self.disk_type
        return DiskXml().update(
            type=kind, device=self.device, driver_name="qemu", format=self.format,
            cache=self.cache, pool=self.pool if by_volume else None, volume=self.volume if by_volume else None,
            path=self.path if kind in ("file", "block", "dir") else None,
            protocol=self.protocol if kind == "network" else None, source_name=self.name if kind == "network" else None,
            hosts=[server_of(text) for text in self.hosts] if kind == "network" else [],
            target=self.target, bus=self.bus,
            readonly=self.readonly or self.device == "cdrom",  # a CD-ROM is read-only by nature
            shareable=self.shareable, serial=self.serial or None).node

    @classmethod
    def from_element(cls, disk: etree._Element) -> "DiskSpec":
        """The model of a <disk> from any domain XML (ours, virsh's, virt-manager's)."""
        fields = disk_fields(disk)
        kind = fields["type"] if fields["type"] in ("block", "dir") else None
        return cls.model_construct(**{**fields, "type": kind, "format": fields["format"] or "raw"})


def server_of(text: str) -> dict:
    """A network disk's server as DiskHostXml's fields: HOST:PORT, HOST, or unix:SOCKET."""
    if text.startswith("unix:"):
        return {"transport": "unix", "socket": text.removeprefix("unix:") or None}
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return {"name": name.strip("[]"), "port": int(port)}
    return {"name": text}


class NicSpec(NicRequest):
    """A NIC as written into a domain: a request the core checked (its MAC chosen)."""

    def to_element(self) -> etree._Element:
        nic_type = self.type or "network"
        return NicXml().update(type=nic_type, mac=self.mac, source=self.source, source_mode=self.mode,
                               model=self.model).node

    @classmethod
    def from_element(cls, nic: etree._Element) -> "NicSpec":
        """The model of an <interface> (see nic_fields); a NIC of a type virtops does not make
        (user, ethernet, vhostuser...) names no source."""
        fields = nic_fields(nic)
        source = {fields["type"]: fields["source"]} if fields["type"] in NIC_TYPES else {}
        return cls.model_construct(**source, mode=fields["source_mode"] if fields["type"] == "direct" else None,
                                   mac=fields["mac"], model=fields["model"])


# What every domain virtops defines has besides its fields: ACPI (so that poweroff in the guest
# really stops the domain), libvirt's usual lifecycle actions, a serial console, no balloon.
NEW_DOMAIN = """<domain><features><acpi/></features><on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>
<on_crash>destroy</on_crash><devices><serial type='pty'><target port='0'/></serial>
<console type='pty'><target type='serial' port='0'/></console><memballoon model='none'/></devices></domain>"""


# A screen: QEMU's VNC server on the host's loopback only (the web console reaches it through
# libvirt's openGraphicsFD, or a tunnel over the host's connection: no port beyond the host), and a
# VGA card, whose text mode shows the guest's console.
Graphics = Literal["none", "vnc"]
VNC_ON_LOOPBACK = {"type": "vnc", "port": -1, "autoport": True, "listen_type": "address", "listen_address": "127.0.0.1"}


class DomainSpec(Model):

    name: str
    memory_mib: int = Field(256, gt=0)
    memory_kib: int | None = Field(None, gt=0)  # finer than MiB when given; wins over memory_mib
    vcpus: int = Field(1, gt=0)
    virt_type: Literal["kvm", "qemu"] = "qemu"
    boot: KernelBoot | None = None
    boot_devices: list[Literal["hd", "cdrom", "network", "fd"]] = []  # BIOS boot order when no kernel is given
    disks: list[DiskSpec] = []
    nics: list[NicSpec] = []
    graphics: Graphics = "none"

    def to_element(self) -> etree._Element:
        dom = DomainXml(X.parse(NEW_DOMAIN))
        boot = self.boot
        dom.update(type=self.virt_type, name=self.name,
                   memory=(self.memory_kib or self.memory_mib * 1024) * 1024, vcpu=self.vcpus, os_type="hvm",
                   arch="x86_64", kernel=boot.kernel if boot else None, initrd=boot.initrd if boot else None,
                   cmdline=boot.cmdline if boot else None,
                   boot_devices=[] if boot else [{"dev": device} for device in self.boot_devices])
        for disk in self.disks:
            dom.disks.add(DiskXml(disk.to_element()).values())
        for nic in self.nics:
            dom.nics.add(NicXml(nic.to_element()).values())
        if self.graphics == "vnc":
            dom.graphics = [VNC_ON_LOOPBACK]
            dom.videos = [{"model": "vga"}]
        X.validate(dom.node, "domain")
        return dom.node

    def to_xml(self) -> str:
        return X.to_string(self.to_element())


def run_transient_capturing_console(conn: libvirt.virConnect, spec: DomainSpec, until: Callable[[str], bool],
                                    timeout_s: float) -> tuple[str, float, bool]:
    """Start a transient domain paused, attach to its serial console, resume it, and collect the
    console text until `until(text)` holds, the domain stops, or the timeout passes.
    Returns (text, seconds since resume, finished). The domain is destroyed if still running."""
    dom = conn.createXML(spec.to_xml(), libvirt.VIR_DOMAIN_START_PAUSED)
    try:
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        started = time.monotonic()
        dom.resume()
        text, finished = _read_console(dom, stream, until, started + timeout_s)
        return text, time.monotonic() - started, finished
    finally:
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError:
            pass  # it stopped on its own in the meantime


def _read_console(dom: libvirt.virDomain, stream: libvirt.virStream, until: Callable[[str], bool],
                  deadline: float) -> tuple[str, bool]:
    chunks: list[bytes] = []
    while time.monotonic() < deadline:
        try:
            data = stream.recv(65536)
        except libvirt.libvirtError:
            break  # the console closed: the domain is gone
        if data == -2:  # nothing yet
            if not _is_active(dom):
                break
            time.sleep(0.05)
            continue
        if not data:
            break
        chunks.append(data)
        if until(b"".join(chunks).decode(errors="replace")):
            return b"".join(chunks).decode(errors="replace"), True
    text = b"".join(chunks).decode(errors="replace")
    return text, until(text)


def _is_active(dom: libvirt.virDomain) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return False
