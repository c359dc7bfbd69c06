"""Moving a VM to another host (`vm migrate`) and every running VM off one (`host evacuate`).

The move is libvirt's peer-to-peer migration: the source daemon connects to the destination's
(`peer_uri`, a lab's segment address) and QEMU streams the guest's memory over TCP to the address
of that URI's host. Before anything moves, `preflight` checks the destination against the VM and
refuses in one sentence per problem, both hosts unchanged: the VM's name, UUID and MACs are free
there; it has every network the NICs use and every pool the disks use; each disk is on shared
storage or copied (`copy_storage`); QEMU's user there can reach the disks' pools; there is memory
for a running guest and space for copied disks; it runs the VM's architecture and machine type.

Shared storage is decided here, from the pools' definitions, not guessed: a disk is shared when its
pool has the same name on both hosts, is a network pool (netfs) of the same source (server and
export) on both, is running on the destination, and shows the disk's volume there after a refresh.
libvirt itself decides from the file system type of the mount and does not know a FUSE mount (the
lab hosts' NFS client): a move over storage virtops found shared therefore passes
VIR_MIGRATE_UNSAFE, which skips only that guess.

A running VM moves live: the guest runs on until the last round of memory; `jobStats` gives the
progress, `abortJob` (a cancel, Ctrl-C, or the timeout) stops the move and the guest runs on at the
source, the destination left as it was. A stopped VM moves offline (its definition). Disks copied
(`copy_storage`) get their volume created on the destination first, removed again if the move fails.
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlparse

import libvirt
from pydantic import Field

from virtops.base.errors import (InvalidInput, NeedsOption, NotFound, Refusals, VirtopsError, command, from_libvirt, one_sentence,
                                 WayOut, term, text_of)
from virtops.base import leftovers
from virtops.base.model import STRICT, Model
from virtops.daemon.lookups import domain as require_domain
from virtops.xmlmodels import doc as X
from virtops.xmlmodels.domain import DomainXml
from virtops.xmlmodels.network import NetworkXml
from virtops.xmlmodels.pool import PoolXml
from virtops.xmlmodels.volume import VolumeXml

POLL_S = 0.3
INCOMING_GONE_S = 20  # libvirt removes an aborted move's incoming domain within a second or two
ABORT_WAIT_S = 60     # an aborted move ends within a second; a loaded host takes longer
SHARED_POOL_TYPES = ("netfs",)  # pools whose volumes live on a server every host can mount


class MoveOptions(Model):
    """How a VM moves: vm migrate's options and the REST API's move body are this model."""

    model_config = STRICT
    offline: bool = Field(False, description="Move the definition of a stopped VM (a running one moves live).")
    copy_storage: bool = Field(False, description="Copy the disks that are not on storage both hosts share.")
    bandwidth_mib_s: int | None = Field(None, ge=1, description="Limit the move to this many MiB/s.")
    timeout_s: float | None = Field(None, gt=0, description="Cancel the move if not done by then (the VM stays "
                                                            "where it is).")


class MigrateRequest(MoveOptions):
    name: str


@dataclass(frozen=True)
class DiskMove:
    target: str
    pool: str
    volume: str
    shared: bool
    capacity: int = 0
    allocation: int = 0
    format: str = "raw"


@dataclass
class MigrationPlan:
    name: str
    live: bool
    persistent: bool
    memory_kib: int
    disks: list[DiskMove] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the move goes ahead; the operator is told

    @property
    def copied(self) -> list[DiskMove]:
        return [disk for disk in self.disks if not disk.shared]


@dataclass(frozen=True)
class Progress:
    phase: str           # "memory" or "disks"
    processed: int       # bytes
    total: int           # bytes
    elapsed_s: float


@dataclass(frozen=True)
class MigrationResult:
    name: str
    live: bool
    seconds: float
    copied_disks: list[str]
    destination: str
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "mode": "live" if self.live else "offline", "seconds": round(self.seconds, 2),
                "copied_disks": self.copied_disks, "destination": self.destination, "warnings": self.warnings}


class Cancel:
    """Set from another thread (a web request, a signal handler) to stop a move in progress."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()


# -- the pre-flight checks ----------------------------------------------------------------------
def preflight(source: libvirt.virConnect, dest: libvirt.virConnect, request: MigrateRequest,
              dest_label: str) -> MigrationPlan:
    """Everything the move needs, checked against both hosts; raises Refusals (one sentence each,
    named by the request's field) and changes nothing but a refresh of the destination's pools."""
    dom = require_domain(source, request.name)
    running = bool(dom.isActive())
    if same_host(source, dest):
        raise InvalidInput("to", f"{dest_label} is the host {request.name} is on; name another host.")
    if request.offline and running:
        raise InvalidInput("offline", f"{request.name} is running; shut it down first, or move it live "
                                      f"(without offline).")
    persistent = bool(dom.isPersistent())
    if not running and not persistent:
        raise InvalidInput("name", f"{request.name} is neither running nor defined; there is nothing to move.")
    xml_flags = 0 if running else libvirt.VIR_DOMAIN_XML_INACTIVE
    domain = DomainXml(X.parse(dom.XMLDesc(xml_flags)))
    plan = MigrationPlan(request.name, running, persistent, int(domain.memory or 0) // 1024)
    problems: list[VirtopsError] = []
    problems += _identity_problems(dom, domain, dest, dest_label)
    problems += _network_problems(domain, dest, dest_label, running)
    disk_problems, plan.disks = _disk_plan(source, dest, domain, request, dest_label)
    problems += disk_problems
    problems += _capacity_problems(dest, plan, dest_label)
    problems += _machine_problems(domain, dest, dest_label)
    if problems:
        raise problems[0] if len(problems) == 1 else Refusals(problems)
    plan.warnings = _stp_warnings(domain, dest, dest_label) if running else []
    return plan


def same_host(source: libvirt.virConnect, dest: libvirt.virConnect) -> bool:
    return _host_uuid(source) == _host_uuid(dest)


def _host_uuid(conn: libvirt.virConnect) -> str:
    return X.parse(conn.getCapabilities()).findtext("host/uuid") or ""


def _identity_problems(dom, domain: DomainXml, dest, dest_label: str) -> list[VirtopsError]:
    problems: list[VirtopsError] = []
    name = dom.name()
    try:
        dest.lookupByName(name)
        problems.append(InvalidInput("name", f"{dest_label} has a VM named {name} already; remove or rename "
                                             f"one of them first."))
    except libvirt.libvirtError:
        try:
            other = dest.lookupByUUIDString(dom.UUIDString())
            problems.append(InvalidInput("name", f"{dest_label} has a VM with {name}'s UUID ({other.name()}); "
                                                 f"remove it there first."))
        except libvirt.libvirtError:
            pass
    theirs = _macs_in_use(dest)
    for index, nic in enumerate(domain.nics):
        if nic.mac and nic.mac.lower() in theirs:
            problems.append(InvalidInput(f"nics[{index}].mac", f"{nic.mac} is the MAC of {theirs[nic.mac.lower()]} "
                                                               f"on {dest_label}; give one of them another MAC."))
    return problems


def _macs_in_use(conn: libvirt.virConnect) -> dict[str, str]:
    macs = {}
    for other in conn.listAllDomains():
        try:
            for nic in DomainXml(X.parse(other.XMLDesc(0))).nics:
                if nic.mac:
                    macs[nic.mac.lower()] = other.name()
        except libvirt.libvirtError:
            continue  # a domain gone while we looked
    return macs


def _network_problems(domain: DomainXml, dest, dest_label: str, running: bool) -> list[VirtopsError]:
    problems: list[VirtopsError] = []
    for index, nic in enumerate(domain.nics):
        if nic.type != "network" or not nic.source:
            continue
        try:
            network = dest.networkLookupByName(nic.source)
        except libvirt.libvirtError:
            problems.append(InvalidInput(f"nics[{index}].network", f"{dest_label} has no network {nic.source}; "
                                                                   f"create it there first."))
            continue
        if running and not network.isActive():
            problems.append(InvalidInput(f"nics[{index}].network", f"network {nic.source} is not running on "
                                                                   f"{dest_label}; start it there first."))
    return problems


def _stp_warnings(domain: DomainXml, dest, dest_label: str) -> list[str]:
    """A live move onto a network whose bridge runs STP (libvirt's default): the guest's new port
    there passes no frames through listening and learning, at least 2 s each in Linux whatever
    the delay says, and the guest resumes before that (docs/migration.md measures it)."""
    warnings = []
    for nic in domain.nics:
        if nic.type != "network" or not nic.source:
            continue
        try:
            network = NetworkXml(X.parse(dest.networkLookupByName(nic.source).XMLDesc(0)))
        except libvirt.libvirtError:
            continue  # a refusal said so already
        libvirts_bridge = network.bridge and network.mode != "bridge"  # a host bridge's STP is the host's
        if libvirts_bridge and network.stp is not False:  # absent: libvirt turns it on
            warnings.append(f"network {nic.source} on {dest_label} runs STP on its bridge: {nic.mac or 'the NIC'} "
                            f"passes no traffic for up to 4 s after the move; <bridge stp='off'> there avoids that.")
    return warnings


def _disk_plan(source, dest, domain: DomainXml, request: MigrateRequest,
               dest_label: str) -> tuple[list[VirtopsError], list[DiskMove]]:
    problems: list[VirtopsError] = []
    moves: list[DiskMove] = []
    for index, disk in enumerate(domain.disks):
        if disk.type not in ("file", "volume") or not (disk.volume or disk.path):
            continue  # an empty CD-ROM drive, a network disk: nothing of a pool to move
        fieldname = f"disks[{index}]"
        try:
            pool, vol = _source_volume(source, disk)
        except VirtopsError as err:
            problems.append(InvalidInput(fieldname, str(err)))
            continue
        move, problem = _disk_move(dest, disk.target, pool, vol, request, dest_label)
        if isinstance(problem, str):
            problems.append(InvalidInput(fieldname, problem))
        elif problem is not None:
            problems.append(problem)
        else:
            moves.append(move)
    return problems, moves


def _source_volume(source, disk) -> tuple[libvirt.virStoragePool, libvirt.virStorageVol]:
    try:
        if disk.type == "volume":
            pool = source.storagePoolLookupByName(disk.pool)
            return pool, pool.storageVolLookupByName(disk.volume)
        vol = source.storageVolLookupByPath(disk.path)
        return vol.storagePoolLookupByVolume(), vol
    except libvirt.libvirtError:
        raise VirtopsError(f"{disk.target} ({disk.volume or disk.path}) is in no storage pool of this host; "
                           f"virtops moves disks of pools only.") from None


def _disk_move(dest, target: str, pool: libvirt.virStoragePool, vol: libvirt.virStorageVol,
               request: MigrateRequest, dest_label: str) -> tuple[DiskMove | None, str | VirtopsError | None]:
    pool_name = pool.name()
    try:
        theirs = dest.storagePoolLookupByName(pool_name)
    except libvirt.libvirtError:
        return None, f"{dest_label} has no pool {pool_name} for {target}; create it there first."
    if not theirs.isActive():
        return None, f"pool {pool_name} is not running on {dest_label}; start it there first."
    ours_xml, theirs_xml = PoolXml(X.parse(pool.XMLDesc(0))), PoolXml(X.parse(theirs.XMLDesc(0)))
    if ours_xml.target != theirs_xml.target:
        return None, (f"pool {pool_name} is at {theirs_xml.target} on {dest_label} but {ours_xml.target} here; "
                      f"the disk's path must be the same on both hosts.")
    problem = _qemu_access_problem(dest, pool_name, target)
    if problem:
        return None, problem
    if _shares_storage(ours_xml, theirs_xml):
        try:
            theirs.refresh(0)
            theirs.storageVolLookupByName(vol.name())
        except libvirt.libvirtError:
            return None, (f"pool {pool_name} is shared with {dest_label}, but {dest_label} does not see volume "
                          f"{vol.name()} in it.")
        return DiskMove(target, pool_name, vol.name(), shared=True), None
    if not request.copy_storage:
        return None, NeedsOption(f"disk {target}: pool {pool_name} is not storage shared with {dest_label} "
                                 f"({ours_xml.type} pool); copy the disk with {term('copy_storage', True)}, or use a pool both hosts "
                                 f"share (netfs).", ways=[WayOut("copy_storage", True, "copy the disk to the other host")])
    try:
        theirs.storageVolLookupByName(vol.name())
        return None, f"pool {pool_name} on {dest_label} has a volume {vol.name()} already; remove it there first."
    except libvirt.libvirtError:
        pass
    _type, capacity, allocation = vol.info()
    available = theirs.info()[3]
    if capacity > available:
        return None, (f"pool {pool_name} on {dest_label} has {available} bytes free, {target} needs {capacity}; "
                      f"free space there first.")
    fmt = VolumeXml(X.parse(vol.XMLDesc(0))).format or "raw"
    return DiskMove(target, pool_name, vol.name(), shared=False, capacity=capacity, allocation=allocation,
                    format=fmt), None


def _shares_storage(ours: PoolXml, theirs: PoolXml) -> bool:
    """Both pools mount the same export of the same server (same type, source host and path)."""
    if ours.type not in SHARED_POOL_TYPES or ours.type != theirs.type:
        return False
    return (ours.source.host, ours.source.dir) == (theirs.source.host, theirs.source.dir) and bool(ours.source.host)


def _qemu_access_problem(dest, pool_name: str, target: str) -> str | None:
    from virtops.ops.access import HostView

    class _Dest:  # HostView.of reads a host's uri and connection
        conn = dest
        uri = dest.getURI()

    return HostView.of(_Dest).pool_problem(dest, pool_name, f"disk {target} on the destination")


def _capacity_problems(dest, plan: MigrationPlan, dest_label: str) -> list[VirtopsError]:
    if not plan.live:
        return []
    free = dest.getFreeMemory()
    needed = plan.memory_kib * 1024
    if needed > free:
        return [InvalidInput("to", f"{dest_label} has {free // 2**20} MiB of free memory, {plan.name} needs "
                                   f"{needed // 2**20} MiB; free memory there or choose another host.")]
    return []


def _machine_problems(domain: DomainXml, dest, dest_label: str) -> list[VirtopsError]:
    root = domain.node
    arch = domain.arch or "x86_64"
    machine = root.find("os/type").get("machine") if root.find("os/type") is not None else None
    try:
        dest.getDomainCapabilities(None, arch, machine, domain.type or "kvm", 0)
    except libvirt.libvirtError as err:
        what = f"{arch} machine {machine}" if machine else arch
        return [InvalidInput("to", f"{dest_label} cannot run a {domain.type} guest of {what}: "
                                   f"{one_sentence(err.get_error_message() or str(err)).rstrip('.')}.")]
    return []


# -- the move -----------------------------------------------------------------------------------
def migrate(source: libvirt.virConnect, dest: libvirt.virConnect, peer_uri: str, request: MigrateRequest,
            dest_label: str, progress: Callable[[Progress], None] | None = None,
            cancel: Cancel | None = None) -> MigrationResult:
    """Check, then move; on failure or cancel the VM is where it was and the destination as it was.
    A move whose command was killed goes on in the source's daemon, or left copied volumes on the
    destination: the same command run again finishes it or cleans up after it (`_after_killed_move`)."""
    key = f"migrate {request.name}"
    cancel = cancel or Cancel()
    finished = _after_killed_move(source, dest, key, request, dest_label, progress, cancel)
    if finished:
        return finished
    plan = preflight(source, dest, request, dest_label)
    dom = source.lookupByName(request.name)
    started = time.monotonic()
    made = {"uuid": dom.UUIDString(), "live": plan.live, "copied": [[d.target, d.pool, d.volume] for d in plan.copied]}
    with leftovers.recorded_undo(source.getURI(), key, made) as undo:
        for disk in plan.copied:
            undo.add(lambda disk=disk: _delete_volume(dest, disk.pool, disk.volume),
                     f"created volume {disk.pool}/{disk.volume} on {dest_label}")
            _create_copy_target(dest, disk)
        if plan.live:
            undo.add(lambda: _stop_incoming(dom, dest), f"stopped the incoming copy of {plan.name} on {dest_label}")
            _run_live(dom, peer_uri, plan, request, progress, cancel, dest_label)
        else:
            _run_offline(source, dest, dom, peer_uri, plan, dest_label)
    return MigrationResult(request.name, plan.live, time.monotonic() - started,
                           [d.target for d in plan.copied], dest_label, plan.warnings)


def _after_killed_move(source, dest, key: str, request: MigrateRequest, dest_label: str,
                       progress: Callable[[Progress], None] | None, cancel: Cancel) -> MigrationResult | None:
    """A run of this move that was killed left its record (base/leftovers.py). Its live move may
    still go on in the source's daemon (peer to peer: the daemon drives it, not the command): wait
    for it as for our own, progress and cancel included. Then either the VM is on the destination
    (the move is done: its result) or it is still here, and what the killed run made on the
    destination (its incoming half, its copied volumes, known by the record) is removed so the move
    can start afresh (None)."""
    made = leftovers.left_by_dead_run(source.getURI(), key)
    if made is None:
        return None
    started = time.monotonic()
    here = _by_uuid(source, made.get("uuid", ""))
    if here is not None and _job_active(here):
        if request.bandwidth_mib_s:
            here.migrateSetMaxSpeed(request.bandwidth_mib_s, 0)
        _watch_job(here, None, request, progress, cancel, dest_label)
        here = _by_uuid(source, made.get("uuid", ""))
    there = _by_uuid(dest, made.get("uuid", ""))
    copied = made.get("copied", [])
    if _moved(here, there, bool(made.get("live"))):
        leftovers.forget(source.getURI(), key)
        return MigrationResult(request.name, bool(made.get("live")), time.monotonic() - started,
                               [target for target, _pool, _volume in copied], dest_label)
    if here is not None and there is not None:
        if there.isActive():
            _stop_incoming(here, dest)
        else:
            there.undefine()  # an offline move's definition, the source's kept: ours by its UUID
    for _target, pool, volume in copied:
        _delete_volume(dest, pool, volume)
    leftovers.forget(source.getURI(), key)
    return None


def _moved(here, there, live: bool) -> bool:
    """Whether a move that is over reached the destination: the VM is there (running, for a live
    move) and no longer here (a persistent VM is undefined at the source, a transient one gone)."""
    if there is None:
        return False
    if live:
        return bool(there.isActive()) and (here is None or not _still_running(here))
    return here is None


def _still_running(dom: libvirt.virDomain) -> bool:
    """A source domain undefined while we look (the end of its move, finishing in the daemon after
    the killed run) runs no more: libvirt then answers 'no domain' to the question."""
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise


def _by_uuid(conn, uuid: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as err:
        if err.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
            return None
        raise


def _stop_incoming(dom, dest) -> bool:
    """An aborted live move leaves its incoming half on the destination for a moment, until libvirt
    there removes it; wait for that (bounded), and stop it ourselves if it stays. Only while the
    guest still runs at the source: a copy that is the only running guest is never touched. A source
    daemon that went away (restarted midway) cannot say; the destination's daemon then removes the
    incoming half itself when the source's connection drops, which is waited for too."""
    uuid = dom.UUIDString()  # kept in the object: no call to the source
    deadline = time.monotonic() + INCOMING_GONE_S
    while True:
        incoming = _by_uuid(dest, uuid)
        if incoming is None:
            return False  # nothing was left there
        at_source = _runs_at_source(dom)
        if time.monotonic() > deadline or at_source is False:
            break
        time.sleep(POLL_S)
    if at_source is False:
        raise VirtopsError(f"{dom.name()} no longer runs at the source; its copy on the destination was kept")
    if at_source is None:
        raise VirtopsError(f"the source's daemon does not answer, so whether {dom.name()} runs there is not known; "
                           "its copy on the destination was kept")
    try:
        incoming.destroy()
    except libvirt.libvirtError:
        if _by_uuid(dest, uuid) is not None:
            raise  # still there: the undo names it as left
    return True


def _runs_at_source(dom) -> bool | None:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError:
        return None


def _create_copy_target(dest, disk: DiskMove) -> None:
    vol = VolumeXml().update(name=disk.volume, capacity=disk.capacity, allocation=0, format=disk.format)
    try:
        dest.storagePoolLookupByName(disk.pool).createXML(X.to_string(vol.node), 0)
    except libvirt.libvirtError as err:
        raise from_libvirt(err, f"creating volume {disk.pool}/{disk.volume} on the destination") from err


def _delete_volume(dest, pool: str, volume: str) -> bool:
    """Registered before the volume is created: False when it was never made."""
    try:
        vol = dest.storagePoolLookupByName(pool).storageVolLookupByName(volume)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return False
        raise
    vol.delete(0)
    return True


def migration_flags(plan: MigrationPlan) -> int:
    flags = libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
    if plan.persistent:
        flags |= libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if not plan.live:
        return flags | libvirt.VIR_MIGRATE_OFFLINE  # copied disks went through streams before (_copy_volumes)
    flags |= libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_ABORT_ON_ERROR
    if plan.copied:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    elif plan.disks:
        flags |= libvirt.VIR_MIGRATE_UNSAFE  # every disk on storage virtops found shared: see the docstring
    return flags


def migration_params(plan: MigrationPlan, peer_uri: str, request: MigrateRequest) -> dict:
    params: dict = {}
    host = urlparse(peer_uri).hostname
    if plan.live and host:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{host}"  # the memory stream goes where the peer is
    if plan.copied:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [disk.target for disk in plan.copied]
    if request.bandwidth_mib_s:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = request.bandwidth_mib_s
    return params


class _Worker:
    """The move's libvirt call, in a thread of its own; `done` is set once the call returns.

    The main thread waits on `done`, never on Thread.join: a Ctrl-C during join in Python 3.11
    marks a thread that still runs as stopped (threading's bpo-45274 handling releases the lock
    the live thread holds). The thread starts with SIGINT and SIGTERM blocked, as it inherits the
    mask: a signal delivered to it would cut libvirt's call short while the source's daemon moves
    on; they must reach the main thread, which aborts the job itself."""

    def __init__(self, name: str, call: Callable[[], None]):
        self.done = threading.Event()
        self.error: libvirt.libvirtError | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._call()
        except libvirt.libvirtError as err:
            self.error = err
        finally:
            self.done.set()

    def start(self) -> None:
        signals = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            self._thread.start()
        finally:  # a Ctrl-C that came meanwhile is raised here, in the watcher's try
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _run_live(dom, peer_uri: str, plan: MigrationPlan, request: MigrateRequest,
              progress: Callable[[Progress], None] | None, cancel: Cancel, dest_label: str) -> None:
    worker = _Worker(f"migrate-{plan.name}", lambda: dom.migrateToURI3(
        peer_uri, migration_params(plan, peer_uri, request), migration_flags(plan)))
    _watch_job(dom, worker, request, progress, cancel, dest_label)
    if worker.error is not None:
        raise from_libvirt(worker.error, f"moving {plan.name} to {dest_label}")


def _watch_job(dom, worker: _Worker | None, request: MigrateRequest,
               progress: Callable[[Progress], None] | None, cancel: Cancel, dest_label: str) -> None:
    """Start and wait for the move (our worker's call, or the source's job alone when the command
    that started it is gone), reporting progress; a cancel, Ctrl-C or the timeout aborts it and the
    VM runs on at the source, which raises the sentence saying so."""
    started = time.monotonic()
    reason = None
    try:
        if worker is not None:
            worker.start()  # inside the try: a Ctrl-C as soon as the job runs still aborts it
        while _going(dom, worker):
            if cancel.event.is_set():
                reason = "cancelled"
            elif request.timeout_s and time.monotonic() - started > request.timeout_s:
                reason = f"not done after {request.timeout_s:g} s"
            if reason:
                break
            if progress:
                _report(dom, progress, started)
    except KeyboardInterrupt:
        reason = "cancelled"
    if not reason:
        return
    if not _abort(dom, worker):
        raise VirtopsError(f"moving {request.name} to {dest_label} {reason}, but the move did not stop within "
                           f"{ABORT_WAIT_S} s; see where {request.name} runs{command('vm list', wrap=' with {}', elsewhere='')} "
                           "on both hosts")
    if _job_active(dom) is None:  # the move finished before the abort reached it
        return
    raise VirtopsError(f"moving {request.name} to {dest_label} {reason}: it runs on its own host as before")


def _going(dom, worker: _Worker | None) -> bool:
    if worker is not None:
        return not worker.done.wait(POLL_S)
    time.sleep(POLL_S)
    return bool(_job_active(dom))


def _abort(dom, worker: _Worker | None) -> bool:
    """Cancel the move and wait until the source's daemon says its job is over and our call has
    returned. The abort is repeated: one that arrives while the job is between phases (before the
    migration stream starts) can be lost. False if the job still runs at the deadline."""
    deadline = time.monotonic() + ABORT_WAIT_S
    while time.monotonic() < deadline:
        try:
            dom.abortJob()
        except libvirt.libvirtError:
            pass  # no job yet or any more, or a phase that cannot be cancelled: look again
        if worker is not None:
            worker.done.wait(POLL_S)
        else:
            time.sleep(POLL_S)
        if (worker is None or worker.done.is_set()) and not _job_active(dom):
            return True
    return False


def _job_active(dom) -> bool | None:
    """Whether the domain has a job under way; None when the source has no such domain any more
    (a move that completed undefines it there)."""
    try:
        return dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError:
        try:
            dom.isActive()
        except libvirt.libvirtError:
            return None
        return False


def _report(dom, progress: Callable[[Progress], None], started: float) -> None:
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:
        return
    found = _progress_of(stats, time.monotonic() - started)
    if found:
        progress(found)


def _progress_of(stats: dict, elapsed_s: float) -> Progress | None:
    """The phase a move is in, from libvirt's job statistics: its disks first (copy_storage), then memory."""
    disk_total = stats.get("disk_total", 0)
    if disk_total and stats.get("disk_processed", 0) < disk_total:
        return Progress("disks", stats.get("disk_processed", 0), disk_total, elapsed_s)
    if stats.get("memory_total"):
        return Progress("memory", stats.get("memory_processed", 0), stats.get("memory_total", 0), elapsed_s)
    return None


JOB_OPERATIONS = {  # libvirt's VIR_DOMAIN_JOB_OPERATION_*, as a person says them
    libvirt.VIR_DOMAIN_JOB_OPERATION_START: "start", libvirt.VIR_DOMAIN_JOB_OPERATION_SAVE: "save",
    libvirt.VIR_DOMAIN_JOB_OPERATION_RESTORE: "restore", libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN: "incoming move",
    libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT: "move", libvirt.VIR_DOMAIN_JOB_OPERATION_SNAPSHOT: "snapshot",
    libvirt.VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT: "snapshot revert", libvirt.VIR_DOMAIN_JOB_OPERATION_DUMP: "dump",
    libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP: "backup"}


def job_under_way(dom: libvirt.virDomain) -> dict | None:
    """The job the daemon runs on the domain now, whoever started it (this server, `vm migrate`,
    virsh): {"operation", "elapsed_s", "progress": Progress's fields or None}; None when it runs none."""
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:
        return None  # no such domain any more (a finished move undefines it), or not running
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) in (libvirt.VIR_DOMAIN_JOB_NONE, libvirt.VIR_DOMAIN_JOB_COMPLETED):
        return None
    elapsed_s = stats.get("time_elapsed", 0) / 1000
    progress = _progress_of(stats, elapsed_s)
    return {"operation": JOB_OPERATIONS.get(stats.get("operation"), "job"), "elapsed_s": round(elapsed_s, 1),
            "progress": progress.__dict__ if progress else None}


def _run_offline(source, dest, dom, peer_uri: str, plan: MigrationPlan, dest_label: str) -> None:
    if plan.copied:
        _copy_volumes(source, dest, plan)
    try:
        dom.migrateToURI3(peer_uri, {}, migration_flags(plan))
    except libvirt.libvirtError as err:
        raise from_libvirt(err, f"moving {plan.name} to {dest_label}") from err


def _copy_volumes(source, dest, plan: MigrationPlan) -> None:
    """A stopped VM's disks, through libvirt's sparse streams: holes stay holes."""
    for disk in plan.copied:
        src = source.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume)
        dst = dest.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume)
        _stream_volume(source, dest, src, dst, disk.capacity)


def _stream_volume(source, dest, src, dst, length: int) -> None:
    down, up = source.newStream(0), dest.newStream(0)
    src.download(down, 0, length, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
    dst.upload(up, 0, length, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
    try:
        while True:
            kind, data = _next_piece(down)
            if kind == "end":
                break
            if kind == "hole":
                up.sendHole(data, 0)
            else:
                up.send(data)
        down.finish()
        up.finish()
    except BaseException:
        for stream in (down, up):
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
        raise


def _next_piece(stream) -> tuple[str, object]:
    data = stream.recvFlags(256 * 1024, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
    if data == -3:
        return "hole", stream.recvHole(0)
    if isinstance(data, bytes):
        return ("data", data) if data else ("end", None)
    raise VirtopsError("reading the volume's stream failed.")


# -- host evacuate ------------------------------------------------------------------------------
@dataclass
class EvacuationStep:
    name: str
    destination: str | None           # None: no host can take it
    reasons: dict[str, str] = field(default_factory=dict)  # destination -> why not
    result: str = "planned"           # planned, moved, failed: SENTENCE, left

    def as_dict(self) -> dict:
        return {"name": self.name, "destination": self.destination, "reasons": self.reasons, "result": self.result}


def plan_evacuation(source: libvirt.virConnect, destinations: dict[str, libvirt.virConnect],
                    copy_storage: bool = False, unreachable: dict[str, str] | None = None) -> list[EvacuationStep]:
    """Every running VM of the source, each to the destination that passes its pre-flight with the
    most free memory left after the moves planned before it; VMs no host can take stay. Hosts
    that could not be reached (label -> why) are every VM's reason for not going there."""
    free = {label: conn.getFreeMemory() for label, conn in destinations.items()}
    steps = []
    running = sorted(source.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE), key=lambda d: d.name())
    for dom in running:
        step = EvacuationStep(dom.name(), None, dict(unreachable or {}))
        fits = []
        for label, conn in destinations.items():
            try:
                plan = preflight(source, conn, MigrateRequest(name=dom.name(), copy_storage=copy_storage), label)
            except (VirtopsError, NotFound) as err:
                step.reasons[label] = text_of(err)
                continue
            needed = plan.memory_kib * 1024
            if needed > free[label]:
                step.reasons[label] = "not enough free memory after the moves planned before it."
                continue
            fits.append((free[label] - needed, label, needed))
        if fits:
            _left, label, needed = max(fits)
            step.destination = label
            free[label] -= needed
        else:
            step.result = "left"
        steps.append(step)
    return steps


def evacuate(source: libvirt.virConnect, destinations: dict[str, tuple[libvirt.virConnect, str]],
             copy_storage: bool = False, dry_run: bool = False,
             on_step: Callable[[EvacuationStep], None] | None = None,
             unreachable: dict[str, str] | None = None) -> list[EvacuationStep]:
    """plan_evacuation, then each planned move in turn (destinations: label -> (connection, peer
    URI)); one VM's failure is its own result and the others go on."""
    steps = plan_evacuation(source, {label: conn for label, (conn, _peer) in destinations.items()}, copy_storage,
                            unreachable)
    for step in steps:
        if step.destination and not dry_run:
            conn, peer = destinations[step.destination]
            try:
                migrate(source, conn, peer, MigrateRequest(name=step.name, copy_storage=copy_storage), step.destination)
                step.result = "moved"
            except VirtopsError as err:
                step.result = f"failed: {text_of(err)}"
        if on_step:
            on_step(step)
    return steps


# -- for the faces: hosts by the names people give ----------------------------------------------
def open_destination(to: str):
    """A connection to the host `to` names (a registered name, lab:NAME or a URI) and the URI its
    peer daemon reaches it by."""
    from virtops.daemon.connection import Connection, peer_uri

    return Connection(to), peer_uri(to)


def migrate_to(source_host, to: str, request: MigrateRequest, progress: Callable[[Progress], None] | None = None,
               cancel: Cancel | None = None) -> MigrationResult:
    dest, peer = open_destination(to)
    try:
        return migrate(source_host.conn, dest.conn, peer, request, to, progress, cancel)
    finally:
        dest.close()


class BackgroundMove:
    """A move run on its own thread (the web's: a request must not wait minutes): checked before it
    starts, so a refusal answers at once; then its progress, cancel and how it ended."""

    def __init__(self, source_host, to: str, request: MigrateRequest,
                 on_end: Callable[[BackgroundMove], None] | None = None):
        self.name, self.to = request.name, to
        self.cancel = Cancel()
        self.progress: Progress | None = None
        self.result: MigrationResult | None = None
        self.error: str | None = None
        dest, peer = open_destination(to)
        try:
            preflight(source_host.conn, dest.conn, request, to)
        except BaseException:
            dest.close()
            raise
        self._thread = threading.Thread(target=self._run, args=(source_host, dest, peer, request, on_end),
                                        name=f"move-{request.name}", daemon=True)
        self._thread.start()

    def _run(self, source_host, dest, peer: str, request: MigrateRequest, on_end) -> None:
        try:
            self.result = migrate(source_host.conn, dest.conn, peer, request, self.to,
                                  progress=lambda p: setattr(self, "progress", p), cancel=self.cancel)
        except (VirtopsError, NotFound) as err:
            self.error = str(err)
        except Exception as err:  # a bug: the move's record says so instead of staying "moving" forever
            self.error = f"the move stopped on an unexpected error: {err!r}"
        finally:
            dest.close()
            if on_end:
                on_end(self)

    @property
    def state(self) -> str:
        if self._thread.is_alive():
            return "moving"
        return "moved" if self.result else "failed"

    def wait(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def as_dict(self) -> dict:
        return {"name": self.name, "to": self.to, "state": self.state,
                "progress": self.progress.__dict__ if self.progress else None,
                "result": self.result.as_dict() if self.result else None, "error": self.error}


def evacuate_to(source_host, to: list[str], copy_storage: bool = False, dry_run: bool = False,
                on_step: Callable[[EvacuationStep], None] | None = None,
                others_of: list[str] | None = None) -> list[EvacuationStep]:
    """Evacuate to the hosts `to` names; or, with `others_of` instead (a fleet selection), to every
    one of those hosts that is not the source itself. A host that cannot be reached (down, no
    segment address a peer could use) is a reason in each VM's step, and the others are used."""
    opened: dict = {}
    unreachable: dict[str, str] = {}
    try:
        for label in to or others_of or []:
            try:
                dest, peer = open_destination(label)
                dest.conn  # connect now: a host that does not answer is a reason, not the end of it all
            except VirtopsError as err:
                unreachable[label] = text_of(err)
                continue
            if not to and same_host(source_host.conn, dest.conn):
                dest.close()  # the source, in the selection it is part of
                continue
            opened[label] = (dest, peer)
        return evacuate(source_host.conn, {label: (dest.conn, peer) for label, (dest, peer) in opened.items()},
                        copy_storage, dry_run, on_step, unreachable)
    finally:
        for dest, _peer in opened.values():
            dest.close()


def check_named_destination(to: str) -> str:
    """For faces that take a destination from other people than the host's operator (the web):
    only a registered host name or lab:NAME, never a raw URI (some URIs run commands: qemu+ext)."""
    from virtops.daemon import registry
    from virtops.daemon.connection import is_host_name

    if to.startswith("lab:") or is_host_name(to):
        if is_host_name(to):
            registry.lookup(to)  # an unknown name is refused in the registry's own sentence
        return to
    raise InvalidInput("to", f"{to!r} is not a host name; give a registered host"
                             f"{command('host add', wrap=' ({})', elsewhere='')} or lab:NAME.")
