"""Live updates for the web console: libvirt's own events, fanned out to every open page.

libvirt calls back on its event-loop thread; each callback turns the event into a small dict
({"kind": "domain", "name": "vm1", "event": "started"}) and hands it to the asyncio loop, which
puts it in the queue of each subscriber (one per open page, read by the /api/events stream).
Volumes have no libvirt events: the API publishes its own volume changes through the same hub.
When the daemon goes away (restarted, upgraded), the hub says so ({"kind": "host"}) and
subscribes again as soon as a new connection opens, so pages stay live across a restart.
A server of several hosts has a hub per host, all delivering into one EventStream; each event
then names its host ({"host": "web1", ...}).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Callable, Iterator

import libvirt

DOMAIN_EVENTS = ("defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown",
                 "pmsuspended", "crashed")
NETWORK_EVENTS = ("defined", "undefined", "started", "stopped")
POOL_EVENTS = ("defined", "undefined", "started", "stopped", "created", "deleted")
QUEUE_LIMIT = 1000  # a page that stops reading loses events, not the server's memory
RECONNECT_EVERY_S = 1.0


class EventStream:
    """The subscribers (open pages) that the hubs of every served host deliver to: one stream."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue] = set()

    def deliver(self, message: dict) -> None:
        for queue in self.queues:
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(message)


class EventHub:
    """The events of one host. With a host name (a server of several hosts), each event carries
    it as "host", and hubs given one stream share their subscribers."""

    def __init__(self, host: str | None = None, stream: EventStream | None = None) -> None:
        self.host = host
        self.stream = stream or EventStream()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callbacks: list[tuple[str, int]] = []
        self._connect: Callable[[], libvirt.virConnect] | None = None
        self._conn: libvirt.virConnect | None = None
        self._closed_conns: list[libvirt.virConnect] = []
        self._uri = ""
        self._stopped = threading.Event()

    def start(self, connect: Callable[[], libvirt.virConnect], loop: asyncio.AbstractEventLoop) -> None:
        """Register for domain, device, network and pool events on the connection that connect()
        returns (opened with libvirt's event loop running, as virtops' Connection does), and
        again on a new one whenever that connection closes."""
        self._loop, self._connect = loop, connect
        self._subscribe(connect())

    def start_when_ready(self, connect: Callable[[], libvirt.virConnect], loop: asyncio.AbstractEventLoop) -> None:
        """start() from a thread of its own, trying until the host answers: a host of a fleet
        that is away (or hung) when the server starts holds up neither the start nor the others."""
        self._loop, self._connect = loop, connect
        threading.Thread(target=self._resubscribe, args=(0.0,), name="virtops-events-connect", daemon=True).start()

    def _subscribe(self, conn: libvirt.virConnect) -> None:
        if self._conn is not None and self._conn is not conn:
            # libvirt-python hands the old connection to libvirt as the callbacks' opaque: freeing it
            # while they are still registered (a daemon gone: they cannot be deregistered) crashed the
            # server when they fired. A closed connection is small; one is kept per reconnect.
            self._closed_conns.append(self._conn)
        self._conn = conn
        self._uri = conn.getURI()
        self._callbacks.clear()
        domain_ids = {libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE: self._domain_lifecycle,
                      libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED: self._device("added"),
                      libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED: self._device("removed")}
        for event_id, callback in domain_ids.items():
            self._callbacks.append(("domain", conn.domainEventRegisterAny(None, event_id, callback, None)))
        self._callbacks.append(("network", conn.networkEventRegisterAny(
            None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, self._network_lifecycle, None)))
        self._callbacks.append(("pool", conn.storagePoolEventRegisterAny(
            None, libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, self._pool_lifecycle, None)))
        self._callbacks.append(("pool", conn.storagePoolEventRegisterAny(
            None, libvirt.VIR_STORAGE_POOL_EVENT_ID_REFRESH, self._pool_refresh, None)))
        with contextlib.suppress(libvirt.libvirtError):  # drivers without close callbacks (test:///)
            conn.registerCloseCallback(self._closed, None)

    def _closed(self, _conn: libvirt.virConnect, _reason: int, _opaque) -> None:
        """libvirt's event thread: the daemon went away. Subscribe again from another thread, as
        soon as a connection opens (opening one here would block the event loop it needs)."""
        self.publish("host", self._uri, "disconnected")
        threading.Thread(target=self._resubscribe, name="virtops-events-reconnect", daemon=True).start()

    def _resubscribe(self, first_wait_s: float = RECONNECT_EVERY_S) -> None:
        wait_s = first_wait_s
        while not self._stopped.wait(wait_s):
            wait_s = RECONNECT_EVERY_S
            try:
                self._subscribe(self._connect())
            except Exception:  # noqa: BLE001 - the daemon is not back yet: try again
                continue
            self.publish("host", self._uri, "reconnected")
            return

    def stop(self, conn: libvirt.virConnect | None = None) -> None:
        """Deregister from conn (default: the connection last subscribed on, if any)."""
        conn = conn or self._conn
        self._stopped.set()
        if conn is None:
            return
        deregister = {"domain": conn.domainEventDeregisterAny, "network": conn.networkEventDeregisterAny,
                      "pool": conn.storagePoolEventDeregisterAny}
        for kind, callback_id in self._callbacks:
            with contextlib.suppress(libvirt.libvirtError):
                deregister[kind](callback_id)
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        self._callbacks.clear()

    # -- publishing (any thread) ----------------------------------------------------------------
    def publish(self, kind: str, name: str, event: str, **detail: str) -> None:
        if self._loop is None:
            return
        message = {"kind": kind, "name": name, "event": event, **detail}
        if self.host is not None:
            message["host"] = self.host
        self._loop.call_soon_threadsafe(self.stream.deliver, message)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue]:
        """A queue that receives every event published while the block runs."""
        queue: asyncio.Queue = asyncio.Queue()
        self.stream.queues.add(queue)
        try:
            yield queue
        finally:
            self.stream.queues.discard(queue)

    # -- libvirt callbacks (libvirt's event thread) -------------------------------------------------
    def _domain_lifecycle(self, _conn, dom, event: int, _detail: int, _opaque) -> None:
        self.publish("domain", dom.name(), _word(DOMAIN_EVENTS, event))

    def _device(self, what: str):
        def callback(_conn, dom, alias: str, _opaque) -> None:
            self.publish("domain", dom.name(), f"device-{what}", device=alias)
        return callback

    def _network_lifecycle(self, _conn, net, event: int, _detail: int, _opaque) -> None:
        self.publish("network", net.name(), _word(NETWORK_EVENTS, event))

    def _pool_lifecycle(self, _conn, pool, event: int, _detail: int, _opaque) -> None:
        self.publish("pool", pool.name(), _word(POOL_EVENTS, event))

    def _pool_refresh(self, _conn, pool, _opaque) -> None:
        self.publish("pool", pool.name(), "refreshed")


def _word(words: tuple[str, ...], event: int) -> str:
    return words[event] if 0 <= event < len(words) else f"event-{event}"
