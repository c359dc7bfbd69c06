"""The models of a host's facts, for the Python API (`Host.info()`, `Host.check()`) and the REST
API's schema; facts.py reads them as plain rows."""
from __future__ import annotations

from typing import TYPE_CHECKING

from virtops.base.model import Model
from virtops.daemon import facts

if TYPE_CHECKING:
    from virtops.daemon.connection import Connection as Host


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
    cpu_percent: float | None  # over cpu_window_s (facts.CPU_WINDOW_S: at least, its own calls count)
    cpu_window_s: float | None  # the seconds between the two readings; None: not sampled
    memory_used_bytes: int  # without buffers and page cache
    pools: int
    networks: int
    domains: int
    running_domains: int
    virt_type: str | None
    virt_type_source: str


def read_info(host: Host) -> HostInfo:
    return HostInfo(**facts.info_row(host))


def cached_check(host: Host) -> HostCheck | None:
    remembered = facts.remembered_check(host)
    try:
        return HostCheck.model_validate(remembered) if remembered else None
    except ValueError:
        return None
