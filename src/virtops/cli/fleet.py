"""The commands that -H/--hosts turns into fleet commands: the same names and options as on one host
(`virtops -H tag:web vm list --all`), one table with the host first. The asking is virtops.fleet's;
the rows are rendered as the one-host commands render them (their row and column helpers)."""
from __future__ import annotations

import click

from virtops.cli.common import Failed, emit_json, fleet_failures, json_option, listing_command, pass_context
from virtops.cli.listings import LISTINGS

FLEET_COMMANDS = "vm list/start/shutdown/destroy, net list, pool list, vol list, host info/list/evacuate, plan, apply, export"


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


def _listings(group: click.Group) -> None:
    """The group's listing and info commands that have a fleet version (cli/listings.py)."""
    for listing in LISTINGS:
        if listing.group == group.name and listing.fleet:
            group.add_command(listing_command(listing, fleet=True))


_listings(vm_group)


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


_listings(net_group)


@click.group("pool", cls=FleetGroup)
def pool_group() -> None:
    """Storage pools of every selected host."""


_listings(pool_group)


@click.group("vol", cls=FleetGroup)
def vol_group() -> None:
    """Volumes of every selected host."""


_listings(vol_group)


# -- host ---------------------------------------------------------------------------------------
@click.group("host", cls=FleetGroup)
def host_group() -> None:
    """Facts about every selected host."""


_listings(host_group)


def _host_list() -> click.Command:
    from virtops.cli.host import host_list

    return host_list


host_group.add_command(_host_list(), "list")


def _host_evacuate() -> click.Command:
    from virtops.cli.host import host_evacuate  # without --to: every other host -H selects

    return host_evacuate


host_group.add_command(_host_evacuate(), "evacuate")
