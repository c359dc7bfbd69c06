"""Usage history for the web console's graphs: `serve` samples its host with one bulk call every
SAMPLE_S seconds (ops/stats.py) and keeps ring buffers per VM and for the host, in three tiers:
1 h at 5 s, 24 h at 1 min, 30 days at 1 h (a coarser point is the mean of the finer ones in its
span). The buffers are written to disk (one JSON file per host, replaced atomically) every
SAVE_S seconds and at shutdown, and read back at start: a restart of `serve` keeps the history.

Bounded: each tier holds a fixed number of points, at most MAX_SERIES VMs are kept (those seen
last go first when there are more), and a VM not seen for 30 days is dropped."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request

from virtops.daemon import lookups
from virtops.web import api

SAMPLE_S = 5.0
SAVE_S = 60.0
TIERS = {"1h": (5, 720), "24h": (60, 1440), "30d": (3600, 720)}  # range: (seconds a point, points)
FIGURES = ("cpu_percent", "memory_used_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
           "net_rx_bytes_per_s", "net_tx_bytes_per_s")
Range = Literal["1h", "24h", "30d"]
MAX_SERIES = 5000
FORGET_S = 30 * 86400
log = logging.getLogger(__name__)


class Series:
    """One VM's (or the host's) points in every tier: [time, figure, ...] lists, oldest first."""

    def __init__(self, name: str, tiers: dict | None = None, seen: float = 0.0):
        self.name, self.seen = name, seen
        self.tiers = {key: deque((tiers or {}).get(key, []), maxlen=size) for key, (_step, size) in TIERS.items()}
        self.pending = {key: [] for key in TIERS if key != "1h"}  # finer points not yet folded into a coarser one

    def add(self, at: float, figures: dict) -> None:
        point = [round(at, 1), *(figures.get(name) for name in FIGURES)]
        self.seen = at
        self.tiers["1h"].append(point)
        for key in self.pending:
            step = TIERS[key][0]
            pending = self.pending[key]
            if pending and int(pending[0][0] // step) != int(at // step):
                self.tiers[key].append(_mean(pending, step))
                pending.clear()
            pending.append(point)

    def points(self, range_: str) -> dict:
        rows = list(self.tiers[range_])
        return {"name": self.name, "range": range_, "step_s": TIERS[range_][0], "fields": ["time", *FIGURES],
                "points": rows}

    def as_dict(self) -> dict:
        return {"name": self.name, "seen": self.seen, "tiers": {key: list(points) for key, points in self.tiers.items()}}


def _mean(points: list[list], step: int) -> list:
    start = points[0][0] // step * step
    columns = []
    for index in range(1, len(FIGURES) + 1):
        values = [p[index] for p in points if p[index] is not None]
        columns.append(round(sum(values) / len(values), 1) if values else None)
    return [start, *columns]


class History:
    """The ring buffers of one host, the sampler that fills them, and their file."""

    def __init__(self, host, path: Path):
        self.host, self.path = host, path
        self.host_series = Series("host")
        self.vms: dict[str, Series] = {}  # by VM name (a VM renamed starts a new series)
        self._task: asyncio.Task | None = None
        self.load()

    # -- disk ----------------------------------------------------------------------------------
    def load(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict):
            return
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self.host_series = Series("host", saved["host"]["tiers"], saved["host"]["seen"])
            self.vms = {entry["name"]: Series(entry["name"], entry["tiers"], entry["seen"])
                        for entry in saved["vms"][:MAX_SERIES]}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        kept = sorted(self.vms.values(), key=lambda s: s.seen, reverse=True)[:MAX_SERIES]
        partial.write_text(json.dumps({"host": self.host_series.as_dict(), "vms": [s.as_dict() for s in kept]}))
        os.replace(partial, self.path)

    # -- sampling ------------------------------------------------------------------------------
    def record(self, at: float, host_figures: dict, vm_rows: list[dict]) -> None:
        self.host_series.add(at, host_figures)
        for row in vm_rows:
            figures = {**row, "memory_used_bytes": row["memory_used_bytes"] or row["memory_rss_bytes"]}
            self.vms.setdefault(row["name"], Series(row["name"])).add(at, figures)
        for name in [n for n, s in self.vms.items() if at - s.seen > FORGET_S]:
            del self.vms[name]

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
                sample = await loop.run_in_executor(None, stats.take, self.host)
                if before is not None:
                    self.record(sample.time, stats.host_figures(before, sample), stats.vm_figures(before, sample))
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
    return cache_dir() / "history" / f"{name}.json"


def add_history(app, host) -> History:
    history = History(host, history_file(host))
    router = APIRouter(prefix="/api", dependencies=api.router.dependencies, responses=api.ERRORS, tags=["stats"])

    @router.get("/stats")
    def host_stats(range: Range = Query("1h")):
        """The host's CPU (percent of all CPUs) and memory over the range: one point every 5 s (1h),
        1 min (24h) or 1 h (30d); fields name each point's values."""
        return history.host_series.points(range)

    @router.get("/vms/{name}/stats")
    def vm_stats(request: Request, name: str, range: Range = Query("1h")):
        """A VM's CPU (percent of its vCPUs), memory used, disk and network bytes per second over the range."""
        series = history.vms.get(name)
        if series is None:
            lookups.domain(api.host_of(request).conn, name)  # a VM that does not exist is refused
            series = Series(name)
        return series.points(range)

    @router.get("/stats/vms")
    def vms_stats(range: Range = Query("1h")):
        """Every VM's series over the range (the VM list's sparklines)."""
        return [series.points(range) for series in history.vms.values()]

    app.include_router(router)
    return history
