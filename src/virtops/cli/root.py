"""The root of the click command line: the global options, the command groups (imported when
used) and virsh's names as aliases. cli/quick.py runs the listings without it."""
from __future__ import annotations

import click

from virtops.cli.common import Context, global_options
from virtops.cli.aliases import VIRSH_ALIASES
from virtops.cli.groups import LazyGroup


# With -H, these groups are their fleet versions (cli/fleet.py); any other command refuses -H unless
# it declares that it handles a fleet itself (its click command has `fleet = True`).
FLEET_GROUPS = {"vm", "net", "pool", "vol", "host"}


class RootGroup(LazyGroup):
    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if not ctx.params.get("hosts") or name in self.aliases:
            return super().get_command(ctx, name)  # an alias comes back here by its group's name
        if ctx.params.get("uri"):
            raise click.UsageError("-c/--connect names one host and -H/--hosts a fleet: give one of them.")
        if name in FLEET_GROUPS:
            from virtops.cli import fleet

            return getattr(fleet, f"{name}_group")
        command = super().get_command(ctx, name)
        if command is None or getattr(command, "fleet", False):
            return command
        from virtops.cli.fleet import refuse_fleet

        return refuse_fleet(name)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]},
             aliases=VIRSH_ALIASES,
             lazy_subcommands={
                 "lab": "virtops.cli.lab:lab",
                 "host": "virtops.cli.host:host",
                 "pool": "virtops.cli.pool:pool",
                 "vol": "virtops.cli.vol:vol",
                 "net": "virtops.cli.net:net",
                 "vm": "virtops.cli.vm:vm",
                 "demo": "virtops.cli.demo:demo",
                 "backup": "virtops.cli.backup:backup",
                 "plan": "virtops.cli.spec:plan",
                 "apply": "virtops.cli.spec:apply",
                 "export": "virtops.cli.spec:export",
                 "serve": "virtops.cli.serve:serve",
                 "top": "virtops.cli.stats:top",
             })
@global_options
@click.version_option(package_name="virtops")
@click.pass_context
def cli(ctx: click.Context, uri: str | None, hosts: str | None, debug: bool) -> None:
    """Manage KVM hosts through libvirt: pools, volumes, networks, VM devices, backups, specs."""
    ctx.obj = Context(uri=uri, hosts=hosts, debug=debug)

