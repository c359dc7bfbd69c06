"""Facts about a host: what it is (`host info`), and the remembered result of `host check`
(whether it runs guests with KVM or only with TCG; the check itself boots a guest, so it is an
operation: ops/hostcheck.py). Plain rows, no pydantic, so that `host info` starts fast; the
models of the Python and REST APIs are in facts_models.py, built from these rows."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from virtops.base.errors import libvirt_errors
from virtops.daemon.connection import on_this_machine
from virtops.xmlmodels import doc as X

if TYPE_CHECKING:
    from virtops.daemon.connection import Connection as Host  # anything with .conn and .uri



def version_string(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def cache_dir() -> Path:
    return Path(os.environ.get("VIRTOPS_CACHE", "/var/cache/virtops"))


def info_row(host: Host) -> dict:
    """The keys of facts_models.HostInfo."""
    conn = host.conn
    with libvirt_errors("reading host facts"):
        model, memory_mib, cpus, *_ = conn.getInfo()
        domains = conn.listAllDomains()
        remembered = remembered_check(host)
        return {
            "uri": host.uri, "hostname": conn.getHostname(), "hypervisor": conn.getType(),
            "libvirt_version": version_string(conn.getLibVersion()),
            "hypervisor_version": version_string(conn.getVersion()),
            "cpu_model": model, "cpus": cpus, "memory_bytes": memory_mib * 1024**2,
            "free_memory_bytes": conn.getFreeMemory(),
            "pools": len(conn.listAllStoragePools()), "networks": len(conn.listAllNetworks()),
            "domains": len(domains), "running_domains": sum(1 for d in domains if d.ID() >= 0),  # ID is local
            "virt_type": remembered["chosen"] if remembered else None,
            "virt_type_source": f"host check at {time.strftime('%Y-%m-%d %H:%M', time.localtime(remembered['checked_at']))}"
            if remembered else "not checked yet (run `virtops host check`)",
        }


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


def remembered_check(host: Host) -> dict | None:
    """What `host check` remembered for this machine (the keys of facts_models.HostCheck)."""
    try:
        found = json.loads(cache_file(host).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(found, dict) and found.get("chosen") in ("kvm", "qemu") \
        and isinstance(found.get("checked_at"), (int, float))
    return found if ok else None


def offers_kvm(host: Host) -> bool:
    try:
        host.conn.getDomainCapabilities(None, "x86_64", None, "kvm")
        return True
    except libvirt.libvirtError:
        return False
