"""`virtops serve` over many hosts: each served host keeps open connections (bounded connect,
quick keepalive: fleet/gather.py's open_host; one call at a time on each, see Served), a watcher
thread that asks it for its status every WATCH_S seconds, and an event hub that feeds the one
event stream, each event tagged by host.

The same API and pages serve every host: /api/hosts/NAME/... and /hosts/NAME/... are the one-host
routes (/api/..., /...) with the host named in the request (HostPaths, below), so no route is
declared twice. A host that stops answering is marked so within its keepalive window, and its
requests are refused at once with that sentence (503) until its watcher sees it answer again:
no request waits for a host known to be away, and no thread of the server piles up on one.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from typing import Iterator
from urllib.parse import quote

import libvirt

from virtops.base.errors import HostUnreachable, NotFound, VirtopsError, from_libvirt
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import KEEPALIVE
from virtops.host import Host
from virtops.web.events import EventHub

WATCH_S = 2.0
WATCHER_CONNECT_S = 3600.0  # the watcher alone waits for a hung daemon's connect (see Served)
LEASES = "virtops.leases"  # the connections lent to a request, returned when it ends (HostPaths)
SILENT_S = KEEPALIVE[0] * (KEEPALIVE[1] + 1)  # a status call outstanding this long: the host is not answering
SCOPE_KEY = "virtops.host"  # the served host a request names, put in its ASGI scope by HostPaths
HOST_PATH = re.compile(r"^(/api)?/hosts/([^/]+)(/.*)$")


class Served:
    """One host of the server: its connections, its event hub, and what its watcher last saw.

    libvirt's client crashed the process (libvirt 9.0) when keepalive closed a connection that
    two threads were calling on at once, as soon as the hung daemon answered again. So each
    connection of a fleet's host carries one call at a time: the watcher, the event hub and the
    history sampler have one each, and requests borrow one from a pool (lease), opening another
    when all are lent. A server of one host keeps its one connection for everything, as before."""

    def __init__(self, registered: RegisteredHost, host: Host, events: EventHub, pooled: bool = False):
        self.registered, self.events = registered, events
        self.name = registered.name
        self.host = host  # the watcher's (a fleet's) or the only one (a server of one host)
        self._pooled = pooled
        self._lock = threading.Lock()
        self._idle: list[Host] = []
        self._made: list[Host] = [host]
        self._status: dict | None = None
        # Until the first answer the host counts as answering (no figures yet) for SILENT_S, as
        # if that first question were outstanding: a server just started refuses no request.
        self._reason: str | None = None
        self._asking_since: float | None = time.monotonic()
        if pooled:
            host.connection.connect_timeout = WATCHER_CONNECT_S  # only the watcher waits for a hung connect
        self.events_host = self._new_host() if pooled else host
        self.history_host = self._new_host() if pooled else host

    @property
    def path(self) -> str:
        return quote(self.name, safe=":")

    @property
    def uri(self) -> str:
        return self.host.uri

    def _new_host(self) -> Host:
        """A connection of this host's own that only opens while the host answers."""
        from virtops.fleet.gather import open_host

        host = open_host(self.registered)
        host.connection.before_open = self._refuse_while_away
        with self._lock:
            self._made.append(host)
        return host

    def own_host(self) -> Host:
        """A connection for one long task of its own (closed when the server stops)."""
        return self._new_host() if self._pooled else self.host

    def _refuse_while_away(self) -> None:
        reason = self.reason()
        if reason is not None:
            raise HostUnreachable(f"host {self.name}: {reason}")

    @contextlib.contextmanager
    def lease(self) -> Iterator[Host]:
        """A connection for one caller at a time (a fleet's), returned when the block ends."""
        if not self._pooled:
            yield self.host
            return
        with self._lock:
            host = self._idle.pop() if self._idle else None
        host = host or self._new_host()
        try:
            yield host
        finally:
            with self._lock:
                self._idle.append(host)

    def reason(self) -> str | None:
        """Why the host does not answer, or None when it does (an answer still outstanding after
        SILENT_S counts as none)."""
        with self._lock:
            since, reason = self._asking_since, self._reason
        if since is not None and time.monotonic() - since > SILENT_S:
            return f"did not answer within {SILENT_S:g} s (the daemon accepts the connection but does not reply)."
        return reason

    def status(self) -> dict:
        """GET /api/hosts's row: name, uri, tags, reachable or the reason not, and the last figures."""
        reason = self.reason()
        with self._lock:
            figures = self._status if reason is None else None
        return {"name": self.name, "uri": self.registered.uri, "tags": list(self.registered.tags),
                "reachable": reason is None, "reason": reason, **(figures or _NO_FIGURES)}

    def require_reachable(self) -> None:
        self._refuse_while_away()

    def watch_once(self) -> None:
        """Ask the host for its status on the watcher's connection (the one that may wait)."""
        from virtops.fleet.status import host_status

        with self._lock:
            self._asking_since = time.monotonic()
        status, reason = None, None
        try:
            status = host_status(self.host)
        except VirtopsError as err:
            reason = err.message
        except libvirt.libvirtError as err:
            reason = from_libvirt(err).message
        except Exception as err:  # noqa: BLE001 - one host's failure is its status, never the server's
            reason = f"{type(err).__name__}: {err}"
        with self._lock:
            self._status, self._reason, self._asking_since = status, reason, None

    def close(self) -> None:
        with self._lock:
            made = list(self._made)
        for host in made:
            host.close()


_NO_FIGURES = dict.fromkeys(("hostname", "libvirt_version", "qemu_version", "cpus", "cpu_percent", "memory_bytes",
                             "memory_used_bytes", "vms", "vms_running", "virt_type"), None) | {"problems": []}


class Fleet:
    """The hosts a server serves, in the order given; the first is the default of /api/... and /...
    A server of one host (serve without -H) is a fleet of one, and says so (is_fleet False)."""

    def __init__(self, served: list[Served], is_fleet: bool = True):
        self.hosts = {entry.name: entry for entry in served}
        self.default = served[0]
        self.is_fleet = is_fleet
        self._stopped = threading.Event()

    @classmethod
    def open(cls, registered: list[RegisteredHost]) -> "Fleet":
        from virtops.fleet.gather import open_host

        first = EventHub(registered[0].name)
        hubs = [first] + [EventHub(entry.name, first.stream) for entry in registered[1:]]
        return cls([Served(entry, open_host(entry), hub, pooled=True) for entry, hub in zip(registered, hubs)])

    @classmethod
    def single(cls, host: Host, name: str = "default") -> "Fleet":
        return cls([Served(RegisteredHost(name, host.uri), host, EventHub())], is_fleet=False)  # events untagged

    def get(self, name: str) -> Served:
        served = self.hosts.get(name)
        if served is None:
            raise NotFound(f"host: {name} is not served here; GET /api/hosts lists the hosts this server serves.")
        return served

    def registered(self) -> list[RegisteredHost]:
        return [entry.registered for entry in self.hosts.values()]

    def start(self, loop) -> None:
        """Events and watchers for every host, each in threads of its own (a host that is away at
        start is subscribed once it answers)."""
        for served in self.hosts.values():
            if self.is_fleet:
                threading.Thread(target=self._watch, args=(served,), name=f"watch {served.name}", daemon=True).start()
                served.events.start_when_ready(lambda host=served.events_host: host.conn, loop)
            else:
                served.events.start(lambda host=served.host: host.conn, loop)
                served.watch_once()

    def _watch(self, served: Served) -> None:
        while not self._stopped.is_set():
            served.watch_once()
            self._stopped.wait(WATCH_S)

    def watch_now(self) -> None:
        """A fleet of one has no watcher thread: its status is read when asked."""
        if not self.is_fleet:
            self.default.watch_once()

    def stop(self) -> None:
        self._stopped.set()
        for served in self.hosts.values():
            if served.reason() is None:  # a hung daemon would hold the deregistering up
                with contextlib.suppress(VirtopsError):
                    served.events.stop()
            served.close()


def served_of(connection) -> Served:
    """The served host a request (or WebSocket) is about: the one its path names, else the default."""
    fleet: Fleet = connection.app.state.fleet
    name = connection.scope.get(SCOPE_KEY)
    return fleet.default if name is None else fleet.get(name)


def host_of(connection) -> Host:
    """The Host a request is about, lent to it until it ends; a host named in the path that is
    known to be away is refused at once (the default host of /api/... is asked as it comes)."""
    served = served_of(connection)
    if connection.scope.get(SCOPE_KEY) is not None:
        served.require_reachable()
    leases = connection.scope.get(LEASES)
    if leases is None:  # not through HostPaths (a server of one host lends its one connection anyway)
        return served.host
    if served.name not in leases:
        lease = served.lease()
        leases[served.name] = (lease, lease.__enter__())
    return leases[served.name][1]


def host_for_a_thread(connection) -> Host:
    """A connection of the request's host for work that outlives the request (a move under way):
    on a fleet's server one of its own, never lent to anyone else; on a server of one host its one."""
    served = served_of(connection)
    if connection.scope.get(SCOPE_KEY) is not None:
        served.require_reachable()
    return served.own_host()


class HostPaths:
    """ASGI middleware: /api/hosts/NAME/REST and /hosts/NAME/REST are served as /api/REST and /REST
    with the host NAME in the scope (GET /api/hosts itself is a route of its own)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        match = HOST_PATH.match(scope["path"])
        if match:
            api, name, rest = match.groups()
            path = f"{api or ''}{rest}"
            scope = {**scope, "path": path, "raw_path": path.encode(), SCOPE_KEY: name}
        scope = {**scope, LEASES: {}}
        try:
            await self.app(scope, receive, send)
        finally:
            for lease, _host in scope[LEASES].values():
                lease.__exit__(None, None, None)
