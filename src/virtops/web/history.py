"""Usage history for the web console's graphs: `serve` samples its host with one bulk call every
SAMPLE_S seconds (ops/stats.py) and keeps ring buffers per VM and for the host (web/rings.py: three
tiers, 1 h at 5 s, 24 h at 1 min, 30 days at 1 h, as packed columns). The buffers are written to
disk (one compact binary file per host, replaced atomically) every SAVE_S seconds and at shutdown,
and read back at start: a restart of `serve` keeps the history.

Bounded: each tier holds a fixed number of points, at most MAX_SERIES VMs are kept (those seen
last go first when there are more), and a VM not seen for 30 days is dropped; so the file holds at
most (MAX_SERIES + 1) * rings.SERIES_BYTES plus the names (161.7 MB at 2,000 VMs)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request

from virtops.daemon import lookups
from virtops.web import api, rings
from virtops.web.rings import Series

SAMPLE_S = 5.0
SAVE_S = 300.0  # a full file at 2,000 VMs is 161 MB: written every 5 min (and when serve stops)
Range = Literal["1h", "24h", "30d"]
Figure = Literal[rings.FIGURES]
MAX_SERIES = 2000
FORGET_S = 30 * 86400
log = logging.getLogger(__name__)


class History:
    """The ring buffers of one host, the sampler that fills them, and their file."""

    def __init__(self, host, path: Path | None):
        """path None: found (and read) by the sampler once the host answers (a fleet's host may be
        away when the server starts)."""
        self.host, self.path = host, path
        self.host_series = Series("host")
        self.vms: dict[str, Series] = {}  # by VM name (a VM renamed starts a new series)
        self._task: asyncio.Task | None = None
        # The sampler writes the rings while the API's threads read them and a save copies them:
        # each holds the lock, so nobody sees a point half written (its time beside older figures).
        self.lock = threading.Lock()
        self.load()

    # -- disk ----------------------------------------------------------------------------------
    def load(self) -> None:
        if self.path is None:
            return
        saved = rings.read(self.path)  # the host's series first, then the VMs'
        if saved:
            self.host_series, *vms = saved
            self.vms = {series.name: series for series in vms[:MAX_SERIES]}

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            kept = sorted(self.vms.values(), key=lambda s: s.seen, reverse=True)[:MAX_SERIES]
            rings.write(self.path, [self.host_series, *kept])

    # -- sampling ------------------------------------------------------------------------------
    def record(self, at: float, host_figures: dict, vm_rows: list[dict]) -> None:
        with self.lock:
            self._record(at, host_figures, vm_rows)

    def _record(self, at: float, host_figures: dict, vm_rows: list[dict]) -> None:
        self.host_series.add(at, host_figures)
        for row in vm_rows:
            figures = {**row, "memory_used_bytes": row["memory_used_bytes"] or row["memory_rss_bytes"]}
            self.vms.setdefault(row["name"], Series(row["name"])).add(at, figures)
        for name in [n for n, s in self.vms.items() if at - s.seen > FORGET_S]:
            del self.vms[name]
        if len(self.vms) > MAX_SERIES:  # memory holds no more than the file would keep
            for series in sorted(self.vms.values(), key=lambda s: s.seen)[:len(self.vms) - MAX_SERIES]:
                del self.vms[series.name]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.save()

    async def _run(self) -> None:
        from virtops.ops import stats

        loop, before, saved = asyncio.get_running_loop(), None, time.monotonic()
        while True:
            try:
                if self.path is None:
                    self.path = await loop.run_in_executor(None, current_file, self.host)
                    self.load()
                sample = await loop.run_in_executor(None, stats.take, self.host)
                if before is not None:
                    figures = stats.host_figures(before, sample), stats.vm_figures(before, sample)
                    await loop.run_in_executor(None, self.record, sample.time, *figures)  # off the event loop: the API's readers may hold the lock
                before = sample
                if time.monotonic() - saved >= SAVE_S:
                    await loop.run_in_executor(None, self.save)
                    saved = time.monotonic()
            except Exception as err:  # noqa: BLE001 - a daemon away for a while: the next sample tries again
                log.warning("usage sample failed: %s", err)
                before = None
            await asyncio.sleep(SAMPLE_S)


# -- the REST API ------------------------------------------------------------------------------
def history_file(host) -> Path:
    """One file per host under the cache directory, named by the machine and the URI (lab hosts of
    one machine share its machine-id)."""
    import hashlib

    from virtops.daemon.facts import cache_dir, host_key

    name = hashlib.sha256(f"{host_key(host)}|{host.uri}".encode()).hexdigest()[:16]
    return cache_dir() / "history" / f"{name}.hist"


def current_file(host) -> Path:
    path = history_file(host)
    path.with_suffix(".json").unlink(missing_ok=True)  # the JSON of earlier versions, up to hundreds of MB
    return path


class Histories:
    """The History of every host a server serves (one, or a fleet's), by the served host's name."""

    def __init__(self, hosts: dict, lazy: bool = False):
        self.by_host = {name: History(host, None if lazy else current_file(host)) for name, host in hosts.items()}

    def of(self, request) -> History:
        from virtops.web.fleet import served_of

        return self.by_host[served_of(request).name]

    def start(self) -> None:
        for history in self.by_host.values():
            history.start()

    async def stop(self) -> None:
        for history in self.by_host.values():
            await history.stop()


def add_history(app, hosts: dict, lazy: bool = False) -> Histories:
    """The stats routes over the history of each served host ({name: Host}); /api/hosts/NAME/stats
    is host NAME's (web/fleet.py). lazy: each history's file is found once its host answers."""
    histories = Histories(hosts, lazy)
    router = APIRouter(prefix="/api", dependencies=api.router.dependencies, responses=api.ERRORS, tags=["stats"])

    @router.get("/stats")
    def host_stats(request: Request, range: Range = Query("1h")):
        """The host's CPU (percent of all CPUs) and memory over the range: one point every 5 s (1h),
        1 min (24h) or 1 h (30d); fields name each point's values."""
        history = histories.of(request)
        with history.lock:
            return history.host_series.points(range)

    @router.get("/vms/{name}/stats")
    def vm_stats(request: Request, name: str, range: Range = Query("1h")):
        """A VM's CPU (percent of its vCPUs), memory used, disk and network bytes per second over the range."""
        history = histories.of(request)
        with history.lock:
            series = history.vms.get(name)
            if series is not None:
                return series.points(range)
        lookups.domain(api.host_of(request).conn, name)  # a VM that does not exist is refused
        return Series(name).points(range)

    @router.get("/stats/vms")
    def vms_stats(request: Request, range: Range = Query("1h"),
                  figures: list[Figure] | None = Query(None, description="only these figures (repeat it for more)"),
                  last: int | None = Query(None, ge=1, le=1440, description="only the newest points")):
        """Every VM's series over the range in one answer: the VM list's sparklines ask for
        `figures=cpu_percent&last=60`, the last 5 minutes of CPU."""
        history = histories.of(request)
        with history.lock:
            return [series.points(range, figures, last) for series in history.vms.values()]

    app.include_router(router)
    return histories
