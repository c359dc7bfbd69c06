"""What a fleet's overview shows of each host: its use and VM counts (the figures of `host info`)
and its problems, each one sentence with the way out."""
from __future__ import annotations

import re

import libvirt

from virtops.base.errors import libvirt_errors
from virtops.host import Host

MEMORY_PRESSURE = 0.9  # memory in use above this share of the host's is a problem


def host_status(host: Host) -> dict:
    """Use, VM counts and problems of one host (raises the core's sentence when it does not answer)."""
    from virtops.daemon.facts import info_row

    info = info_row(host)
    return {"hostname": info["hostname"], "libvirt_version": info["libvirt_version"],
            "qemu_version": info["hypervisor_version"], "cpus": info["cpus"], "cpu_percent": info["cpu_percent"],
            "memory_bytes": info["memory_bytes"], "memory_used_bytes": info["memory_used_bytes"],
            "vms": info["domains"], "vms_running": info["running_domains"], "virt_type": info["virt_type"],
            "problems": problems(host.conn, info)}


def problems(conn: libvirt.virConnect, info: dict) -> list[str]:
    """Autostart pools and networks that are not running, and memory nearly used up."""
    with libvirt_errors("reading the host's pools and networks"):
        pools = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE
                                         | libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART)
        networks = conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_INACTIVE
                                        | libvirt.VIR_CONNECT_LIST_NETWORKS_AUTOSTART)
    found = [f"pool {name} starts with the host but is not running; start it (virtops pool start {name})."
             for name in sorted((pool.name() for pool in pools), key=natural_key)]
    found += [f"network {name} starts with the host but is not running; start it (virtops net start {name})."
              for name in sorted((net.name() for net in networks), key=natural_key)]
    total, used = info["memory_bytes"], info["memory_used_bytes"]
    if total and used is not None and used > MEMORY_PRESSURE * total:
        found.append(f"memory is {used * 100 // total}% used; move or stop VMs before starting more.")
    return found


def natural_key(name: str) -> tuple:
    """n1, n2, n10: digits compare as numbers, the rest as text."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))
