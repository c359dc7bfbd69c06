"""Facts about a host: what it is (`host info`), and the remembered result of `host check`
(whether it runs guests with KVM or only with TCG; the check itself boots a guest, so it is an
operation: ops/hostcheck.py). Plain rows, no pydantic, so that `host info` starts fast; the
models of the Python and REST APIs are in facts_models.py, built from these rows."""
from __future__ import annotations

import os
import time

from virtops.base.binding import libvirt
from virtops.base.errors import libvirt_errors
from virtops.daemon.connection import on_this_machine
from virtops.xmlmodels import read

TYPE_CHECKING = False  # not typing's: importing typing costs a listing's start-up (docs/architecture.md)
if TYPE_CHECKING:
    from pathlib import Path

    from virtops.daemon.connection import Connection as Host  # anything with .conn and .uri

# host info reads the remembered check by plain paths (os.path) and hashes with CPython's own
# SHA-256: pathlib (with urllib.parse and ipaddress) and hashlib (with OpenSSL) would cost it 5 ms.
try:
    from _sha256 import sha256  # CPython up to 3.11
except ImportError:
    try:
        from _sha2 import sha256  # CPython 3.12 on
    except ImportError:
        from hashlib import sha256



def version_string(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def cache_dir() -> Path:
    from pathlib import Path

    return Path(_cache_dir())


def _cache_dir() -> str:
    return os.environ.get("VIRTOPS_CACHE", "/var/cache/virtops")


# Host CPU use is the share of CPU time the host spent busy between two readings of its counters:
# the figure means something only over a window long enough for the kernel's ticks (10 ms, here on
# 2 CPUs 5% each at 0.1 s). The Python and REST APIs and the console's host list give it over
# CPU_WINDOW_S; `host info` gives it only when asked (--cpu), over CPU_SAMPLE_S, as long as virsh's
# `nodecpustats --percent` takes, so that it starts as fast as virsh's `nodeinfo`.
CPU_WINDOW_S = 0.1
CPU_SAMPLE_S = 1.0


def info_row(host: Host, cpu_window_s: float | None = CPU_WINDOW_S) -> dict:
    """The keys of facts_models.HostInfo. cpu_percent is over cpu_window_s (at least: the time the
    other calls take counts), or None without a window; memory use is one reading."""
    conn = host.conn
    with libvirt_errors("reading host facts"):
        first = host_counters(conn)
        model, memory_mib, cpus, *_ = conn.getInfo()
        domains = conn.listAllDomains()
        remembered = remembered_check(host)
        usage, window = first, None
        if cpu_window_s is not None:
            time.sleep(max(0.0, cpu_window_s - (time.monotonic() - first["monotonic"])))
            usage = host_counters(conn)
            window = round(usage["monotonic"] - first["monotonic"], 3)
        return {
            "uri": host.uri, "hostname": conn.getHostname(), "hypervisor": conn.getType(),
            "libvirt_version": version_string(conn.getLibVersion()),
            "hypervisor_version": version_string(conn.getVersion()),
            "cpu_model": model, "cpus": cpus, "memory_bytes": memory_mib * 1024**2,
            "free_memory_bytes": conn.getFreeMemory(),
            "cpu_percent": cpu_percent(first, usage) if window else None, "cpu_window_s": window,
            "memory_used_bytes": usage["memory_used_bytes"],
            "pools": len(conn.listAllStoragePools()), "networks": len(conn.listAllNetworks()),
            "domains": len(domains), "running_domains": sum(1 for d in domains if d.ID() >= 0),  # ID is local
            "virt_type": remembered["chosen"] if remembered else None,
            "virt_type_source": f"host check at {time.strftime('%Y-%m-%d %H:%M', time.localtime(remembered['checked_at']))}"
            if remembered else "not checked yet",  # each face says how to check it (the CLI: `host check`)
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
    machine_id = "/etc/machine-id"
    if on_this_machine(host.uri) and os.path.exists(machine_id):
        with open(machine_id) as file:
            machine = "machine-id:" + file.read().strip()
    else:
        machine = read.parse(host.conn.getCapabilities()).findtext("host/uuid") or ""
    return sha256(f"{machine}|{host.conn.getHostname()}".encode()).hexdigest()[:16]


def cache_file(host: Host) -> Path:
    from pathlib import Path

    return Path(_cache_file(host))


def _cache_file(host: Host) -> str:
    return os.path.join(_cache_dir(), "hosts", f"{host_key(host)}.json")


def remembered_check(host: Host) -> dict | None:
    """What `host check` remembered for this machine (the keys of facts_models.HostCheck)."""
    try:
        with open(_cache_file(host)) as file:
            text = file.read()
    except OSError:
        return None
    import json  # with re: only when there is a check to read

    try:
        found = json.loads(text)
    except ValueError:
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
