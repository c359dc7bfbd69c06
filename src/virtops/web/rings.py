"""The ring buffers of the usage history and their file (web/history.py fills and serves them).

A series (one VM, or the host) has three tiers: 1 h at 5 s, 24 h at 1 min, 30 days at 1 h; a
coarser point is the mean of the finer ones in its span. Each tier is a ring of fixed size held as
columns of the standard library's `array`: the time as whole seconds (uint32) and each figure as
a 32-bit float (NaN where there was no figure). So a point costs 28 bytes in memory and on disk
whatever its values, a full series 80,822 bytes in the file (with its counts and the spans still
being averaged), and saving is copying columns, not formatting
numbers.

The file: MAGIC, a 4-byte length and a JSON header (the layout: figures, tiers, series count),
then the series, as they are in memory (not compressed: noisy 32-bit floats shrink by only 30% with
zlib, for 2.2 s of CPU per save of 2,000 full series, bench/bench_history.py): per series the name (uint16 length, UTF-8), the
time it was last seen (float64), per tier the number of points (uint32), their times and each
figure's column, oldest first, and per coarser tier the span still being averaged (its index, the
figures' sums and counts; index -1 for none), so that a restart keeps the current minute and hour. Written to a partial file, synced and renamed over the old one, so
a crash leaves the previous file whole. A file of another layout or a damaged one is ignored: the
history starts again empty rather than showing wrong points."""
from __future__ import annotations

import json
import math
import os
import struct
from array import array
from pathlib import Path

TIERS = {"1h": (5, 720), "24h": (60, 1440), "30d": (3600, 720)}  # range: (seconds a point, points)
FIGURES = ("cpu_percent", "memory_used_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
           "net_rx_bytes_per_s", "net_tx_bytes_per_s")
MAGIC = b"virtops-history\n"
NAN = math.nan
COARSE = [key for key in TIERS if key != "1h"]  # the tiers whose points are means of finer ones
SPAN = struct.Struct(f"<q{len(FIGURES)}d{len(FIGURES)}I")  # a span being summed: its index, sums, counts
EMPTY_SPAN = [0.0] * len(FIGURES) + [0] * len(FIGURES)
POINT_BYTES = 4 + 4 * len(FIGURES)
# A full series in the file, but for its name: name length and last seen, the points, the spans.
SERIES_BYTES = 2 + 8 + POINT_BYTES * sum(size for _step, size in TIERS.values()) + 4 * len(TIERS) + SPAN.size * len(COARSE)


class Ring:
    """One tier of one series: columns that grow to `size` points, then are written round."""

    def __init__(self, size: int, times: array | None = None, columns: list[array] | None = None):
        self.size, self.next = size, 0  # next: where the next point goes once the ring is full
        self.times = times if times is not None else array("I")
        self.columns = columns if columns is not None else [array("f") for _ in FIGURES]

    def __len__(self) -> int:
        return len(self.times)

    def append(self, at: int, values: list) -> None:
        values = [NAN if value is None else value for value in values]
        if len(self.times) < self.size:
            self.times.append(at)
            for column, value in zip(self.columns, values):
                column.append(value)
            return
        index = self.next
        self.times[index] = at
        for column, value in zip(self.columns, values):
            column[index] = value
        self.next = (index + 1) % self.size

    def ordered(self, last: int | None = None) -> list[array]:
        """The time column and the figures' columns, oldest point first (only the `last` points)."""
        start = -last if last else None
        return [(column[self.next:] + column[:self.next])[start:] for column in (self.times, *self.columns)]

    def rows(self, figures: list[int] | None = None, last: int | None = None) -> list[list]:
        """[time, figure, ...] per point, oldest first; None where there was no figure. `figures`:
        the positions in FIGURES to give (all by default)."""
        times, *columns = self.ordered(last)
        if figures is not None:
            columns = [columns[index] for index in figures]
        return [[at, *(None if value != value else round(value, 1) for value in values)]
                for at, *values in zip(times, *columns)]


class Span:
    """The finer points of a coarser tier's current span, summed until the span ends."""

    def __init__(self, index: int, sums: list[float] | None = None, counts: list[int] | None = None):
        self.index = index
        self.sums, self.counts = sums or [0.0] * len(FIGURES), counts or [0] * len(FIGURES)

    def add(self, values: list) -> None:
        for position, value in enumerate(values):
            if value is not None:
                self.sums[position] += value
                self.counts[position] += 1

    def means(self) -> list:
        return [total / count if count else None for total, count in zip(self.sums, self.counts)]


class Series:
    """One VM's (or the host's) points in every tier."""

    def __init__(self, name: str, seen: float = 0.0, tiers: dict[str, Ring] | None = None):
        self.name, self.seen = name, seen
        self.tiers = tiers or {key: Ring(size) for key, (_step, size) in TIERS.items()}
        self.spans: dict[str, Span] = {}  # per coarser tier, the span being summed

    def add(self, at: float, figures: dict) -> None:
        at = int(at)  # whole seconds, rounded down: a point is never stamped later than it was taken
        values = [figures.get(name) for name in FIGURES]
        self.seen = at
        self.tiers["1h"].append(at, values)
        for key, (step, _size) in TIERS.items():
            if key == "1h":
                continue
            span = self.spans.get(key)
            if span and span.index != at // step:
                self.tiers[key].append(span.index * step, span.means())
                span = None
            if span is None:
                span = self.spans[key] = Span(at // step)
            span.add(values)

    def points(self, range_: str, figures: list[str] | None = None, last: int | None = None) -> dict:
        """The series over a range as the API gives it; only the named figures, or the last points, if asked."""
        figures = list(figures or FIGURES)
        return {"name": self.name, "range": range_, "step_s": TIERS[range_][0], "fields": ["time", *figures],
                "points": self.tiers[range_].rows([FIGURES.index(name) for name in figures], last)}


# -- the file ----------------------------------------------------------------------------------
def _layout(count: int) -> dict:
    return {"figures": list(FIGURES), "tiers": {key: list(value) for key, value in TIERS.items()}, "spans": True,
            "series": count}


def write(path: Path, series: list[Series]) -> None:
    """All the series to `path`, atomically: a partial file, synced, renamed over the old one."""
    header = json.dumps(_layout(len(series))).encode()
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as out:
        out.write(MAGIC + struct.pack("<I", len(header)) + header)
        for one in series:
            name = one.name.encode()
            parts = [struct.pack("<H", len(name)), name, struct.pack("<d", one.seen)]
            for ring in one.tiers.values():
                parts.append(struct.pack("<I", len(ring)))
                parts.extend(column.tobytes() for column in ring.ordered())
            for key in COARSE:
                span = one.spans.get(key)
                parts.append(SPAN.pack(span.index, *span.sums, *span.counts) if span else SPAN.pack(-1, *EMPTY_SPAN))
            out.write(b"".join(parts))
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def read(path: Path) -> list[Series]:
    """The series saved at `path`; none when it is missing, damaged or of another layout."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if not data.startswith(MAGIC):
        return []
    try:
        size, = struct.unpack_from("<I", data, len(MAGIC))
        start = len(MAGIC) + 4
        header = json.loads(data[start:start + size])
        if header != _layout(header.get("series")):
            return []
        body = memoryview(data)[start + size:]
        return _series(body, header["series"])
    except (ValueError, KeyError, TypeError, struct.error, AttributeError):
        return []


def _series(body: memoryview, count: int) -> list[Series]:
    offset, found = 0, []
    for _ in range(count):
        length, = struct.unpack_from("<H", body, offset)
        name = bytes(body[offset + 2:offset + 2 + length]).decode()
        seen, = struct.unpack_from("<d", body, offset + 2 + length)
        offset += 2 + length + 8
        tiers = {}
        for key, (_step, size) in TIERS.items():
            points, = struct.unpack_from("<I", body, offset)
            if points > size:
                raise ValueError(f"{points} points in a tier of {size}")
            offset += 4
            columns = []
            for typecode in "I" + "f" * len(FIGURES):
                column = array(typecode)
                column.frombytes(body[offset:offset + 4 * points])
                if len(column) != points:
                    raise ValueError("the file ends early")
                offset += 4 * points
                columns.append(column)
            tiers[key] = Ring(size, columns[0], columns[1:])
        series = Series(name, seen, tiers)
        for key in COARSE:
            index, *figures = SPAN.unpack_from(body, offset)
            offset += SPAN.size
            if index >= 0:
                series.spans[key] = Span(index, figures[:len(FIGURES)], figures[len(FIGURES):])
        found.append(series)
    if offset != len(body):
        raise ValueError("more bytes than the header's series")
    return found
