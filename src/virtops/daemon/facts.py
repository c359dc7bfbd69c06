"""Facts about a host: what it is (`host info`), and the remembered result of `host check`
(whether it runs guests with KVM or only with TCG; the check itself boots a guest, so it is an
operation: ops/hostcheck.py)."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from virtops.base.errors import libvirt_errors
from virtops.daemon.connection import on_this_machine
from virtops.xmlmodels import doc as X
from virtops.base.model import Model

if TYPE_CHECKING:
    from virtops.daemon.connection import Connection as Host  # anything with .conn and .uri



class BootResult(Model):

    virt_type: str
    usable: bool
    boot_seconds: float | None = None
    reason: str = ""


class HostCheck(Model):

    host: str
    kvm: BootResult
    tcg: BootResult
    chosen: str
    checked_at: float


class HostInfo(Model):

    uri: str
    hostname: str
    hypervisor: str
    libvirt_version: str
    hypervisor_version: str
    cpu_model: str
    cpus: int
    memory_bytes: int
    free_memory_bytes: int
    pools: int
    networks: int
    domains: int
    running_domains: int
    virt_type: str | None
    virt_type_source: str


def version_string(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def cache_dir() -> Path:
    return Path(os.environ.get("VIRTOPS_CACHE", "/var/cache/virtops"))


def read_info(host: Host) -> HostInfo:
    conn = host.conn
    with libvirt_errors("reading host facts"):
        model, memory_mib, cpus, *_ = conn.getInfo()
        domains = conn.listAllDomains()
        cached = cached_check(host)
        return HostInfo(
            uri=host.uri, hostname=conn.getHostname(), hypervisor=conn.getType(),
            libvirt_version=version_string(conn.getLibVersion()),
            hypervisor_version=version_string(conn.getVersion()),
            cpu_model=model, cpus=cpus, memory_bytes=memory_mib * 1024**2,
            free_memory_bytes=conn.getFreeMemory(),
            pools=len(conn.listAllStoragePools()), networks=len(conn.listAllNetworks()),
            domains=len(domains), running_domains=sum(1 for d in domains if d.ID() >= 0),  # ID is local
            virt_type=cached.chosen if cached else None,
            virt_type_source=f"host check at {time.strftime('%Y-%m-%d %H:%M', time.localtime(cached.checked_at))}"
            if cached else "not checked yet (run `virtops host check`)",
        )


def host_key(host: Host) -> str:
    """Identifies the machine behind the daemon: the hardware and kernel decide whether KVM works.
    A daemon on this machine (every lab host among them) is this machine, named by its machine-id;
    libvirt's host UUID is not stable enough for that where SMBIOS gives none (a new one per daemon)."""
    machine_id = Path("/etc/machine-id")
    if on_this_machine(host.uri) and machine_id.exists():
        machine = "machine-id:" + machine_id.read_text().strip()
    else:
        machine = X.parse(host.conn.getCapabilities()).findtext("host/uuid") or ""
    return hashlib.sha256(f"{machine}|{host.conn.getHostname()}".encode()).hexdigest()[:16]


def cache_file(host: Host) -> Path:
    return cache_dir() / "hosts" / f"{host_key(host)}.json"


def cached_check(host: Host) -> HostCheck | None:
    try:
        return HostCheck.model_validate_json(cache_file(host).read_text())
    except (OSError, ValueError):
        return None


def offers_kvm(host: Host) -> bool:
    try:
        host.conn.getDomainCapabilities(None, "x86_64", None, "kvm")
        return True
    except libvirt.libvirtError:
        return False
