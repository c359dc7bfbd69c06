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

from virtops.base.binding import libvirt
from virtops.base.errors import libvirt_errors
from virtops.daemon.connection import on_this_machine
from virtops.xmlmodels import read

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from virtops.daemon.connection import Connection as Host  # anything with .conn and .uri



def version_string(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def cache_dir() -> Path:
    return Path(os.environ.get("VIRTOPS_CACHE", "/var/cache/virtops"))


CPU_WINDOW_S = 0.1  # host info's CPU use is over at least this long (the time its other calls take)


def info_row(host: Host) -> dict:
    """The keys of facts_models.HostInfo."""
    conn = host.conn
    with libvirt_errors("reading host facts"):
        first = host_counters(conn)
        model, memory_mib, cpus, *_ = conn.getInfo()
        domains = conn.listAllDomains()
        remembered = remembered_check(host)
        time.sleep(max(0.0, CPU_WINDOW_S - (time.monotonic() - first["monotonic"])))
        usage = host_counters(conn)
        return {
            "uri": host.uri, "hostname": conn.getHostname(), "hypervisor": conn.getType(),
            "libvirt_version": version_string(conn.getLibVersion()),
            "hypervisor_version": version_string(conn.getVersion()),
            "cpu_model": model, "cpus": cpus, "memory_bytes": memory_mib * 1024**2,
            "free_memory_bytes": conn.getFreeMemory(),
            "cpu_percent": cpu_percent(first, usage), "memory_used_bytes": usage["memory_used_bytes"],
            "pools": len(conn.listAllStoragePools()), "networks": len(conn.listAllNetworks()),
            "domains": len(domains), "running_domains": sum(1 for d in domains if d.ID() >= 0),  # ID is local
            "virt_type": remembered["chosen"] if remembered else None,
            "virt_type_source": f"host check at {time.strftime('%Y-%m-%d %H:%M', time.localtime(remembered['checked_at']))}"
            if remembered else "not checked yet (run `virtops host check`)",
        }


def host_counters(conn: libvirt.virConnect) -> dict:
    """The host's CPU times (all CPUs, ns) and memory in use (without buffers and page cache), for
    CPU use between two readings (cpu_percent). A driver without node memory stats (the test driver)
    gives total and free memory from getInfo and getFreeMemory."""
    _model, memory_mib, cpus, *_ = conn.getInfo()
    try:
        times = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
    except libvirt.libvirtError:
        times = {}
    busy = times.get("kernel", 0) + times.get("user", 0)
    total = busy + times.get("idle", 0) + times.get("iowait", 0)
    try:
        memory = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
        in_use = (memory["total"] - memory["free"] - memory.get("buffers", 0) - memory.get("cached", 0)) * 1024
    except (libvirt.libvirtError, KeyError):
        in_use = memory_mib * 1024**2 - conn.getFreeMemory()
    memory_bytes = memory_mib * 1024**2  # as host info says it
    return {"monotonic": time.monotonic(), "cpus": cpus, "cpu_busy_ns": busy if times else None,
            "cpu_total_ns": total if times else None, "memory_bytes": memory_bytes,
            "memory_used_bytes": max(0, in_use)}


def cpu_percent(then: dict, now: dict) -> float | None:
    """The host's CPU use between two readings of host_counters, in percent of all its CPUs."""
    if now["cpu_total_ns"] is None or then["cpu_total_ns"] is None:
        return None
    total, busy = now["cpu_total_ns"] - then["cpu_total_ns"], now["cpu_busy_ns"] - then["cpu_busy_ns"]
    return round(100 * busy / total, 1) if total > 0 and busy >= 0 else None


def host_key(host: Host) -> str:
    """Identifies the machine behind the daemon: the hardware and kernel decide whether KVM works.
    A daemon on this machine (every lab host among them) is this machine, named by its machine-id;
    libvirt's host UUID is not stable enough for that where SMBIOS gives none (a new one per daemon)."""
    machine_id = Path("/etc/machine-id")
    if on_this_machine(host.uri) and machine_id.exists():
        machine = "machine-id:" + machine_id.read_text().strip()
    else:
        machine = read.parse(host.conn.getCapabilities()).findtext("host/uuid") or ""
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
