"""Live updates for the web console: libvirt's own events, fanned out to every open page.

libvirt calls back on its event-loop thread; each callback turns the event into a small dict
({"kind": "domain", "name": "vm1", "event": "started"}) and hands it to the asyncio loop, which
puts it in the queue of each subscriber (one per open page, read by the /api/events stream).
Volumes have no libvirt events: the API publishes its own volume changes through the same hub.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Iterator

import libvirt

DOMAIN_EVENTS = ("defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown",
                 "pmsuspended", "crashed")
NETWORK_EVENTS = ("defined", "undefined", "started", "stopped")
POOL_EVENTS = ("defined", "undefined", "started", "stopped", "created", "deleted")
QUEUE_LIMIT = 1000  # a page that stops reading loses events, not the server's memory


class EventHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue] = set()
        self._callbacks: list[tuple[str, int]] = []

    def start(self, conn: libvirt.virConnect, loop: asyncio.AbstractEventLoop) -> None:
        """Register for domain, device, network and pool events on a connection opened with
        libvirt's event loop running (virtops' Connection does that)."""
        self._loop = loop
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

    def stop(self, conn: libvirt.virConnect) -> None:
        deregister = {"domain": conn.domainEventDeregisterAny, "network": conn.networkEventDeregisterAny,
                      "pool": conn.storagePoolEventDeregisterAny}
        for kind, callback_id in self._callbacks:
            with contextlib.suppress(libvirt.libvirtError):
                deregister[kind](callback_id)
        self._callbacks.clear()

    # -- publishing (any thread) ----------------------------------------------------------------
    def publish(self, kind: str, name: str, event: str, **detail: str) -> None:
        if self._loop is None:
            return
        message = {"kind": kind, "name": name, "event": event, **detail}
        self._loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: dict) -> None:
        for queue in self._queues:
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(message)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue]:
        """A queue that receives every event published while the block runs."""
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

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
