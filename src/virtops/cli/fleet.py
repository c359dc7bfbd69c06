"""The commands that -H/--hosts turns into fleet commands: the same names and options as on one host
(`virtops -H tag:web vm list --all`), one table with the host first. The asking is virtops.fleet's;
the rows are rendered as the one-host commands render them (their row and column helpers)."""
from __future__ import annotations

import click

from virtops.cli.common import Failed, emit_fleet_rows, emit_json, fleet_failures, json_option, pass_context

FLEET_COMMANDS = "vm list/start/shutdown/destroy, net list, pool list, vol list, host info/list, plan, apply, export"


def refuse_fleet(name: str) -> click.Command:
    """A command that works on one host only, under -H: a usage error naming what -H does."""
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def refuse() -> None:
        raise click.UsageError(f"-H/--hosts: `virtops {name}` works on one host; use -c NAME "
                               f"(with -H: {FLEET_COMMANDS}).")
    return refuse


class FleetGroup(click.Group):
    """A group of fleet commands; its other subcommands refuse -H in one sentence."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        return command if command is not None else refuse_fleet(f"{self.name} {name}")


# -- vm -----------------------------------------------------------------------------------------
@click.group("vm", cls=FleetGroup)
def vm_group() -> None:
    """VMs of every selected host."""


@vm_group.command("list")
@click.option("--all", "-a", "show_all", is_flag=True, help="Stopped VMs too.")
@click.option("--long", "-l", "long", is_flag=True, help="Disks with pool and volume, and NICs.")
@json_option
@pass_context
def vm_list(ctx, show_all: bool, long: bool, as_json: bool) -> None:
    """VMs of every selected host, with the host first."""
    from virtops.base.units import format_size
    from virtops.cli.vm import _long_cells, _short_cells
    from virtops.fleet import listings

    gathered = listings.vms(ctx.fleet(), show_all, long)
    if as_json:
        emit_fleet_rows([{"host": host, **v} for host, v in gathered.rows()], [], True, gathered.failures)
        return
    rows = [{"host": host, "id": v["id"], "name": v["name"], "state": v["state"], "vcpus": v["vcpus"],
             "memory": format_size(v["memory_bytes"]), **(_long_cells(v) if long else _short_cells(v))}
            for host, v in gathered.rows()]
    columns = [("id", "Id"), ("name", "Name"), ("state", "State"), ("vcpus", "vCPUs"), ("memory", "Memory"),
               ("disks", "Disks"), ("nics", "NICs (MAC network IP)") if long else ("ips", "IP")]
    emit_fleet_rows(rows, columns, False, gathered.failures)


# What each action did, in the words of the one-host commands.
DONE = {"start": "started", "shutdown": "is shutting down (asked the guest)",
        "destroy": "destroyed (stopped at once; definition and disks kept)"}


def _vm_action(action: str, help_text: str) -> None:
    @vm_group.command(action, help=help_text)
    @click.argument("names", metavar="NAME...", nargs=-1, required=True)
    @json_option
    @pass_context
    def run(ctx, names: tuple[str, ...], as_json: bool) -> None:
        from virtops.fleet.actions import vm_action

        report = vm_action(ctx.fleet(), action, list(names))
        if as_json:
            emit_json([o.as_dict() for o in report.outcomes])
        for o in report.outcomes:
            if not o.ok:
                click.echo(f"error: host {o.host}: {o.error}", err=True)
            elif not as_json:
                click.echo(f"{o.host}: VM {o.vm} {DONE[action]}.")
        answered = [a.host.name for a in report.gathered.answers if a.ok]
        for name in report.missing:
            click.echo(f"error: VM {name} is on none of the selected hosts that answered "
                       f"({', '.join(answered) or 'none'}).", err=True)
        fleet_failures(report.gathered.failures)
        if not report.ok:
            raise Failed()


_vm_action("start", "Start VMs on whichever selected hosts have them.")
_vm_action("shutdown", "Ask VMs' guests to power off (ACPI), wherever they are.")
_vm_action("destroy", "Stop VMs at once, wherever they are.")


# -- net, pool, vol -----------------------------------------------------------------------------
@click.group("net", cls=FleetGroup)
def net_group() -> None:
    """Networks of every selected host."""


@net_group.command("list")
@click.option("--all", "-a", "include_inactive", is_flag=True, help="Include inactive networks.")
@json_option
@pass_context
def net_list(ctx, include_inactive: bool, as_json: bool) -> None:
    """Networks of every selected host, with the host first."""
    from virtops.cli.net import LIST_COLUMNS
    from virtops.fleet import listings

    gathered = listings.networks(ctx.fleet(), include_inactive)
    for host, i in gathered.rows():
        if i["unreadable"]:
            click.echo(f"warning: host {host}: network {i['name']} cannot be read: {i['unreadable']}", err=True)
    rows = [{"host": host, **i, **({} if as_json else {"state": "active" if i["active"] else "inactive"})}
            for host, i in gathered.rows()]
    emit_fleet_rows(rows, LIST_COLUMNS, as_json, gathered.failures)


@click.group("pool", cls=FleetGroup)
def pool_group() -> None:
    """Storage pools of every selected host."""


@pool_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include inactive pools.")
@json_option
@pass_context
def pool_list(ctx, show_all: bool, as_json: bool) -> None:
    """Pools of every selected host, with the host first."""
    from virtops.cli.pool import LIST_COLUMNS, _sizes
    from virtops.fleet import listings

    gathered = listings.pools(ctx.fleet(), show_all)
    rows = [{"host": host, **(i if as_json else _sizes(i))} for host, i in gathered.rows()]
    emit_fleet_rows(rows, LIST_COLUMNS, as_json, gathered.failures)


@click.group("vol", cls=FleetGroup)
def vol_group() -> None:
    """Volumes of every selected host."""


@vol_group.command("list")
@click.argument("pool")
@json_option
@pass_context
def vol_list(ctx, pool: str, as_json: bool) -> None:
    """Volumes of the pool POOL on every selected host, with the host first."""
    from virtops.cli.vol import LIST_COLUMNS, _row
    from virtops.fleet import listings

    gathered = listings.volumes(ctx.fleet(), pool)
    rows = [{"host": host, **(i if as_json else _row(i))} for host, i in gathered.rows()]
    emit_fleet_rows(rows, LIST_COLUMNS, as_json, gathered.failures)


# -- host ---------------------------------------------------------------------------------------
@click.group("host", cls=FleetGroup)
def host_group() -> None:
    """Facts about every selected host."""


@host_group.command("info")
@json_option
@pass_context
def host_info(ctx, as_json: bool) -> None:
    """Versions, CPUs, memory and VMs of every selected host, a row each."""
    from virtops.base.units import format_size
    from virtops.fleet import listings

    gathered = listings.infos(ctx.fleet())
    if as_json:
        emit_fleet_rows([{"host": host, **i} for host, i in gathered.rows()], [], True, gathered.failures)
        return
    rows = [{"host": host, "uri": i["uri"], "hostname": i["hostname"], "libvirt": i["libvirt_version"],
             "qemu": i["hypervisor_version"], "cpus": i["cpus"],
             "memory": f"{format_size(i['memory_used_bytes'])} / {format_size(i['memory_bytes'])}",
             "cpu": None if i["cpu_percent"] is None else f"{i['cpu_percent']:.1f}%",
             "pools": i["pools"], "networks": i["networks"], "vms": f"{i['running_domains']}/{i['domains']}",
             "guest": i["virt_type"]} for host, i in gathered.rows()]
    emit_fleet_rows(rows, [("uri", "URI"), ("hostname", "Hostname"), ("libvirt", "libvirt"), ("qemu", "QEMU"),
                           ("cpus", "CPUs"), ("cpu", "CPU use"), ("memory", "Memory used/total"), ("pools", "Pools"),
                           ("networks", "Networks"), ("vms", "VMs running/total"), ("guest", "Guest type")],
                    False, gathered.failures)


def _host_list() -> click.Command:
    from virtops.cli.host import host_list

    return host_list


host_group.add_command(_host_list(), "list")
