"""Usage figures of a host and its VMs, from two samples of libvirt's counters.

A sample is one bulk call for every VM (`getAllDomainStats`, or `domainListGetStats` for VMs
named by the caller) plus the host's CPU and memory counters: never a call per domain per
counter, so that a host with thousands of VMs is sampled in one round trip. Figures are the
differences of two samples divided by the time between them:

- cpu_percent: the VM's CPU time over the interval, as a share of its vCPUs (100 = every
  vCPU busy all the time); the host's, of all its CPUs.
- memory: what the guest was given (balloon current), what it uses by its own account
  (available - unused, where its balloon driver reports them; else None), and the resident memory
  of its QEMU process on the host (rss: the guest memory it touched plus QEMU's own).
- disk: bytes and requests (IOPS) read and written per second, over all its disks.
- network: bytes received and sent per second, over all its NICs (as the guest sees them).

Plain dicts and numbers, no pydantic: `vm stats`, `top` and the history sampler of `serve`
(web/history.py) share these. A counter that went backwards (the VM restarted in between)
gives no figure (None) rather than a wrong one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

import libvirt

from virtops.base.errors import libvirt_errors
from virtops.daemon.facts import cpu_percent, host_counters
from virtops.daemon.lookups import domain as require_domain
from virtops.ops.vmrows import STATE_NAMES

if TYPE_CHECKING:
    from virtops.host import Host

SAMPLED = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
           | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)
# The counters summed over a VM's devices: (our name, libvirt's prefix, libvirt's suffix).
DEVICE_COUNTERS = (
    ("disk_read_bytes", "block", "rd.bytes"), ("disk_write_bytes", "block", "wr.bytes"),
    ("disk_read_reqs", "block", "rd.reqs"), ("disk_write_reqs", "block", "wr.reqs"),
    ("net_rx_bytes", "net", "rx.bytes"), ("net_tx_bytes", "net", "tx.bytes"),
)
# Per-second figures from those counters: (figure, counter).
RATES = (
    ("disk_read_bytes_per_s", "disk_read_bytes"), ("disk_write_bytes_per_s", "disk_write_bytes"),
    ("disk_read_iops", "disk_read_reqs"), ("disk_write_iops", "disk_write_reqs"),
    ("net_rx_bytes_per_s", "net_rx_bytes"), ("net_tx_bytes_per_s", "net_tx_bytes"),
)
COUNTERS = ("cpu_time_ns", *(name for name, _prefix, _suffix in DEVICE_COUNTERS))


@dataclass
class Sample:
    """The counters of a host and of its VMs (by UUID) at one moment."""
    monotonic: float
    time: float
    host: dict
    vms: dict[str, dict] = field(default_factory=dict)


def take(host: Host, names: Iterable[str] | None = None, all: bool = False) -> Sample:
    """One sample: the VMs named (each must exist), else the running ones (every one with `all`)."""
    conn = host.conn
    with libvirt_errors("reading usage counters"):
        if names is not None:
            doms = [require_domain(conn, name) for name in dict.fromkeys(names)]
            stats = conn.domainListGetStats(doms, SAMPLED) if doms else []
        else:
            flags = 0 if all else libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
            stats = conn.getAllDomainStats(SAMPLED, flags)
        vms = {dom.UUIDString(): vm_counters(dom.name(), values) for dom, values in stats}
        return Sample(time.monotonic(), time.time(), host_counters(conn), vms)


def vm_counters(name: str, values: dict) -> dict:
    """The counters of one VM from libvirt's stats record (state.*, cpu.*, balloon.*, ...)."""
    counters = {"name": name, "state": STATE_NAMES.get(values.get("state.state"), "unknown"),
                "vcpus": values.get("vcpu.current") or values.get("vcpu.maximum") or 0,
                "cpu_time_ns": values.get("cpu.time"),
                "memory_bytes": _kib(values.get("balloon.current")), **_memory_used(values)}
    for counter, prefix, suffix in DEVICE_COUNTERS:
        count = values.get(f"{prefix}.count", 0)
        parts = [values.get(f"{prefix}.{i}.{suffix}") for i in range(count)]
        counters[counter] = sum(p for p in parts if p is not None) if count else 0
    return counters


def _memory_used(values: dict) -> dict:
    """What the guest says it uses (only a guest with a balloon driver that reports says so), and
    what its QEMU process holds on the host (guest memory it touched plus QEMU's own)."""
    available, unused = values.get("balloon.available"), values.get("balloon.unused")
    used = available - unused if available is not None and unused is not None else None
    return {"memory_used_bytes": _kib(used), "memory_rss_bytes": _kib(values.get("balloon.rss"))}


def _kib(value: int | None) -> int | None:
    return None if value is None else value * 1024


# -- figures from two samples ------------------------------------------------------------------
def host_figures(before: Sample, after: Sample) -> dict:
    """The host's CPU use (percent of all its CPUs) and memory over the interval between two samples."""
    now = after.host
    return {"cpus": now["cpus"], "cpu_percent": cpu_percent(before.host, now), "memory_bytes": now["memory_bytes"],
            "memory_used_bytes": now["memory_used_bytes"], "vms_sampled": len(after.vms)}


def vm_figures(before: Sample, after: Sample) -> list[dict]:
    """A row per VM of the later sample, sorted by name: figures where the earlier one has the VM."""
    seconds = after.monotonic - before.monotonic
    rows = [vm_row(uuid, before.vms.get(uuid), now, seconds) for uuid, now in after.vms.items()]
    return sorted(rows, key=lambda row: row["name"])


def vm_row(uuid: str, then: dict | None, now: dict, seconds: float) -> dict:
    row = {"name": now["name"], "uuid": uuid, "state": now["state"], "vcpus": now["vcpus"],
           "cpu_percent": None, "memory_bytes": now["memory_bytes"], "memory_used_bytes": now["memory_used_bytes"],
           "memory_rss_bytes": now["memory_rss_bytes"], **{rate: None for rate, _counter in RATES},
           "totals": {counter: now[counter] for counter in COUNTERS}}
    if then is None or seconds <= 0:
        return row
    cpu = _delta(then, now, "cpu_time_ns")
    if cpu is not None and now["vcpus"]:
        row["cpu_percent"] = round(min(100.0, 100 * cpu / (seconds * 1e9 * now["vcpus"])), 1)
    for rate, counter in RATES:
        change = _delta(then, now, counter)
        row[rate] = None if change is None else round(change / seconds, 1)
    return row


def _delta(then: dict, now: dict, counter: str) -> int | None:
    if then.get(counter) is None or now.get(counter) is None or now[counter] < then[counter]:
        return None
    return now[counter] - then[counter]


def measure(host: Host, names: Iterable[str] | None = None, all: bool = False, interval: float = 1.0,
            before: Sample | None = None) -> tuple[Sample, dict, list[dict]]:
    """Two samples `interval` seconds apart (or `before` and one now): (the later sample, the host's
    figures, the VMs' rows). The later sample is the next call's `before` when watching."""
    names = list(names) if names is not None else None
    if before is None:
        before = take(host, names, all)
        time.sleep(interval)
    else:
        time.sleep(max(0.0, interval - (time.monotonic() - before.monotonic)))
    after = take(host, names, all)
    return after, host_figures(before, after), vm_figures(before, after)
