"""`virtops vm stats` and `virtops top`: usage figures of VMs (ops/stats.py), once, watched, or as
a live view sorted like virt-top's. Each refresh is one bulk sample per host."""
from __future__ import annotations

import json
import os
import sys
import time

import click

from virtops.cli.common import Failed, complete, emit_json, emit_table, json_option, pass_context, table_lines
from virtops.cli.output import answer_error

COLUMNS = [("name", "Name"), ("state", "State"), ("cpu", "CPU%"), ("vcpus", "vCPUs"), ("memory", "Memory"), ("used", "Guest used"), ("rss", "QEMU RSS"),
           ("disk_read", "Disk read/s"), ("disk_write", "Disk write/s"), ("iops", "IOPS r/w"),
           ("net_rx", "Net rx/s"), ("net_tx", "Net tx/s")]
# top's sort keys: key -> (what, the row's figure it sorts by, descending)
SORTS = {"c": ("CPU", lambda r: r["cpu_percent"] or 0.0, True),
         "m": ("memory", lambda r: r["memory_used_bytes"] or r["memory_rss_bytes"] or 0, True),
         "d": ("disk", lambda r: (r["disk_read_bytes_per_s"] or 0) + (r["disk_write_bytes_per_s"] or 0), True),
         "n": ("network", lambda r: (r["net_rx_bytes_per_s"] or 0) + (r["net_tx_bytes_per_s"] or 0), True),
         "a": ("name", lambda r: (r.get("host", ""), r["name"]), False)}
SORT_NAMES = {"cpu": "c", "memory": "m", "disk": "d", "network": "n", "name": "a"}


def _size(value) -> str | None:
    from virtops.base.units import format_size

    return None if value is None else format_size(int(value))


def _rate(value) -> str | None:
    return None if value is None else f"{_size(value)}/s"


def cells(row: dict) -> dict:
    """A VM's figures as the table shows them ('-' where the first sample lacked the VM)."""
    iops = None if row["disk_read_iops"] is None else f"{row['disk_read_iops']:g}/{row['disk_write_iops']:g}"
    return {"host": row.get("host"), "name": row["name"], "state": row["state"], "vcpus": row["vcpus"],
            "cpu": None if row["cpu_percent"] is None else f"{row['cpu_percent']:.1f}",
            "memory": _size(row["memory_bytes"]), "used": _size(row["memory_used_bytes"]),
            "rss": _size(row["memory_rss_bytes"]), "iops": iops,
            "disk_read": _rate(row["disk_read_bytes_per_s"]), "disk_write": _rate(row["disk_write_bytes_per_s"]),
            "net_rx": _rate(row["net_rx_bytes_per_s"]), "net_tx": _rate(row["net_tx_bytes_per_s"])}


def host_line(name: str, figures: dict) -> str:
    cpu = "-" if figures["cpu_percent"] is None else f"{figures['cpu_percent']:.1f}%"
    return (f"host {name}: CPU {cpu} of {figures['cpus']}, memory {_size(figures['memory_used_bytes'])} / "
            f"{_size(figures['memory_bytes'])}, {figures['vms_sampled']} VMs sampled")


@click.command("stats")
@click.argument("names", metavar="[NAME...]", nargs=-1, shell_complete=complete("vm"))
@click.option("--all", "-a", "show_all", is_flag=True, help="Stopped VMs too (without NAMEs).")
@click.option("--interval", "-i", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True, metavar="SECONDS",
              help="Seconds between the two samples (and between refreshes with --watch).")
@click.option("--watch", "-w", is_flag=True, help="Refresh every interval until Ctrl-C (JSON: one document a line).")
@json_option
@pass_context
def vm_stats(ctx, names: tuple[str, ...], show_all: bool, interval: float, watch: bool, as_json: bool) -> None:
    """CPU, memory, disk and network figures of running VMs (or the NAMEs), from two bulk samples."""
    from virtops.ops import stats

    ctx.event_loop = watch  # a watch outlives a daemon restart; one look does not
    host, before = ctx.host(), None
    try:
        while True:
            before, _host_figures, rows = stats.measure(host, names or None, show_all, interval, before)
            if as_json:
                click.echo(json.dumps(rows)) if watch else emit_json(rows)
            else:
                if watch and sys.stdout.isatty():
                    click.echo("\x1b[H\x1b[2J", nl=False)
                if watch:
                    click.echo(time.strftime("%H:%M:%S"))
                emit_table([cells(row) for row in rows], COLUMNS)
            if not watch:
                return
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


# -- top --------------------------------------------------------------------------------------
@click.command("top")
@click.option("--interval", "-d", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True, metavar="SECONDS",
              help="Seconds between refreshes.")
@click.option("--sort", type=click.Choice(list(SORT_NAMES)), default="cpu", show_default=True,
              help="Sort by (keys while running: c, m, d, n, a).")
@pass_context
def top(ctx, interval: float, sort: str) -> None:
    """A live view of the running VMs, busiest first (like virt-top); with -H, of a fleet. Keys: c CPU,
    m memory, d disk, n network, a name, q quits. Piped, it prints one frame and ends."""
    live = sys.stdout.isatty() and sys.stdin.isatty()
    view = TopView(ctx, SORT_NAMES[sort])
    view.refresh()  # the first samples: figures need two
    if not live:
        time.sleep(interval)
        view.refresh()
        click.echo("\n".join(view.frame(width=400, height=None)))
        if view.errors:
            raise Failed()
        return
    import termios
    import tty

    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin)
    tty.setcbreak(stdin)
    try:
        view.run(interval, stdin)
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        click.echo("")


top.fleet = True  # with -H it asks the selected hosts itself


class TopView:
    """top's state: the hosts, their last samples, the latest figures and the sort key."""

    def __init__(self, ctx, sort_key: str):
        self.ctx, self.sort_key = ctx, sort_key
        self.fleet = ctx.fleet() if ctx.hosts else None
        self.samples: dict[str, object] = {}
        self.figures: dict[str, tuple[dict, list[dict]]] = {}
        self.errors: dict[str, str] = {}
        self._open: dict[str, object] = {}

    def refresh(self) -> None:
        from virtops.ops import stats

        if self.fleet is None:
            host = self.ctx.host()
            self._record(self.ctx.uri or host.uri, stats.take(host))
            return
        from virtops.fleet.gather import gather, open_host

        def opened(registered):
            if registered.name not in self._open:
                self._open[registered.name] = open_host(registered)
            return self._open[registered.name]

        for answer in gather(self.fleet, stats.take, pool=opened).answers:
            if answer.ok:
                self.errors.pop(answer.host.name, None)
                self._record(answer.host.name, answer.value)
            else:
                self.errors[answer.host.name] = answer_error(answer)

    def _record(self, name: str, sample) -> None:
        from virtops.ops import stats

        before = self.samples.get(name)
        self.samples[name] = sample
        if before is not None:
            self.figures[name] = (stats.host_figures(before, sample), stats.vm_figures(before, sample))

    def frame(self, width: int, height: int | None) -> list[str]:
        what, key, descending = SORTS[self.sort_key]
        lines = [f"virtops top  {time.strftime('%H:%M:%S')}  sorted by {what}  (c m d n a: sort, q: quit)"[:width]]
        rows = []
        for name, (host, vms) in self.figures.items():
            lines.append(host_line(name, host)[:width])
            rows += [{**vm, "host": name} for vm in vms]
        lines += [f"host {name}: {error}"[:width] for name, error in self.errors.items()]
        rows.sort(key=key, reverse=descending)
        columns = ([("host", "Host")] if self.fleet is not None else []) + COLUMNS
        table = table_lines([cells(row) for row in rows], columns)
        lines += [""] + [line[:width] for line in table]
        return lines if height is None else lines[:height]

    def run(self, interval: float, stdin: int) -> None:
        import select

        next_refresh = time.monotonic() + interval
        while True:
            size = os.get_terminal_size()
            click.echo("\x1b[H\x1b[2J" + "\n".join(self.frame(size.columns, size.lines - 1)), nl=False)
            sys.stdout.flush()
            ready, _, _ = select.select([stdin], [], [], max(0.0, next_refresh - time.monotonic()))
            if ready:
                key = os.read(stdin, 1).decode(errors="replace")
                if key in ("q", "Q"):
                    return
                if key in SORTS:
                    self.sort_key = key
                continue
            self.refresh()
            next_refresh = time.monotonic() + interval
