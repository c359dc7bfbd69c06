"""What a fleet listing asks each host: the same core calls as on one host (ops/), gathered."""
from __future__ import annotations

from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import Gathered, gather


def vms(hosts: list[RegisteredHost], all: bool = True, long: bool = False) -> Gathered[list[dict]]:
    """vm list: plain rows (ops/vmrows.py), brief or long, per host."""
    from virtops.ops import vmrows

    return gather(hosts, lambda host: vmrows.detailed(host, all) if long else vmrows.summaries(host, all))


def networks(hosts: list[RegisteredHost], include_inactive: bool = False) -> Gathered[list]:
    return gather(hosts, lambda host: host.networks.list(include_inactive=include_inactive))


def pools(hosts: list[RegisteredHost], include_inactive: bool = False) -> Gathered[list]:
    return gather(hosts, lambda host: host.pools.list(include_inactive=include_inactive))


def volumes(hosts: list[RegisteredHost], pool: str) -> Gathered[list]:
    """The volumes of the pool named `pool` on every host; a host without that pool says so."""
    return gather(hosts, lambda host: host.volumes.list(pool))


def infos(hosts: list[RegisteredHost]) -> Gathered[list]:
    """host info of every host (one item each)."""
    return gather(hosts, lambda host: [host.info()])
