"""`virtops serve` over many hosts: each served host keeps one open connection (bounded connect,
quick keepalive: fleet/gather.py's open_host), a watcher thread that asks it for its status every
WATCH_S seconds, and an event hub that feeds the one event stream, each event tagged by host.

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
from urllib.parse import quote

import libvirt

from virtops.base.errors import HostUnreachable, NotFound, VirtopsError, from_libvirt
from virtops.daemon.registry import RegisteredHost
from virtops.fleet.gather import KEEPALIVE
from virtops.host import Host
from virtops.web.events import EventHub

WATCH_S = 2.0
WATCHER_CONNECT_S = 3600.0  # the watcher alone waits for a hung daemon's connect (see Served.watch_once)
SILENT_S = KEEPALIVE[0] * (KEEPALIVE[1] + 1)  # a status call outstanding this long: the host is not answering
SCOPE_KEY = "virtops.host"  # the served host a request names, put in its ASGI scope by HostPaths
HOST_PATH = re.compile(r"^(/api)?/hosts/([^/]+)(/.*)$")


class Served:
    """One host of the server: its open Host, its event hub, and what its watcher last saw."""

    def __init__(self, registered: RegisteredHost, host: Host, events: EventHub):
        self.registered, self.host, self.events = registered, host, events
        self.name = registered.name
        self._lock = threading.Lock()
        self._status: dict | None = None
        self._reason: str | None = "not asked yet"
        self._asking_since: float | None = None
        self._watcher: threading.Thread | None = None

    def watched_by(self, watcher: threading.Thread) -> None:
        """Only `watcher` reopens this host's connection, and waits as long as its connect takes;
        every other caller is refused at once while the connection is down (Connection.before_open)."""
        self._watcher = watcher
        self.host.connection.connect_timeout = WATCHER_CONNECT_S
        self.host.connection.before_open = self._refuse_others

    def _refuse_others(self) -> None:
        if threading.current_thread() is not self._watcher:
            raise HostUnreachable(f"host {self.name}: {self.reason() or 'reconnecting.'}")

    @property
    def path(self) -> str:
        return quote(self.name, safe=":")

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

    def require_reachable(self) -> Host:
        reason = self.reason()
        if reason is not None:
            raise HostUnreachable(f"host {self.name}: {reason}")
        return self.host

    def watch_once(self) -> None:
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
        return cls([Served(entry, open_host(entry), hub) for entry, hub in zip(registered, hubs)])

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
                watcher = threading.Thread(target=self._watch, args=(served,), name=f"watch {served.name}", daemon=True)
                served.watched_by(watcher)
                watcher.start()
                served.events.start_when_ready(lambda host=served.host: host.conn, loop)
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
            served.host.close()


def served_of(connection) -> Served:
    """The served host a request (or WebSocket) is about: the one its path names, else the default."""
    fleet: Fleet = connection.app.state.fleet
    name = connection.scope.get(SCOPE_KEY)
    return fleet.default if name is None else fleet.get(name)


def host_of(connection) -> Host:
    """The Host a request is about; a host named in the path that is known to be away is refused at
    once (the default host of /api/... is asked as on a one-host server)."""
    name = connection.scope.get(SCOPE_KEY)
    served = served_of(connection)
    return served.host if name is None else served.require_reachable()


class HostPaths:
    """ASGI middleware: /api/hosts/NAME/REST and /hosts/NAME/REST are served as /api/REST and /REST
    with the host NAME in the scope (GET /api/hosts itself is a route of its own)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            match = HOST_PATH.match(scope["path"])
            if match:
                api, name, rest = match.groups()
                path = f"{api or ''}{rest}"
                scope = {**scope, "path": path, "raw_path": path.encode(), SCOPE_KEY: name}
        await self.app(scope, receive, send)
