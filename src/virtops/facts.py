"""Facts about a host: what it is (`host info`), and whether it runs guests with KVM or only with
TCG, found by booting the test guest (`host check`) and remembered per machine."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from .errors import libvirt_errors
from .host import version_string
from .model import Model

if TYPE_CHECKING:
    from .host import Host

KVM_TIMEOUT_S = 20  # a working KVM boots the test guest in 1-3 s
TCG_TIMEOUT_S = 120


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
    import hashlib

    from . import xml as X

    machine_id = Path("/etc/machine-id")
    if _is_local(host.uri) and machine_id.exists():
        machine = "machine-id:" + machine_id.read_text().strip()
    else:
        machine = X.parse(host.conn.getCapabilities()).findtext("host/uuid") or ""
    return hashlib.sha256(f"{machine}|{host.conn.getHostname()}".encode()).hexdigest()[:16]


def _is_local(uri: str) -> bool:
    """qemu:///system and qemu+unix:///system?socket=... name no other machine; test:/// is no machine."""
    scheme, _, rest = uri.partition("://")
    return scheme in ("qemu", "qemu+unix") and rest.startswith("/")


def _cache_file(host: Host) -> Path:
    return cache_dir() / "hosts" / f"{host_key(host)}.json"


def cached_check(host: Host) -> HostCheck | None:
    try:
        return HostCheck.model_validate_json(_cache_file(host).read_text())
    except (OSError, ValueError):
        return None


def check(host: Host, kvm_timeout_s: float = KVM_TIMEOUT_S, tcg_timeout_s: float = TCG_TIMEOUT_S) -> HostCheck:
    """Boot the test guest with KVM, then with TCG, and remember which works."""
    kvm = _try_boot(host, "kvm", kvm_timeout_s)
    tcg = _try_boot(host, "qemu", tcg_timeout_s)
    chosen = "kvm" if kvm.usable else "qemu"
    result = HostCheck(host=host.uri, kvm=kvm, tcg=tcg, chosen=chosen, checked_at=time.time())
    path = _cache_file(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=2))
    return result


def virt_type(host: Host) -> str:
    """The domain type to use for new guests: 'kvm' when KVM really boots a guest here, else 'qemu' (TCG)."""
    cached = cached_check(host)
    if cached:
        return cached.chosen
    if not offers_kvm(host):
        return "qemu"
    return check(host).chosen


def offers_kvm(host: Host) -> bool:
    try:
        host.conn.getDomainCapabilities(None, "x86_64", None, "kvm")
        return True
    except libvirt.libvirtError:
        return False


def _try_boot(host: Host, virt_type: str, timeout_s: float) -> BootResult:
    import uuid

    from .domain import DomainSpec, KernelBoot, run_transient_capturing_console
    from .lab.guest import build_guest_image, kernel_cmdline, parse_report

    if virt_type == "kvm" and not offers_kvm(host):
        return BootResult(virt_type=virt_type, usable=False, reason="libvirt offers no KVM on this host")
    image = build_guest_image()
    spec = DomainSpec(name=f"virtops-check-{virt_type}-{uuid.uuid4().hex[:8]}", virt_type=virt_type,
                      memory_mib=256, boot=KernelBoot(kernel=str(image.kernel), initrd=str(image.initrd),
                                                      cmdline=kernel_cmdline("report")))
    try:
        text, seconds, finished = run_transient_capturing_console(
            host.conn, spec, until=lambda t: "VIRTOPS-END" in t, timeout_s=timeout_s)
    except libvirt.libvirtError as err:
        return BootResult(virt_type=virt_type, usable=False, reason=err.get_error_message())
    if not finished:
        return BootResult(virt_type=virt_type, usable=False,
                          reason=f"the guest printed no report within {timeout_s:.0f} s")
    try:
        parse_report(text)
    except ValueError as err:
        return BootResult(virt_type=virt_type, usable=False, reason=str(err))
    return BootResult(virt_type=virt_type, usable=True, boot_seconds=round(seconds, 1))
