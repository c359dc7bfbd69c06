"""What a fleet listing asks each host: the same rows as on one host (ops/rows.py, vmrows.py), gathered."""
from __future__ import annotations

from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Gathered, gather

TYPE_CHECKING = False  # not typing's: an -H listing starts without it
if TYPE_CHECKING:
    from virtops.fleet.gather import Lease


def vms(hosts: list[RegisteredHost], all: bool = True, long: bool = False, lease: Lease | None = None,
        deadline: float | None = None) -> Gathered[list[dict]]:
    """vm list: plain rows (ops/vmrows.py), brief or long, per host."""
    from virtops.ops import vmrows

    return gather(hosts, lambda host: vmrows.detailed(host, all) if long else vmrows.summaries(host, all),
                  deadline, lease=lease)


def networks(hosts: list[RegisteredHost], include_inactive: bool = False, lease: Lease | None = None,
             deadline: float | None = None) -> Gathered[list[dict]]:
    from virtops.ops import rows

    return gather(hosts, lambda host: rows.networks(host, include_inactive), deadline, lease=lease)


def pools(hosts: list[RegisteredHost], include_inactive: bool = False, lease: Lease | None = None,
          deadline: float | None = None) -> Gathered[list[dict]]:
    from virtops.ops import rows

    return gather(hosts, lambda host: rows.pools(host, include_inactive), deadline, lease=lease)


def volumes(hosts: list[RegisteredHost], pool: str) -> Gathered[list[dict]]:
    """The volumes of the pool named `pool` on every host; a host without that pool says so."""
    from virtops.ops import rows

    return gather(hosts, lambda host: rows.volumes(host, pool))


def infos(hosts: list[RegisteredHost], cpu_window_s: float | None) -> Gathered[list]:
    """host info of every host (one item each), its CPU use over cpu_window_s (None: not sampled)."""
    from virtops.daemon.facts import info_row

    return gather(hosts, lambda host: [info_row(host, cpu_window_s)])
