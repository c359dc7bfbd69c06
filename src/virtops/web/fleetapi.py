"""The fleet's own REST routes: GET /api/hosts (every served host's state), the fleet-wide lists
(/api/fleet/vms, /networks, /pools: each row carrying its host) and the hosts a VM could move
to. Every other route of a host is the one-host API under /api/hosts/NAME/... (web/fleet.py)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from virtops.fleet.gather import CONNECT_TIMEOUT_S, Gathered
from virtops.fleet.status import natural_key
from virtops.web import api
from virtops.web.fleet import SILENT_S, Fleet, served_of

router = APIRouter(prefix="/api", dependencies=api.router.dependencies, responses=api.ERRORS, tags=["fleet"])
LIST_DEADLINE_S = CONNECT_TIMEOUT_S + SILENT_S  # a host that hangs mid-list is dropped by then


class HostStatus(BaseModel):
    name: str
    uri: str
    tags: list[str]
    reachable: bool
    reason: str | None
    hostname: str | None
    libvirt_version: str | None
    qemu_version: str | None
    cpus: int | None
    cpu_percent: float | None
    memory_bytes: int | None
    memory_used_bytes: int | None
    vms: int | None
    vms_running: int | None
    virt_type: str | None
    problems: list[str]


class HostFailure(BaseModel):
    host: str
    error: str


class FleetRows(BaseModel):
    """Rows of every host that answered (each with "host"), and one sentence per host that did not."""
    rows: list[dict]
    failures: list[HostFailure]


class Destination(BaseModel):
    host: str
    ok: bool
    reasons: list[str]


def fleet_of(request: Request) -> Fleet:
    return request.app.state.fleet


@router.get("/hosts", response_model=list[HostStatus])
def hosts(request: Request):
    """Every host this server serves, as its watcher last saw it (never waits for a host)."""
    fleet = fleet_of(request)
    fleet.watch_now()
    return [served.status() for served in fleet.hosts.values()]


def _fleet_rows(request: Request, listing, **options) -> FleetRows:
    """listing(hosts, pool=..., deadline=...) over the hosts that answer; those known to be away are
    not asked (their reason is their answer), and one that stops answering meanwhile is left behind."""
    fleet = fleet_of(request)
    away = {name: served.reason() for name, served in fleet.hosts.items()}
    asked = [served.registered for name, served in fleet.hosts.items() if away[name] is None]
    gathered: Gathered = listing(asked, lease=lambda registered: fleet.get(registered.name).lease(),
                                 deadline=LIST_DEADLINE_S, **options)
    rows = sorted(({"host": host, **row} for host, row in gathered.rows()),
                  key=lambda row: (natural_key(row["name"]), natural_key(row["host"])))
    failures = [HostFailure(host=name, error=reason) for name, reason in away.items() if reason is not None]
    failures += [HostFailure(host=answer.host.name, error=api.worded_failure(answer)) for answer in gathered.failures]
    return FleetRows(rows=rows, failures=failures)


@router.get("/fleet/vms", response_model=FleetRows)
def fleet_vms(request: Request):
    from virtops.fleet import listings

    return _fleet_rows(request, listings.vms, all=True)


@router.get("/fleet/networks", response_model=FleetRows)
def fleet_networks(request: Request):
    from virtops.fleet import listings

    return _fleet_rows(request, listings.networks, include_inactive=True)


@router.get("/fleet/pools", response_model=FleetRows)
def fleet_pools(request: Request):
    from virtops.fleet import listings

    return _fleet_rows(request, listings.pools, include_inactive=True)


@router.get("/vms/{name}/destinations", response_model=list[Destination])
def vm_destinations(request: Request, name: str, copy_storage: bool = False):
    """Every other served host, and whether it can take the VM: the move's pre-flight, each refusal
    in its own sentence (GET /api/hosts/HOST/vms/NAME/destinations for a VM of HOST)."""
    from virtops.fleet.moves import destinations

    fleet, source, host = fleet_of(request), served_of(request), api.host_of(request)
    host.vms.info(name)  # a VM that is not there is refused as on its own page
    others = [served for served in fleet.hosts.values() if served is not source]
    answers = {entry["host"]: entry for entry in destinations(
        source.lease, name, [served.registered for served in others if served.reason() is None], copy_storage,
        lease=lambda registered: fleet.get(registered.name).lease(), deadline=LIST_DEADLINE_S,
        words=lambda err: err.worded(api.API_WORDING))}
    return [answers.get(served.name) or {"host": served.name, "ok": False, "reasons": [served.reason() or "did not answer."]}
            for served in others]
